"""Shared fixtures: real image folders written with PIL, run directories."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shape_image(kind, size, rng):
    """A learnable picture: class 0 a bright square, class 1 a bright disc, on noise."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2 + rng.integers(-3, 4, 2)
    if kind == 0:
        mask = (abs(yy - c[0]) < size // 4) & (abs(xx - c[1]) < size // 4)
    else:
        mask = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < (size // 4) ** 2 // 2
    image[mask] = [230, 200, 40] if kind == 0 else [40, 200, 230]
    return image


def write_messy_folder(root, per_class=24, seed=0):
    """A real-world-looking folder: mixed formats, modes, case, nesting, junk, broken files.

    Returns (root, number of good images, number of files that must be skipped).
    """
    rng = np.random.default_rng(seed)
    good = 0
    for label, name in enumerate(["squares", "discs"]):
        folder = os.path.join(root, name)
        os.makedirs(os.path.join(folder, "nested", "deeper"), exist_ok=True)
        for i in range(per_class):
            array = _shape_image(label, int(rng.integers(28, 48)), rng)
            picture = Image.fromarray(array)
            variant = i % 11
            sub = os.path.join(folder, "nested", "deeper") if i % 5 == 0 else folder
            if variant == 0:
                picture.save(os.path.join(sub, f"img {i} ü.PNG"))
            elif variant == 1:
                picture.convert("L").save(os.path.join(sub, f"gray_{i}.jpg"), quality=90)
            elif variant == 2:
                picture.convert("RGBA").save(os.path.join(sub, f"alpha_{i}.png"))
            elif variant == 3:
                picture.convert("P").save(os.path.join(sub, f"palette_{i}.gif"))
            elif variant == 4:
                picture.save(os.path.join(sub, f"bitmap_{i}.BMP"))
            elif variant == 5:
                picture.convert("CMYK").save(os.path.join(sub, f"cmyk_{i}.jpeg"), quality=90)
            elif variant == 6:
                deep = (np.asarray(picture.convert("L"), dtype=np.uint16) * 257)
                Image.fromarray(deep).save(os.path.join(sub, f"sixteen_bit_{i}.png"))
            elif variant == 7:
                picture.save(os.path.join(sub, f"really_a_tiff_{i}.png"), format="TIFF")
            elif variant == 8:
                picture.convert("1").save(os.path.join(sub, f"one_bit_{i}.bmp"))
            elif variant == 9:
                picture.convert("P").save(os.path.join(sub, f"palette_{i}.bmp"))
            else:
                picture.save(os.path.join(sub, f"photo_{i}.JPG"), quality=85)
            good += 1
        # Junk that must be skipped and counted, never fatal.
        open(os.path.join(folder, "empty.jpg"), "wb").close()
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("not an image")
        with open(os.path.join(folder, "fake.png"), "w") as f:
            f.write("this is text with a png name")
        with open(_first_jpeg(folder), "rb") as f:
            data = f.read()
        with open(os.path.join(folder, "truncated.jpg"), "wb") as f:
            f.write(data[: len(data) // 3])
    with open(os.path.join(root, "README.txt"), "w") as f:  # stray file at the top level
        f.write("dataset notes")
    os.makedirs(os.path.join(root, ".hidden_cache"), exist_ok=True)
    return root, good, 2 * 4


def _first_jpeg(folder):
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            if name.lower().endswith((".jpg",)) and os.path.getsize(os.path.join(dirpath, name)):
                return os.path.join(dirpath, name)
    raise FileNotFoundError(folder)


@pytest.fixture(scope="session")
def messy_folder(tmp_path_factory):
    return write_messy_folder(str(tmp_path_factory.mktemp("messy")))


def tree_hashes(folder):
    """{relative path: sha256} of every file under `folder` (to show nothing changed)."""
    hashes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                hashes[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Runs `python -m tfsuite.run ARGS` in a fresh process; returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "tfsuite.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def assert_user_error(result, *fragments):
    """A CLI run refused bad input: exit 2, one `error:` line holding `fragments`, no
    traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    error_lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
