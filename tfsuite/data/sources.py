"""Image sources: bundled digits, NumPy .npz, image folders, TFDS, synthetic.

Each source returns a `RawImages`: NumPy arrays or file lists for the
train/validation/test splits, plus class names and skipped files. The tf.data
side (decode, resize, cache, augment, batch) lives in `tfsuite.data.pipeline`.
"""

import hashlib
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from tfsuite.data.folder import IMAGE_EXTENSIONS, scan_image_folder
from tfsuite.errors import user_error


@dataclass
class Split:
    """One split: either `images`/`labels` arrays or `paths`/`labels` files."""

    labels: np.ndarray
    images: np.ndarray = None  # uint8 [n, h, w, c]
    paths: list = None
    needs_pil: list = None
    dataset: object = None  # a tf.data.Dataset of (image, label) (TFDS)

    def __len__(self):
        return len(self.labels)


@dataclass
class RawImages:
    """What a source found, split three ways."""

    train: Split
    val: Split
    test: Split
    class_names: list
    skipped: list = field(default_factory=list)  # (path, reason)


def split_indices(num_examples, validation_split, test_split, seed):
    """Shuffles 0..n-1 with `seed` and cuts it into train, validation, test indices."""
    order = np.random.default_rng(seed).permutation(num_examples)
    num_test = int(round(num_examples * test_split))
    num_val = int(round(num_examples * validation_split))
    test, val, train = np.split(order, [num_test, num_test + num_val])
    return train, val, test


def hash_split(keys, validation_split, test_split, seed):
    """Assigns each key (a file's path inside the folder) to a split by hashing it.

    A file's split depends only on its own name and the seed, so adding or
    removing files never moves other files between train and test (which a
    permutation of the whole list would do, leaking training images into the
    test set of a later `evaluate`). Split sizes are close to the fractions.
    """
    train, val, test = [], [], []
    for index, key in enumerate(keys):
        # Names that are not UTF-8 keep their bytes (os.fsencode): they hash like any name.
        digest = hashlib.sha256(f"{seed}:".encode() + os.fsencode(key)).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2 ** 64
        if fraction < test_split:
            test.append(index)
        elif fraction < test_split + validation_split:
            val.append(index)
        else:
            train.append(index)
    return [np.array(part, dtype=np.int64) for part in (train, val, test)]


def _array_splits(images, labels, data_config, seed):
    train, val, test = split_indices(len(labels), data_config.validation_split,
                                     data_config.test_split, seed)
    return [Split(labels=labels[i].astype(np.int32), images=images[i]) for i in (train, val, test)]


def load_digits_arrays():
    """scikit-learn's 1,797 real 8x8 handwritten digits as uint8 [n, 8, 8, 1] in 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int32), [str(c) for c in bunch.target_names]


def write_digits_folder(out_dir, scale=4):
    """Writes the digits as PNG files in class folders (`out_dir/<digit>/<i>.png`).

    Args:
        out_dir: destination; must not exist yet or be empty.
        scale: nearest-neighbour upscaling factor (8x8 -> 32x32 by default).

    Returns:
        The number of files written.
    """
    from PIL import Image

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise user_error("Destination is a file", "a new or empty folder", f"out={out_dir!r}")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise user_error("Destination folder is not empty", "a new or empty folder",
                         f"out={out_dir!r}", "Choose another folder; nothing was overwritten.")
    images, labels, class_names = load_digits_arrays()
    for name in class_names:
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        picture = Image.fromarray(image[..., 0]).resize((8 * scale, 8 * scale), Image.NEAREST)
        picture.save(os.path.join(out_dir, class_names[label], f"{i:04d}.png"))
    return len(labels)


def _load_npz(path):
    if not os.path.isfile(path):
        raise user_error("NumPy file not found", "an existing .npz file", f"data.path={path!r}")
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # a .npy file holds one array, not a mapping
            raise ValueError("a single array (.npy), not an .npz archive")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise user_error("Cannot read the .npz file", "an archive written by numpy.savez",
                         f"data.path={path!r} ({e})") from None
    with archive:
        keys = set(archive.files)
        for image_key, label_key in (("x", "y"), ("images", "labels"), ("x_train", "y_train")):
            if {image_key, label_key} <= keys:
                break
        else:
            raise user_error("Unrecognized .npz layout", "arrays named x/y, images/labels, or "
                             "x_train/y_train (+ optional x_test/y_test, class_names)",
                             f"data.path={path!r} with arrays {sorted(keys)}")
        arrays = {k: archive[k] for k in archive.files}
    images, labels = arrays[image_key], arrays[label_key].reshape(-1)
    test = None
    if image_key == "x_train" and {"x_test", "y_test"} <= keys:
        test = (arrays["x_test"], arrays["y_test"].reshape(-1))
    names = [str(n) for n in arrays["class_names"]] if "class_names" in keys else None
    return images, labels, test, names


def _as_uint8_images(images, path):
    """Accepts [n, h, w], [n, h, w, c] in 0..255, or floats in 0..1; returns uint8 NHWC."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise user_error("Images in the .npz file have the wrong shape",
                         "[n, height, width] or [n, height, width, 1|3|4]",
                         f"data.path={path!r} with shape {images.shape}")
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
        if images.max() <= 1.0:
            images = images * 255.0
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    return images


