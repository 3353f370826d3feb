"""Hostile image folders (issue 21): symbolic link loops, animation and pixel bombs, file
names that are not UTF-8. Each is read once, quickly, or skipped with a reason."""

import os
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import call_cli
from tfsuite.data.folder import MAX_PIXELS, check_image, scan_image_folder


def write_images(folder, count, value):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((12, 12, 3), value + i, np.uint8)).save(
            os.path.join(folder, f"{i}.png"))


def test_symlink_loops_are_followed_once_and_end(tmp_path):
    """Before, one loop inflated 60 images to 878/199/183 (the same files in train and
    test), and two loops never ended (>120 s, 10.5 GB)."""
    root = tmp_path / "images"
    write_images(root / "cats", 10, 0)
    write_images(root / "dogs" / "nested", 10, 100)
    os.symlink("..", root / "cats" / "loop")  # cats/loop -> images/
    os.symlink(root / "dogs", root / "dogs" / "nested" / "again")  # a second loop
    os.symlink(root / "cats" / "0.png", root / "dogs" / "same.png")  # one file, two links
    started = time.perf_counter()
    scan = scan_image_folder(str(root))
    assert time.perf_counter() - started < 20
    real = [os.path.realpath(p) for p in scan.paths]
    assert len(scan.paths) == 20 and len(set(real)) == 20
    reasons = " ".join(reason for _, reason in scan.skipped)
    assert "already read" in reasons and "the same file as" in reasons


def test_animations_decode_one_frame_and_pixel_bombs_are_skipped(tmp_path):
    """Before, TensorFlow decoded every frame of a GIF to keep the first (a 1000-frame
    3000x3000 GIF: 74 s, 9.7 GB). Images of more pixels than PIL's bomb limit are skipped."""
    frames = [Image.fromarray(np.full((300, 300, 3), 20 * i, np.uint8)) for i in range(12)]
    gif = str(tmp_path / "many.gif")
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    ok, needs_pil, _ = check_image(gif)
    assert ok and needs_pil  # PIL reads its first frame alone
    bomb = str(tmp_path / "bomb.png")
    Image.new("1", (14000, 14000)).save(bomb)  # 196 million pixels in a few kB
    ok, _, reason = check_image(bomb)
    assert not ok and "pixels" in reason and 14000 * 14000 > MAX_PIXELS


@pytest.mark.backend_agnostic
def test_file_names_that_are_not_utf8_train_and_predict(tmp_path):
    """Before, tracebacks in `train` (hash_split) and `predict`."""
    root = tmp_path / "images"
    write_images(root / "a", 8, 0)
    write_images(root / "b", 8, 150)
    name = os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes: not UTF-8
    Image.fromarray(np.full((12, 12, 3), 160, np.uint8)).save(os.path.join(root / "b", name))
    run_dir = tmp_path / "run"
    result = call_cli("train", "image_folder", "--set", f"data.path={root}",
                      "--set", "train.epochs=1", "--set", "data.image_size=[8,8]",
                      "--set", "model.name=mlp", "--set", "export.formats=[]",
                      "--set", "data.augment={}", "--run-dir", run_dir, "--quiet")
    assert result.returncode == 0, result.stderr
    predicted = call_cli("predict", run_dir, "--image", os.path.join(root / "b", name))
    assert predicted.returncode == 0, predicted.stderr
    assert "caf\\xe9-\\xff.png:" in predicted.stdout
