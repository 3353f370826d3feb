"""The figures a compression report compares: test accuracy, weights, non-zero weights,
deployable size (gzip-compressed) and CPU latency, each measured by running the
deployable file itself (the `.keras` reloaded, the `.tflite` in LiteRT)."""

import gzip
import os

import numpy as np

from tfsuite.compression.pruning import count_params
from tfsuite.export import verify


def test_arrays(data):
    """The test split (validation when there is none) as NumPy (images, labels)."""
    dataset = data.test if data.test is not None else data.val
    images, labels = [], []
    for batch, batch_labels in dataset:
        images.append(np.asarray(batch, np.float32))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(images), np.concatenate(labels).astype(int)


def gzip_size(path):
    """Bytes of the file after gzip at the highest level (how zeros pay off on disk)."""
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9))


def save_deployable(model, path):
    """Saves a `.keras` file without optimizer state (float32 copy, uncompiled)."""
    from tfsuite.export.model import float32_copy

    copy, _ = float32_copy(model)
    copy.save(path)
    return path


def runner_for(path):
    """A callable (float32 images -> probabilities) that runs the file in its own runtime."""
    if path.endswith(".tflite"):
        from tfsuite.export.litert import LiteRTRunner

        return LiteRTRunner(path)
    from tfsuite.export.keras_model import KerasRunner

    return KerasRunner(path)


def measure(path, test, params_model, batch_size):
    """The report entry for one deployable file.

    Args:
        path: a `.keras` or `.tflite` file.
        test: (images, labels) of the test split.
        params_model: the Keras model whose weights the file holds (a `.tflite`
            file stores the same weights, converted).
        batch_size: images per call, for accuracy and latency.
    """
    images, labels = test
    runner = runner_for(path)
    probabilities = np.concatenate([np.asarray(runner(images[i:i + batch_size]), np.float32)
                                    for i in range(0, len(images), batch_size)])
    total, nonzero = count_params(params_model)
    return {"file": os.path.basename(path),
            "test_accuracy": float((probabilities.argmax(axis=1) == labels).mean()),
            "num_params": total, "nonzero_params": nonzero,
            "size_bytes": gzip_size(path), "file_bytes": os.path.getsize(path),
            "latency_ms": round(verify.latency_ms(runner, images[:batch_size], repeats=50, warmup=10), 3)}
