import os
import time

import numpy as np
import pytest

from tfsuite.config import DataConfig
from tfsuite.data.pipeline import build_image_data
from tfsuite.data.sources import load_digits_arrays, split_indices, write_digits_folder
from tfsuite.errors import UserError


def test_digits_are_the_real_scikit_learn_digits():
    images, labels, names = load_digits_arrays()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert names == [str(i) for i in range(10)] and set(labels) == set(range(10))
    assert images.max() == 255


def test_splits_are_disjoint_seeded_and_complete():
    train, val, test = split_indices(100, 0.1, 0.2, seed=3)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(np.concatenate([train, val, test])) == list(range(100))
    again = split_indices(100, 0.1, 0.2, seed=3)
    assert all((a == b).all() for a, b in zip((train, val, test), again))


def test_write_digits_folder_and_train_split_counts(tmp_path):
    out = str(tmp_path / "digits")
    assert write_digits_folder(out) == 1797
    assert sorted(os.listdir(out)) == [str(i) for i in range(10)]
    with pytest.raises(UserError, match="not empty"):
        write_digits_folder(out)  # never overwrites
    config = DataConfig(source="folder", path=out, image_size=[16, 16], color_mode="grayscale")
    data = build_image_data(config, batch_size=128, seed=0, augment=False)
    assert data.num_train + data.num_val + data.num_test == 1797
    assert abs(data.num_test - 359) < 40 and abs(data.num_val - 180) < 30  # hashed: close
    assert data.class_names == [str(i) for i in range(10)]


def test_folder_splits_are_stable_when_files_change():
    from tfsuite.data.sources import hash_split

    names = [f"class_{i % 3}/img_{i}.png" for i in range(500)]
    before = hash_split(names, 0.1, 0.2, seed=1)
    after = hash_split(names[:400] + ["new/extra.png"], 0.1, 0.2, seed=1)
    test_before = {names[i] for i in before[2]}
    test_after = {(names[:400] + ["new/extra.png"])[i] for i in after[2]}
    assert test_after - {"new/extra.png"} == {n for n in test_before if n in names[:400]}
    assert 70 < len(before[2]) < 130 and len(set(before[0]) & set(before[2])) == 0


@pytest.mark.parametrize("layout", ["xy", "images_labels", "train_test"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    x = rng.random((60, 12, 12)).astype(np.float32)  # floats in 0..1, no channel axis
    y = rng.integers(0, 3, 60)
    path = str(tmp_path / "data.npz")
    if layout == "xy":
        np.savez(path, x=x, y=y, class_names=np.array(["a", "b", "c"]))
    elif layout == "images_labels":
        np.savez(path, images=(x * 255).astype(np.uint8), labels=y)
    else:
        np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    config = DataConfig(source="npz", path=path, image_size=[12, 12], color_mode="grayscale")
    data = build_image_data(config, batch_size=8, seed=0, augment=False)
    assert data.num_train + data.num_val + data.num_test == 60
    if layout == "train_test":
        assert data.num_test == 20
    if layout == "xy":
        assert data.class_names == ["a", "b", "c"]
    images, _ = next(iter(data.test))
    assert images.shape[1:] == (12, 12, 1) and float(np.max(images)) > 200  # scaled to 0..255


def test_npz_errors(tmp_path):
    path = str(tmp_path / "bad.npz")
    np.savez(path, pixels=np.zeros((3, 4, 4)))
    config = DataConfig(source="npz", path=path)
    with pytest.raises(UserError, match="Unrecognized .npz layout"):
        build_image_data(config, batch_size=8, seed=0)
    with pytest.raises(UserError, match="not found"):
        build_image_data(DataConfig(source="npz", path=str(tmp_path / "none.npz")), 8, 0)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(UserError, match="Cannot read the .npz file"):
        build_image_data(DataConfig(source="npz", path=str(corrupt)), 8, 0)
    single = str(tmp_path / "single.npy")
    np.save(single, np.zeros((3, 4, 4)))
    with pytest.raises(UserError, match="Cannot read the .npz file"):
        build_image_data(DataConfig(source="npz", path=single), 8, 0)


def test_tfds_not_prepared_fails_at_once(tmp_path):
    config = DataConfig(source="tfds", tfds_name="mnist", data_dir=str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(UserError) as e:
        build_image_data(config, batch_size=8, seed=0)
    assert time.perf_counter() - started < 30
    assert "not prepared locally" in str(e.value) and "tfds build mnist" in str(e.value)
    with pytest.raises(UserError, match="Unknown TFDS dataset"):
        build_image_data(DataConfig(source="tfds", tfds_name="no_such_dataset_xyz",
                                    data_dir=str(tmp_path)), 8, 0)


def test_tfds_prepared_locally_loads(tmp_path):
    """A real TFDS dataset, built and prepared on disk offline, read back by name."""
    import tensorflow_datasets as tfds

    class TinyShapes(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(10, 10, 3)),
                "label": tfds.features.ClassLabel(names=["dark", "bright"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(40, 0),
                    "test": self._generate_examples(10, 1)}

        def _generate_examples(self, count, seed):
            rng = np.random.default_rng(seed)
            for i in range(count):
                label = i % 2
                image = rng.integers(0, 100, (10, 10, 3)) + 150 * label
                yield i, {"image": image.astype(np.uint8), "label": label}

    TinyShapes(data_dir=str(tmp_path)).download_and_prepare()
    config = DataConfig(source="tfds", tfds_name="tiny_shapes", data_dir=str(tmp_path),
                        image_size=[10, 10], validation_split=0.25)
    data = build_image_data(config, batch_size=8, seed=0, augment=False)
    assert data.class_names == ["dark", "bright"]
    assert (data.num_train, data.num_val, data.num_test) == (30, 10, 10)
    assert sum(int(x.shape[0]) for x, _ in data.train) == 30


@pytest.mark.backend_agnostic
def test_on_device_batches_match_the_host_pipeline():
    """`data.on_device=true` (JAX) keeps the arrays on the device: the same images, labels
    and split as the host pipeline, and a new order every epoch; elsewhere it is ignored."""
    import keras

    config = DataConfig(source="digits", image_size=[8, 8], color_mode="grayscale",
                        on_device=True)
    if keras.backend.backend() != "jax":  # a JAX run's config, evaluated on TensorFlow
        data = build_image_data(config, batch_size=64, seed=0, augment=False)
        assert data.num_train > 0 and not isinstance(data.train, keras.utils.PyDataset)
        return
    import dataclasses

    on_device = build_image_data(config, batch_size=64, seed=0, augment=False)
    host = build_image_data(dataclasses.replace(config, on_device=False), batch_size=64,
                            seed=0, augment=False)
    assert (on_device.num_train, on_device.num_test) == (host.num_train, host.num_test)
    test = [np.concatenate([np.asarray(b[i]) for b in d.test]) for d in (on_device, host)
            for i in (0, 1)]
    np.testing.assert_array_equal(test[0], test[2])  # images, in the same order
    np.testing.assert_array_equal(test[1], test[3])  # labels
    first = [np.asarray(y) for _, y in on_device.train]
    on_device.train.on_epoch_end()
    second = [np.asarray(y) for _, y in on_device.train]
    assert sorted(np.concatenate(first)) == sorted(np.concatenate(second))
    assert any((a != b).any() for a, b in zip(first, second))  # reshuffled
    images, _ = on_device.train[0]
    assert images.dtype == "float32" and images.shape == (64, 8, 8, 1)
