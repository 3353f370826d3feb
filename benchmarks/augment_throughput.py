"""Augmentation throughput: tfsuite's tf.data pipeline against the legacy ImageDataGenerator.

Same files (600 random 256x256 JPEGs in 4 class folders), same augmentation
(rotation 20, width/height shift 0.2, shear 0.2, zoom 0.2, horizontal flip,
fill nearest), same output (float32 batches of 32 x 224 x 224 x 3), one process.
The legacy generator runs through its standard `flow_from_directory`, which
decodes every file every epoch. tfsuite decodes and resizes once, caches the
uint8 images in memory (stated in the output), and augments whole batches.

The path without tf.data (JAX: Grain decodes in worker processes, the augmentation
runs compiled, as inside the training step) is measured the same way, in a JAX process.

Usage: python benchmarks/augment_throughput.py [--images 600] [--epochs 3]
Both interpolations are measured (the legacy generator with interpolation_order
1 and 0). Prints a table, then a last line of JSON whose `ratio` is tfsuite
(bilinear, cached) over the legacy generator (bilinear, its default).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

AUGMENT = dict(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
               shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
SIZE = (224, 224)
BATCH = 32


def make_folder(root, count, seed=0):
    """Random 256x256 RGB JPEGs in 4 class folders (kept between runs)."""
    from PIL import Image

    marker = os.path.join(root, f".complete-{count}")
    if os.path.exists(marker):
        return root
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = os.path.join(root, f"class_{i % 4}")
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:04d}.jpg"), quality=90)
    open(marker, "w").close()
    return root


def time_batches(iterator, num_images):
    """Images per second to draw `num_images` images (after one warm-up batch)."""
    batch = next(iterator)
    images = np.asarray(batch[0])
    assert images.shape[1:] == (*SIZE, 3) and images.dtype == np.float32, images.dtype
    seen, start = 0, time.perf_counter()
    while seen < num_images:
        seen += len(next(iterator)[0])
    return seen / (time.perf_counter() - start)


def legacy_rate(root, num_images, interpolation_order):
    from tf_keras.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(**AUGMENT, interpolation_order=interpolation_order)
    generator = generator.flow_from_directory(
        root, target_size=SIZE, batch_size=BATCH, class_mode="sparse", seed=0)
    return time_batches(iter(generator), num_images)


def tfsuite_rates(root, num_images, timed, interpolation):
    from tfsuite.config import AugmentConfig, DataConfig
    from tfsuite.data.pipeline import build_image_data

    config = DataConfig(source="folder", path=root, image_size=list(SIZE), color_mode="rgb",
                        validation_split=0.0, test_split=0.0, cache=True,
                        augment=AugmentConfig(**AUGMENT, interpolation=interpolation))
    data = build_image_data(config, BATCH, seed=0)
    iterator = iter(data.train.repeat())
    # The first pass decodes and fills the cache (minus the warm-up batch).
    first = time_batches(iterator, num_images - 2 * BATCH)
    cached = time_batches(iterator, timed)
    return first, cached


def grain_jax_rates(root, num_images, timed, interpolation):
    """The path without tf.data (JAX): Grain's worker processes decode and resize, and the
    augmentation runs as it does inside the training step, compiled by XLA (here on the CPU;
    on a GPU it runs there)."""
    import jax

    from tfsuite.config import AugmentConfig
    from tfsuite.data.augment.in_model import TrainingAugmentation
    from tfsuite.data.file_batches import ImageFileBatches
    from tfsuite.data.folder import scan_image_folder

    scan = scan_image_folder(root)
    loader = ImageFileBatches(scan.paths, scan.labels, SIZE, 3, BATCH, shuffle=True, cache=True)
    layer = TrainingAugmentation(AugmentConfig(**AUGMENT, interpolation=interpolation), seed=0)
    layer.build((BATCH, *SIZE, 3))
    step = jax.jit(lambda state, x: layer.stateless_call([], state, x, training=True))

    state = [v.value for v in layer.non_trainable_variables]
    # Compiled once per batch shape, as the training step is: the last, partial batch's
    # compilation is a one-off, not throughput.
    for size in {BATCH, num_images % BATCH or BATCH}:
        step(state, np.zeros((size, *SIZE, 3), np.uint8))[0].block_until_ready()

    def augmented(state=state):
        # One batch in flight, as in a training loop (JAX dispatches asynchronously, so the
        # next batch is read while this one computes) and as tf.data's prefetch does.
        ready = None
        while True:
            for index in range(len(loader)):
                images, labels = loader[index]
                out, state = step(state, images)
                if ready is not None:
                    yield np.asarray(ready[0]), ready[1]
                ready = out, labels
            loader.on_epoch_end()

    iterator = augmented()
    first = time_batches(iterator, num_images - 2 * BATCH)
    cached = time_batches(iterator, timed)
    loader.close()
    return first, cached


def run_grain_jax(args, interpolation):
    """`grain_jax_rates` in a JAX process (one Keras backend per process)."""
    command = [sys.executable, os.path.abspath(__file__), "--grain-jax", interpolation,
               "--images", str(args.images), "--epochs", str(args.epochs), "--data", args.data]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "jax"})
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per pipeline")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "_data",
                                                       "augment_jpegs"))
    parser.add_argument("--grain-jax", choices=["bilinear", "nearest"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = make_folder(args.data, args.images)
    timed = args.images * args.epochs
    if args.grain_jax:
        print(json.dumps(grain_jax_rates(root, args.images, timed, args.grain_jax)))
        return
    figures = {}
    print(f"{'pipeline (interpolation)':<72}{'images/s':>10}{'vs legacy':>11}")
    for interpolation, order in (("bilinear", 1), ("nearest", 0)):
        legacy = legacy_rate(root, timed, order)
        first, cached = tfsuite_rates(root, args.images, timed, interpolation)
        jax_first, jax_cached = run_grain_jax(args, interpolation)
        figures[interpolation] = {"legacy": legacy, "first_pass": first, "cached": cached,
                                  "grain_jax_first_pass": jax_first,
                                  "grain_jax_cached": jax_cached}
        for name, rate in ((f"legacy flow_from_directory, interpolation_order={order}", legacy),
                           ("tfsuite, first pass (decode + resize + augment)", first),
                           ("tfsuite, decoded images cached in memory", cached),
                           ("tfsuite JAX: Grain first pass, augmentation compiled", jax_first),
                           ("tfsuite JAX: Grain cached, augmentation compiled", jax_cached)):
            print(f"{name + ' (' + interpolation + ')':<72}{rate:>10.0f}{rate / legacy:>10.1f}x")
    bilinear = figures["bilinear"]
    print(json.dumps({
        "benchmark": "augment_throughput",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "images": args.images,
        "output": [BATCH, *SIZE, 3], "dtype": "float32",
        **{f"{interp}_{key}_images_per_second": round(value, 1)
           for interp, values in figures.items() for key, value in values.items()},
        "ratio_nearest": round(figures["nearest"]["cached"] / figures["nearest"]["legacy"], 2),
        "ratio_first_pass": round(bilinear["first_pass"] / bilinear["legacy"], 2),
        "ratio": round(bilinear["cached"] / bilinear["legacy"], 2),
        "ratio_grain_jax": round(bilinear["grain_jax_cached"] / bilinear["legacy"], 2),
        "ratio_grain_jax_first_pass": round(bilinear["grain_jax_first_pass"]
                                            / bilinear["legacy"], 2),
        "ratio_basis": "bilinear interpolation on both sides (the legacy default), tfsuite "
                       "with decoded images cached in memory (the legacy generator decodes "
                       "every epoch, as flow_from_directory does)"}))


if __name__ == "__main__":
    main()
