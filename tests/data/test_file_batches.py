"""Image folders through Grain (`ImageFileBatches`): the same images, in a seeded order that a
batch number alone decides, from worker processes, from the cache, and after a restart."""

import numpy as np
import pytest
from PIL import Image

from tfsuite.config import DataConfig
from tfsuite.data.decode import decode_with_pil
from tfsuite.data.file_batches import ImageFileBatches
from tfsuite.data.folder import scan_image_folder
from tfsuite.data.pipeline import _build_file_data

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


@pytest.fixture(scope="module")
def scan(messy_folder):
    return scan_image_folder(messy_folder[0])


def batches(scan, **options):
    options = {"image_size": (20, 24), "channels": 3, "batch_size": 16, "shuffle": True,
               "seed": 3, "workers": 0, **options}
    return ImageFileBatches(scan.paths, scan.labels, **options)


def epoch(loader):
    """One epoch's (images, labels), then the loader moves on (as Keras calls it)."""
    pairs = [loader[i] for i in range(len(loader))]
    loader.on_epoch_end()
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def test_batches_hold_every_image_decoded_by_pil_in_a_new_order_each_epoch(scan):
    loader = batches(scan)
    first, labels = epoch(loader)
    second, labels_2 = epoch(loader)
    assert first.dtype == np.uint8 and first.shape == (len(scan.paths), 20, 24, 3)
    expected = np.stack([decode_with_pil(p, 3, (20, 24)) for p in scan.paths])
    order = [int(np.flatnonzero((expected == image).all(axis=(1, 2, 3)))[0]) for image in first]
    assert sorted(order) == list(range(len(scan.paths)))  # each image once
    np.testing.assert_array_equal(labels, np.asarray(scan.labels)[order])
    assert order != sorted(order)  # shuffled
    assert not np.array_equal(first, second)  # and shuffled again
    assert sorted(labels.tolist()) == sorted(labels_2.tolist())


def test_worker_processes_give_the_same_batches_and_set_epoch_repeats_an_epoch(scan):
    here = batches(scan)
    epoch(here)
    reference = epoch(here)  # epoch 1
    workers = batches(scan, workers=2)
    # Grain's processes decode; Keras reads from one thread (its own threads would race).
    assert workers.decoders == 2 and workers.workers == 1
    workers.set_epoch(1)  # a run resumed after epoch 0
    try:
        np.testing.assert_array_equal(epoch(workers)[0], reference[0])
        # Out of turn (Keras builds the model from one batch), then in turn again: epoch 2.
        for index in (1, 0, 1, 2):
            np.testing.assert_array_equal(workers[index][0], here[index][0])
    finally:
        workers.close()


def test_the_cache_serves_the_same_batches_without_decoding(scan, tmp_path):
    decoded = batches(scan, drop_remainder=True)
    cached = batches(scan, drop_remainder=True, cache=True)
    for _ in range(3):  # drop_remainder: the cache fills over the epochs
        np.testing.assert_array_equal(epoch(cached)[0], epoch(decoded)[0])
    assert cached._cache_complete()
    # Served from memory now: the files are no longer read.
    cached.decode.paths = [str(tmp_path / "gone.jpg").encode()] * len(scan.paths)
    np.testing.assert_array_equal(epoch(cached)[0], epoch(decoded)[0])


def test_a_file_broken_after_the_scan_names_itself(scan, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    loader = ImageFileBatches([str(broken)], [0], (8, 8), 3, 1, workers=0)
    with pytest.raises(OSError, match="broken.jpg"):
        loader[0]


def test_jpeg_reduced_on_decode_matches_a_full_decode(tmp_path):
    """`Image.draft` decodes a large JPEG at 1/2..1/8 scale; resized to the target, it stays
    within a few levels of decoding it whole."""
    y, x = np.mgrid[0:600, 0:800]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    path = str(tmp_path / "large.jpg")
    Image.fromarray(pixels).save(path, quality=95)
    reduced = decode_with_pil(path, 3, (64, 80)).astype(np.float64)
    with Image.open(path) as image:
        whole = np.asarray(image.convert("RGB").resize((80, 64), Image.BILINEAR), np.float64)
    assert reduced.shape == (64, 80, 3)
    assert np.abs(reduced - whole).mean() < 4.0


def test_folder_data_through_grain_keeps_the_reader_contract(messy_folder):
    """Skipped files with a count, the stable hash split and the class names: as tf.data."""
    root, good, bad = messy_folder
    config = DataConfig(source="folder", path=root, image_size=[16, 16], workers=0)
    data = _build_file_data(config, 8, 0, augment=False, drop_remainder=False, on_device=False)
    assert data.class_names == ["discs", "squares"]
    assert len(data.skipped) == bad
    assert data.num_train + data.num_val + data.num_test == good
    images, labels = data.test[0]
    assert images.dtype == np.uint8 and images.shape[1:] == (16, 16, 3)
    assert set(labels.tolist()) <= {0, 1}


def test_validation_passes_continue_one_stream_and_fill_the_cache(scan):
    """Unshuffled batches are alike every epoch: each pass continues the same stream (Keras
    counts a validation pass twice; starting the decoding processes again every epoch would
    cost seconds), and with the partial batch dropped the cache is complete without it."""
    loader = batches(scan, shuffle=False, drop_remainder=True, cache=True)
    first = epoch(loader)
    assert loader._cache_complete()
    loader = batches(scan, shuffle=False)
    np.testing.assert_array_equal(epoch(loader)[0][:len(first[0])], first[0])
    stream = loader._stream.iterator
    loader.on_epoch_end()
    np.testing.assert_array_equal(epoch(loader)[0][:len(first[0])], first[0])
    assert loader._stream.iterator is stream
