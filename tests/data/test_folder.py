import os

import numpy as np
import pytest

from tfsuite.config import DataConfig
from tfsuite.data.folder import scan_image_folder
from tfsuite.data.pipeline import build_image_data, load_image_file
from tfsuite.errors import UserError

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def test_messy_folder_scan_counts_good_and_skipped(messy_folder):
    root, good, bad = messy_folder
    scan = scan_image_folder(root)
    assert scan.class_names == ["discs", "squares"]  # hidden folders and stray files ignored
    assert len(scan.paths) == good
    assert len(scan.skipped) == bad
    reasons = " ".join(r for _, r in scan.skipped)
    assert "empty file" in reasons and "not an image file extension" in reasons
    assert any("nested" in p for p in scan.paths)  # nested folders inside a class
    assert any(p.endswith(".PNG") for p in scan.paths)  # any letter case
    assert any(flag for flag in scan.needs_pil)  # CMYK and 16-bit files go through PIL


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_every_file_decodes_to_the_color_mode(messy_folder, color_mode, channels):
    root, good, bad = messy_folder
    config = DataConfig(source="folder", path=root, image_size=[20, 24], color_mode=color_mode,
                        validation_split=0.0, test_split=0.0)
    data = build_image_data(config, batch_size=16, seed=0, augment=False)
    batches = [(np.asarray(x), np.asarray(y)) for x, y in data.train]
    images = np.concatenate([b[0] for b in batches])
    assert images.shape == (good, 20, 24, channels)
    # tf.data hands the model float32; Grain (JAX) uint8, which the model casts.
    assert images.dtype in (np.float32, np.uint8) and 0 <= images.min() and images.max() <= 255
    assert images.reshape(good, -1).std(axis=1).min() > 1  # no blank (failed) decodes
    assert data.skipped and len(data.skipped) == bad


def test_sixteen_bit_and_cmyk_files_keep_their_content(messy_folder):
    root, _, _ = messy_folder
    config = DataConfig(source="folder", path=root, image_size=[32, 32], color_mode="rgb")
    scan = scan_image_folder(root)
    for path, needs_pil in zip(scan.paths, scan.needs_pil):
        if needs_pil:
            image = load_image_file(path, config)
            assert image.shape == (32, 32, 3) and image.max() > 150  # the bright shape survives


def test_decoded_pixels_match_pil(messy_folder):
    """TF-decoded files and PIL-decoded ones agree with PIL's own reading of each file."""
    from PIL import Image

    root, _, _ = messy_folder
    for path in scan_image_folder(root).paths:
        with Image.open(path) as image:
            if image.mode.startswith("I"):
                reference = np.asarray(image, np.float64) / 257.0  # 16-bit to 8-bit
                reference = np.repeat(reference[..., None], 3, axis=-1)
            else:
                reference = np.asarray(image.convert("RGB"), np.float64)
        height, width = reference.shape[:2]
        config = DataConfig(source="folder", path=root, image_size=[height, width])
        ours = load_image_file(path, config).astype(np.float64)
        assert np.abs(ours - reference).mean() < 3.0, path  # JPEG decoders differ slightly


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="Image folder not found"):
        scan_image_folder(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "only_one_class")
    with pytest.raises(UserError, match="at least two class sub-folders"):
        scan_image_folder(str(tmp_path))
    os.makedirs(tmp_path / "second")
    (tmp_path / "second" / "junk.txt").write_text("x")
    with pytest.raises(UserError, match="No readable images"):
        scan_image_folder(str(tmp_path))
