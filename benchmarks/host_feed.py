"""Where host-fed training time goes on a GPU: the parts of feeding one batch, and the
loader alone (no model), before and after feeding ahead (issue 22).

    KERAS_BACKEND=jax python benchmarks/host_feed.py [--batch-size 256] [--batches 40]

224x224x3 uint8 images in host memory (as `data.on_device=false` keeps them). Parts, each
the median of repeated timings: the NumPy gather of a shuffled batch, its copy to the
device as uint8 and as float32, and `keras.ops.cast` of the host batch to float32 (what
each step did before). Then the loader's images/s over `--batches` batches with each
batch made ready on the device: one thread casting to float32 on the way (before), and
worker threads gathering and copying uint8 ahead (`ArrayBatches`, feed_ahead). Prints a
table, then one line of JSON.
"""

import argparse
import json
import statistics
import time

import jax
import keras
import numpy as np

from tfsuite.data.arrays import FEED_THREADS, ArrayBatches


def median_ms(function, repeats=15):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def loader_rate(batches, count):
    """Images/s of taking `count` batches, each ready on the device."""
    adapter = keras.src.trainers.data_adapters.py_dataset_adapter.PyDatasetAdapter(
        batches, shuffle=False)
    adapter.on_epoch_begin()
    iterator = adapter.get_jax_iterator()
    started, images = time.perf_counter(), 0
    for i, (x, _) in enumerate(iterator):
        jax.block_until_ready(jax.device_put(x))
        images += x.shape[0]
        if i + 1 == count:
            break
    rate = images / (time.perf_counter() - started)
    adapter.on_epoch_end()
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    n = args.batch_size * (args.batches + 8)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, n).astype(np.int32)
    index = np.sort(rng.permutation(n)[:args.batch_size])
    batch = images[index]
    parts = {
        "gather (NumPy, shuffled rows)": median_ms(lambda: images[index]),
        "copy to device, uint8": median_ms(lambda: jax.device_put(batch).block_until_ready()),
        "copy to device, float32": median_ms(
            lambda: jax.device_put(batch.astype(np.float32)).block_until_ready()),
        "keras.ops.cast on the host batch (before)": median_ms(
            lambda: keras.ops.cast(batch, "float32").block_until_ready()),
    }
    rates = {
        "before: 1 thread, float32": loader_rate(ArrayBatches(
            images, labels, args.batch_size, shuffle=True, feed_ahead=False), args.batches),
        f"after: {FEED_THREADS} threads, uint8 ahead": loader_rate(ArrayBatches(
            images, labels, args.batch_size, shuffle=True, feed_ahead=True), args.batches),
    }
    print(f"device: {jax.devices()[0].device_kind}, batch {args.batch_size} of 224x224x3")
    for name, ms in parts.items():
        print(f"  {name:<45} {ms:8.1f} ms")
    for name, rate in rates.items():
        print(f"  loader alone, {name:<31} {rate:8.0f} images/s")
    print(json.dumps({"parts_ms": parts, "loader_images_per_second": rates}))


if __name__ == "__main__":
    main()