def load_npz(data_config, seed):
    images, labels, test, names = _load_npz(data_config.path)
    images = _as_uint8_images(images, data_config.path)
    labels = labels.astype(np.int64)
    if len(images) != len(labels):
        raise user_error("Images and labels differ in length", "one label per image",
                         f"{len(images)} images and {len(labels)} labels")
    num_classes = int(max(labels.max(), test[1].max() if test else 0)) + 1
    names = names or [str(i) for i in range(num_classes)]
    if test is None:
        train, val, test_split = _array_splits(images, labels, data_config, seed)
    else:
        train_idx, val_idx, _ = split_indices(len(labels), data_config.validation_split, 0.0, seed)
        train = Split(labels=labels[train_idx].astype(np.int32), images=images[train_idx])
        val = Split(labels=labels[val_idx].astype(np.int32), images=images[val_idx])
        test_split = Split(labels=test[1].astype(np.int32),
                           images=_as_uint8_images(test[0], data_config.path))
    return RawImages(train, val, test_split, names)


def load_folder(data_config, seed):
    scan = scan_image_folder(data_config.path)
    paths = np.array(scan.paths, dtype=object)
    labels = np.array(scan.labels, dtype=np.int32)
    needs_pil = np.array(scan.needs_pil, dtype=bool)
    keys = [os.path.relpath(p, data_config.path) for p in scan.paths]
    splits = [Split(labels=labels[i], paths=list(paths[i]), needs_pil=list(needs_pil[i]))
              for i in hash_split(keys, data_config.validation_split, data_config.test_split,
                                  seed)]
    return RawImages(*splits, scan.class_names, scan.skipped)


def load_digits(data_config, seed):
    images, labels, names = load_digits_arrays()
    return RawImages(*_array_splits(images, labels, data_config, seed), names)


def load_synthetic(data_config, seed):
    """Random images whose mean brightness depends on the class (learnable, for smoke tests)."""
    rng = np.random.default_rng(seed)
    height, width = data_config.image_size
    channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[data_config.color_mode]
    n, k = data_config.num_examples, data_config.num_classes
    labels = rng.integers(0, k, n).astype(np.int32)
    base = (labels.astype(np.float32) + 0.5) * (200.0 / k)
    images = np.empty((n, height, width, channels), np.uint8)
    for start in range(0, n, 256):  # in chunks: ImageNet-sized sets need no float copy
        stop = min(n, start + 256)
        # Uniform noise of std 20 (integers draw ~10x faster than normals: a
        # throughput run's 10,000 images at 224x224 take seconds, not minutes).
        noise = rng.integers(-35, 36, (stop - start, height, width, channels), dtype=np.int16)
        images[start:stop] = np.clip(base[start:stop, None, None, None] + noise, 0, 255)
    return RawImages(*_array_splits(images, labels, data_config, seed), [str(i) for i in range(k)])


def load_tfds(data_config, seed):
    """A TFDS dataset that is already prepared under `data.data_dir` (never downloads)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise user_error("TFDS is not installed", "the tensorflow-datasets package",
                         f"data.source='tfds' ({e})", "Run `pip install tensorflow-datasets "
                         "importlib_resources`.") from None
    name = data_config.tfds_name
    try:
        builder = tfds.builder(name, data_dir=data_config.data_dir)
    except Exception as e:  # DatasetNotFoundError and friends
        raise user_error("Unknown TFDS dataset", "a name from `tfds.list_builders()`",
                         f"data.tfds_name={name!r} ({type(e).__name__})") from None
    if not os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json")):
        raise user_error(
            "TFDS dataset is not prepared locally", f"a prepared copy under {builder.data_dir!r}",
            f"data.tfds_name={name!r}, data.data_dir={data_config.data_dir!r}",
            f"Prepare it where there is network (`tfds build {name} --data_dir DIR`) and copy "
            "DIR here; tfsuite does not download, so it fails now instead of retrying for "
            "minutes.")
    info = builder.info
    image_key = next(k for k, f in info.features.items() if type(f).__name__ == "Image")
    label_key = next(k for k, f in info.features.items() if type(f).__name__ == "ClassLabel")
    names = list(info.features[label_key].names)
    splits = info.splits
    test_name = "test" if "test" in splits else None
    train_total = splits["train"].num_examples
    if test_name is None:
        num_test = int(round(train_total * data_config.test_split))
    num_val = int(round(train_total * data_config.validation_split))

    def take(split):
        dataset = builder.as_dataset(split=split, shuffle_files=False)
        return dataset.map(lambda ex: (ex[image_key], ex[label_key]))

    def count(split):
        return splits[split].num_examples

    if test_name:
        test = Split(labels=np.zeros(count("test")), dataset=take("test"))
        val = Split(labels=np.zeros(num_val), dataset=take(f"train[:{num_val}]"))
        train = Split(labels=np.zeros(train_total - num_val), dataset=take(f"train[{num_val}:]"))
    else:
        test = Split(labels=np.zeros(num_test), dataset=take(f"train[:{num_test}]"))
        val = Split(labels=np.zeros(num_val),
                    dataset=take(f"train[{num_test}:{num_test + num_val}]"))
        train = Split(labels=np.zeros(train_total - num_test - num_val),
                      dataset=take(f"train[{num_test + num_val}:]"))
    return RawImages(train, val, test, names)


LOADERS = {"digits": load_digits, "npz": load_npz, "folder": load_folder,
           "tfds": load_tfds, "synthetic": load_synthetic}


def load_images(data_config, seed):
    """Loads `data_config.source` into a `RawImages`."""
    return LOADERS[data_config.source](data_config, seed)


__all__ = ["IMAGE_EXTENSIONS", "RawImages", "Split", "load_images", "write_digits_folder"]
