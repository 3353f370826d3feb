"""Input pipelines for image classification: decode, resize, cache, augment, batch.

tf.data is the data engine where TensorFlow is installed: images stay uint8 at
the configured size until batching; augmentation runs on batches, one Keras
layer per `map`, in parallel; models receive float32 values in 0..255. Image
folders on JAX and PyTorch (and without TensorFlow) are decoded by Grain worker
processes (`tfsuite.data.file_batches.ImageFileBatches`); without TensorFlow, and
for synthetic data on JAX (kept on the accelerator), array sources go through
`tfsuite.data.arrays.ArrayBatches`. Both hand uint8 batches to the model, which
casts them, and augments them itself where `data.augment_on` says device.
"""

import dataclasses
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from tfsuite.data.augment import augments, build_augmentation
from tfsuite.data.sources import load_images
from tfsuite.io import printable
from tfsuite.packages import has_tensorflow, install_hint

CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
logger = logging.getLogger("tfsuite")


@dataclass
class ImageData:
    """Batched datasets of (float32 images in 0..255, int32 labels) and what they hold."""

    train: object
    val: object
    test: object
    class_names: list
    num_train: int
    num_val: int
    num_test: int
    image_shape: tuple
    skipped: list = field(default_factory=list)
    feature_mean: np.ndarray = None  # per channel, after rescale (featurewise_center)
    feature_variance: np.ndarray = None
    augment_in_model: bool = False  # the training model augments (`data.augment_on`)
    unit = "img"  # what the progress lines count

    @property
    def num_classes(self):
        return len(self.class_names)

    def close(self):
        """Stops what decodes in the background (Grain's worker processes), if anything."""
        for batches in (self.train, self.val, self.test):
            if hasattr(batches, "close"):
                batches.close()


