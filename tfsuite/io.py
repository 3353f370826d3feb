"""Small file helpers: atomic JSON writes (a killed run never leaves half a file), the
cleanup of what a killed stage left, paths as shown to users."""

import contextlib
import json
import os
import re
import shutil


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path beside `path` to write; renames it over `path` when the block
    succeeds (a kill leaves the old file whole), removes it when the block fails."""
    tmp = os.fspath(path) + ".tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_json(path, data):
    """Writes JSON atomically (temporary file, then rename)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=_to_builtin)
        f.write("\n")


def write_text(path, text):
    """Writes UTF-8 text atomically (temporary file, then rename)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def remove_stale(folder, pattern):
    """Removes the entries of `folder` whose names match `pattern` (its group 1 a pid) and
    whose process is gone: staging folders of a stage that was killed."""
    names = os.listdir(folder) if os.path.isdir(folder) else []
    for name in names:
        match = re.fullmatch(pattern, name)
        if match and not process_alive(int(match.group(1))):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def printable(path):
    """A file name as text any stream can print: bytes that are not UTF-8 (names read
    from disk keep them as surrogates) shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


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
