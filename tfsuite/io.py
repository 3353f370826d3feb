"""Small file helpers: atomic JSON writes (a killed run never leaves half a file), paths
as shown to users."""

import json
import os


def write_json(path, data):
    """Writes JSON atomically (temporary file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=_to_builtin)
        f.write("\n")
    os.replace(tmp, path)


def write_text(path, text):
    """Writes UTF-8 text atomically (temporary file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def display_path(path):
    """A path relative to the working directory when it lies inside it, else as it is."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _to_builtin(value):
    """numpy scalars and arrays to Python values for JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Cannot write {type(value).__name__} to JSON")