def _convert_channels(tf, image, channels):
    """Converts a decoded image with 1-4 channels to `channels` channels."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have in (2, 4):  # drop alpha
        image = image[..., : have - 1]
        have -= 1
    if channels == 1:
        return image if have == 1 else tf.cast(tf.round(tf.image.rgb_to_grayscale(
            tf.cast(image, tf.float32))), tf.uint8)
    if have == 1:
        image = tf.image.grayscale_to_rgb(image)
    if channels == 4:
        image = tf.concat([image, tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0),
                                          tf.constant(255, tf.uint8))], axis=-1)
    return image


def _decode_file(tf, path, needs_pil, channels):
    """Reads one image file as uint8 [h, w, channels]; PIL for what TF cannot decode."""
    from tfsuite.data.decode import decode_with_pil

    def with_tf():
        data = tf.io.read_file(path)
        image = tf.io.decode_image(data, channels=0, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, None])
        return image

    def with_pil():
        def decode(p):
            p = p.item() if hasattr(p, "item") else p  # bytes, or a 0-d array in eager mode
            return decode_with_pil(os.fsdecode(p) if isinstance(p, bytes) else str(p), channels)

        image = tf.numpy_function(decode, [path], tf.uint8)
        return tf.ensure_shape(image, [None, None, channels])

    if needs_pil:  # rare files: keep them out of the TF decoder
        return with_pil()
    decoded = with_tf()
    # decode_image can return 1-4 channels; normalize each case to `channels`.
    converted = tf.switch_case(tf.shape(decoded)[-1] - 1, [
        lambda c=c: _convert_channels(tf, tf.ensure_shape(decoded, [None, None, c]), channels)
        for c in (1, 2, 3, 4)])
    return tf.ensure_shape(converted, [None, None, channels])


def _resize(tf, image, size):
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _split_dataset(tf, split, size, channels):
    """An unbatched dataset of (uint8 [h, w, c], int32 label) for one split."""
    autotune = tf.data.AUTOTUNE
    if split.images is not None:
        images = split.images
        dataset = tf.data.Dataset.from_tensor_slices((images, split.labels))
        if images.shape[-1] != channels:
            dataset = dataset.map(lambda x, y: (_convert_channels(tf, x, channels), y),
                                  num_parallel_calls=autotune)
        if tuple(images.shape[1:3]) != tuple(size):
            dataset = dataset.map(lambda x, y: (_resize(tf, x, size), y),
                                  num_parallel_calls=autotune)
        return dataset
    if split.dataset is not None:  # TFDS
        return split.dataset.map(
            lambda x, y: (_resize(tf, _convert_channels(tf, x, channels), size),
                          tf.cast(y, tf.int32)), num_parallel_calls=autotune)
    pil_flags = np.array(split.needs_pil, dtype=bool)
    # File names as bytes: a name that is not UTF-8 cannot become a TensorFlow string.
    paths = np.array([os.fsencode(p) for p in split.paths], dtype=object)
    datasets = []
    for flag in (False, True):
        chosen = pil_flags == flag
        if chosen.any():
            part = tf.data.Dataset.from_tensor_slices((paths[chosen], split.labels[chosen]))
            datasets.append(part.map(
                lambda p, y, flag=flag: (_resize(tf, _decode_file(tf, p, flag, channels), size), y),
                num_parallel_calls=autotune, deterministic=True))
    if not datasets:
        return tf.data.Dataset.from_tensor_slices(
            (np.zeros((0, *size, channels), np.uint8), np.zeros((0,), np.int32)))
    dataset = datasets[0]
    for other in datasets[1:]:
        dataset = dataset.concatenate(other)
    return dataset


def _feature_stats(batches, rescale):
    """Per-channel mean and variance of (rescaled) training images, as ImageDataGenerator.fit;
    `batches` yields uint8 NumPy arrays [n, h, w, c]."""
    total, total_sq, count = 0.0, 0.0, 0
    for images in batches:
        x = images.astype(np.float64) * (rescale or 1.0)
        total = total + x.sum(axis=(0, 1, 2))
        total_sq = total_sq + (x ** 2).sum(axis=(0, 1, 2))
        count += x.shape[0] * x.shape[1] * x.shape[2]
    mean = total / count
    return mean.astype(np.float32), (total_sq / count - mean ** 2).astype(np.float32)


STATS_LIMIT = 20000  # training images the feature-wise statistics are computed on


def apply_augmentation(tf, dataset, layers, seed):
    """Maps each augmentation layer over a batched (images, labels) dataset.

    One layer per `map` (never a Sequential inside tf.data), in parallel. Each
    batch carries its own seed from `Dataset.random`, so a seeded run draws the
    same augmentation whatever the thread timing, and new draws every epoch.
    """
    autotune = tf.data.AUTOTUNE
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip(dataset, seeds).map(lambda xy, s: (xy[0], xy[1], s))
    for index, layer in enumerate(layers):
        # XLA fuses the per-pixel arithmetic of a layer into one loop: about 3x
        # faster on CPU than running its ops one by one (benchmarks/augment_throughput.py).
        augment = tf.function(lambda x, s, layer=layer, index=index: layer(x, seed=s + index),
                              jit_compile=True)
        dataset = dataset.map(lambda x, y, s, augment=augment: (augment(x, s), y, s),
                              num_parallel_calls=autotune)
    return dataset.map(lambda x, y, s: (x, y))


def build_image_data(data_config, batch_size, seed, augment=True, drop_remainder=False,
                     in_model=False):
    """Builds the batched train/validation/test datasets for an experiment.

    Args:
        data_config: `tfsuite.config.DataConfig`.
        batch_size: global batch size.
        seed: seeds the split, the shuffle and the augmentation.
        augment: apply `data_config.augment` to the training set. Defaults to `True`.
        drop_remainder: leave out the last, partial batch of the training and
            validation sets (a JAX device mesh splits only full batches evenly).
            Defaults to `False`.
        in_model: the caller can put the augmentation into the training model;
            it goes there when `data.augment_on` resolves to the device
            (`augments_on_device`), and `ImageData.augment_in_model` says so.
            Defaults to `False`.

    Returns:
        An `ImageData`.
    """
    on_device = keep_on_device(data_config)
    feeder = _feeder(data_config, on_device)
    in_model = bool(augment and in_model and augments_on_device(data_config, feeder)
                    and augments(data_config.augment))
    augment = augment and not in_model
    if feeder != "tf.data":
        build = _build_file_data if feeder == "files" else _build_array_data
        data = build(data_config, batch_size, seed, augment, drop_remainder, on_device)
        return dataclasses.replace(data, augment_in_model=in_model)
    import tensorflow as tf

    raw = load_images(data_config, seed)
    size = tuple(data_config.image_size)
    channels = CHANNELS[data_config.color_mode]
    autotune = tf.data.AUTOTUNE
    splits = {}
    for name in ("train", "val", "test"):
        dataset = _split_dataset(tf, getattr(raw, name), size, channels)
        splits[name] = dataset.cache() if data_config.cache else dataset
    aug = data_config.augment
    mean = variance = None
    if aug.featurewise_center or aug.featurewise_std_normalization:
        mean, variance = _feature_stats(
            (images.numpy() for images, _ in splits["train"].take(STATS_LIMIT).batch(1024)),
            aug.rescale)
    layers = build_augmentation(aug, seed, image_dtype="uint8") if augment else []

    def finish(dataset, training, drop=drop_remainder):
        if training:
            dataset = dataset.shuffle(min(len(raw.train), 20000), seed=seed,
                                      reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, num_parallel_calls=autotune, drop_remainder=drop)
        if training and layers:  # on uint8 batches: the first layer casts when it must
            dataset = apply_augmentation(tf, dataset, layers, seed)
        dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y),
                              num_parallel_calls=autotune)
        return dataset.prefetch(autotune)

    return ImageData(
        train=finish(splits["train"], True),
        val=finish(splits["val"], False) if len(raw.val) else None,
        test=finish(splits["test"], False, drop=False) if len(raw.test) else None,
        class_names=list(raw.class_names), num_train=len(raw.train), num_val=len(raw.val),
        num_test=len(raw.test), image_shape=(*size, channels), skipped=list(raw.skipped),
        feature_mean=mean, feature_variance=variance, augment_in_model=in_model)


def _tf_data_decodes_files():
    """Image files go through tf.data on the TensorFlow backend; through Grain and PIL on JAX
    and PyTorch (no TensorFlow work in their process), and without TensorFlow."""
    import keras

    return keras.backend.backend() == "tensorflow" and has_tensorflow()


def _feeder(data_config, on_device):
    """What serves the batches: "tf.data", "arrays" (`ArrayBatches`) or "files" (Grain's
    `ImageFileBatches`)."""
    if data_config.source == "folder":
        return "tf.data" if _tf_data_decodes_files() else "files"
    return "arrays" if on_device or not has_tensorflow() else "tf.data"


def augments_on_device(data_config, feeder="tf.data"):
    """`data.augment_on`, resolved. auto augments inside the compiled step when JAX trains on
    a GPU or TPU (it warps a batch in far less time than the host cores take), and whenever
    tf.data does not feed the batches (the host would run the layers op by op, uncompiled)."""
    from tfsuite.data.arrays import feeds_an_accelerator

    if data_config.augment_on == "auto":
        return feeds_an_accelerator() or feeder != "tf.data"
    return data_config.augment_on == "device"


ARRAY_SOURCES = ("digits", "npz", "synthetic")
DEVICE_SHARE = 0.25  # of the accelerator's memory synthetic data may fill by default


def keep_on_device(data_config):
    """`data.on_device`, resolved: null keeps synthetic data on a JAX accelerator when it
    fills under `DEVICE_SHARE` of its memory (a throughput run then measures training, not
    host-to-device copies); other sources are prefetched to the device batch by batch."""
    import keras

    if data_config.on_device is False or keras.backend.backend() != "jax":
        if data_config.on_device:  # a JAX run's config, exported or evaluated on TensorFlow
            logger.warning("data.on_device=true applies to the JAX backend only; the data "
                           "stays on the host on %s.", keras.backend.backend())
        return False
    if data_config.on_device:
        return True
    if data_config.source != "synthetic":
        return False
    import jax

    device = jax.devices()[0]
    limit = (device.memory_stats() or {}).get("bytes_limit") if device.platform != "cpu" else 0
    channels = CHANNELS[data_config.color_mode]
    size = data_config.num_examples * int(np.prod(data_config.image_size)) * channels
    return bool(limit) and size < DEVICE_SHARE * limit


def _build_array_data(data_config, batch_size, seed, augment, drop_remainder, on_device):
    """`build_image_data` for array sources, without tf.data (see the module docstring)."""
    from tfsuite.data.arrays import ArrayBatches
    from tfsuite.errors import user_error

    if data_config.source not in ARRAY_SOURCES:
        raise user_error(f"data.source={data_config.source!r} needs TensorFlow", "TensorFlow "
                         "installed (tf.data decodes image files and TFDS datasets), or an "
                         f"array source: one of {list(ARRAY_SOURCES)}",
                         f"data.source={data_config.source!r} with no `tensorflow` package",
                         "Run `pip install tensorflow`, or convert the images to an .npz file "
                         "(arrays x and y) and use data.source=npz.")
    raw = load_images(data_config, seed)
    size = tuple(data_config.image_size)
    channels = CHANNELS[data_config.color_mode]
    splits = {name: (_conform(getattr(raw, name).images, size, channels),
                     getattr(raw, name).labels) for name in ("train", "val", "test")}
    aug = data_config.augment
    mean = variance = None
    if aug.featurewise_center or aug.featurewise_std_normalization:
        images = splits["train"][0][:STATS_LIMIT]
        mean, variance = _feature_stats((images[i:i + 1024] for i in range(0, len(images), 1024)),
                                        aug.rescale)
    layers = build_augmentation(aug, seed, image_dtype="uint8") if augment else []

    def batches(name, training, drop=drop_remainder):
        images, labels = splits[name]
        if not len(labels):
            return None
        return ArrayBatches(images, labels, batch_size, shuffle=training, seed=seed,
                            augment_layers=layers if training else (), drop_remainder=drop,
                            on_device=on_device)

    return ImageData(
        train=batches("train", True), val=batches("val", False),
        test=batches("test", False, drop=False), class_names=list(raw.class_names),
        num_train=len(raw.train), num_val=len(raw.val), num_test=len(raw.test),
        image_shape=(*size, channels), skipped=list(raw.skipped), feature_mean=mean,
        feature_variance=variance)


def _build_file_data(data_config, batch_size, seed, augment, drop_remainder, on_device):
    """`build_image_data` for image folders, decoded by Grain (see `tfsuite.data.file_batches`)."""
    from tfsuite.data.file_batches import ImageFileBatches

    _require_grain()
    raw = load_images(data_config, seed)
    size = tuple(data_config.image_size)
    channels = CHANNELS[data_config.color_mode]
    layers = build_augmentation(data_config.augment, seed, image_dtype="uint8") if augment else []

    def batches(name, training, drop=drop_remainder):
        split = getattr(raw, name)
        if not len(split):
            return None
        return ImageFileBatches(split.paths, split.labels, size, channels, batch_size,
                                shuffle=training, seed=seed, drop_remainder=drop,
                                workers=data_config.workers, cache=data_config.cache,
                                augment_layers=layers if training else ())

    train = batches("train", True)
    aug = data_config.augment
    mean = variance = None
    if aug.featurewise_center or aug.featurewise_std_normalization:
        stats = ImageFileBatches(raw.train.paths[:STATS_LIMIT], raw.train.labels[:STATS_LIMIT],
                                 size, channels, 256, workers=data_config.workers)
        try:
            mean, variance = _feature_stats((stats[i][0] for i in range(len(stats))),
                                            aug.rescale)
        finally:
            stats.close()
    return ImageData(
        train=train, val=batches("val", False), test=batches("test", False, drop=False),
        class_names=list(raw.class_names), num_train=len(raw.train), num_val=len(raw.val),
        num_test=len(raw.test), image_shape=(*size, channels), skipped=list(raw.skipped),
        feature_mean=mean, feature_variance=variance)


def _require_grain():
    from tfsuite.errors import user_error
    from tfsuite.packages import is_installed

    if not is_installed("grain"):
        import keras

        raise user_error(f"Image folders on {keras.backend.backend()} need Grain",
                         "the `grain` package (Google's data loader for JAX decodes the "
                         "files in worker processes)", "no `grain` package",
                         f"Run `pip install grain` (or {install_hint('jax')}), or train on "
                         "the TensorFlow backend, where tf.data decodes them.")


def build_evaluation_data(data_config, batch_size, path, class_names):
    """Every image of another class folder as the test split, labelled by a trained model's
    `class_names` (the folder's classes must be among them), decoded as training decodes.

    Returns:
        An `ImageData` with only `test`.
    """
    from tfsuite.data.folder import scan_image_folder
    from tfsuite.data.sources import Split

    scan = scan_image_folder(path, class_names=class_names, name="--data")
    split = Split(labels=np.array(scan.labels, np.int32), paths=list(scan.paths),
                  needs_pil=list(scan.needs_pil))
    size = tuple(data_config.image_size)
    channels = CHANNELS[data_config.color_mode]
    if _tf_data_decodes_files():
        import tensorflow as tf

        test = (_split_dataset(tf, split, size, channels).batch(batch_size)
                .map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(tf.data.AUTOTUNE))
    else:
        from tfsuite.data.file_batches import ImageFileBatches

        _require_grain()
        test = ImageFileBatches(split.paths, split.labels, size, channels, batch_size,
                                workers=data_config.workers)
    return ImageData(train=None, val=None, test=test, class_names=list(class_names),
                     num_train=0, num_val=0, num_test=len(split), image_shape=(*size, channels),
                     skipped=list(scan.skipped))


def _conform(images, size, channels):
    """uint8 images at `size` with `channels`, converted as the tf.data pipeline does (alpha
    dropped, ITU-R 601 luma for grayscale, bilinear antialiased resize) on the Keras backend."""
    import keras

    have = images.shape[-1]
    if have != channels:
        if have in (2, 4):
            images, have = images[..., : have - 1], have - 1
        if channels == 1 and have == 3:
            luma = images.astype(np.float32) @ np.array([0.2989, 0.587, 0.114], np.float32)
            images = np.round(luma)[..., None].astype(np.uint8)
        elif have == 1:
            images = np.repeat(images, 3, axis=-1)
        if channels == 4:
            images = np.concatenate([images, np.full(images.shape[:-1] + (1,), 255, np.uint8)],
                                    axis=-1)
    if tuple(images.shape[1:3]) == tuple(size) or not len(images):
        return images
    resized = [keras.ops.convert_to_numpy(keras.ops.image.resize(
        images[i:i + 512].astype(np.float32), size, interpolation="bilinear", antialias=True))
        for i in range(0, len(images), 512)]
    return np.clip(np.round(np.concatenate(resized)), 0, 255).astype(np.uint8)


def load_image_file(path, data_config):
    """Reads one image file for prediction: uint8 [h, w, c] at the configured size, decoded
    as training decodes image folders on this backend (tf.data, or PIL)."""
    from tfsuite.data.folder import check_image

    ok, needs_pil, reason = check_image(path)
    if not ok:
        from tfsuite.errors import user_error

        raise user_error("Cannot read image", "a png/jpg/jpeg/bmp/gif file",
                         f"image={printable(path)!r} ({reason})")
    channels = CHANNELS[data_config.color_mode]
    if not _tf_data_decodes_files():
        from tfsuite.data.decode import decode_with_pil

        return decode_with_pil(path, channels, tuple(data_config.image_size))
    import tensorflow as tf

    image = _decode_file(tf, tf.constant(os.fsencode(path)), needs_pil, channels)
    return _resize(tf, image, tuple(data_config.image_size)).numpy()
