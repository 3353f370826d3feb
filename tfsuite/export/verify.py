"""Checks an artifact against the Keras model on real inputs, and times it.

A runner is any callable taking a float32 image batch and returning class
probabilities; every format provides one that executes the artifact in the
format's own runtime (TensorFlow, onnxruntime, LiteRT, TensorRT).
"""

import time

import numpy as np


def compare(runner, images, reference, batch_size):
    """Max |difference| and top-1 agreement of `runner` against reference probabilities."""
    outputs = np.concatenate([np.asarray(runner(images[i:i + batch_size]), np.float32)
                              for i in range(0, len(images), batch_size)])
    if outputs.shape != reference.shape:
        return {"max_abs_diff": float("inf"), "top1_agreement": 0.0,
                "error": f"output shape {outputs.shape}, expected {reference.shape}"}
    return {"max_abs_diff": float(np.abs(outputs - reference).max()),
            "top1_agreement": float((outputs.argmax(1) == reference.argmax(1)).mean())}


def latency_ms(runner, batch, repeats=20, warmup=3):
    """Median wall time of one call on `batch`, in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        runner(batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        runner(batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000.0)


def passes(result, atol, precision="fp32"):
    """Float32 artifacts must match within `atol`; fp16/int8 ones must agree on >= 99% of
    top-1 classes, and a QAT file (whose training moved the weights) on >= 97%."""
    if "error" in result:
        return False
    if precision == "qat":
        return result["top1_agreement"] >= 0.97
    if precision in ("fp16", "int8"):
        return result["top1_agreement"] >= 0.99
    return result["max_abs_diff"] <= atol
