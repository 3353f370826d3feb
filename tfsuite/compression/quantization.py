"""Quantization: post-training through the LiteRT converter, quantization-aware
training through the TFMOT bridge, and Keras' own `model.quantize`.

LiteRT files are converted from a SavedModel with the same `serving_default`
signature the export stage writes, so `LiteRTRunner` and TF Serving clients see
the same inputs and outputs whatever the quantization.
"""

import os
import tempfile

import numpy as np

LITERT_MODES = ("int8", "dynamic_range", "float16")
KERAS_MODES = {"keras_int8": "int8", "keras_float8": "float8", "keras_int4": "int4"}
# The layers Keras' model.quantize() replaces; everything else stays float.
KERAS_QUANTIZABLE = ("Dense", "EinsumDense", "Embedding")


def representative_images(dataset, count):
    """Up to `count` training images (no augmentation) for calibrating int8 ranges."""
    images = []
    for batch, _ in dataset:
        images.append(np.asarray(batch, np.float32))
        if sum(len(b) for b in images) >= count:
            break
    return np.concatenate(images)[:count]


def write_litert(model, path, quantization="none", calibration=None, int8_io=False):
    """Converts a Keras model (Keras 3 or a tf_keras QAT model) to a `.tflite` file.

    Args:
        model: a float32 model taking raw images.
        path: the `.tflite` file to write.
        quantization: see `tfsuite.export.litert.export_litert`.
        calibration: images for full-integer calibration (one per converter call).
        int8_io: int8 input and output instead of float32.
    """
    from tfsuite.export.litert import export_litert
    from tfsuite.export.saved_model import export_saved_model

    def representative_data():
        for image in calibration:
            yield [image[None]]

    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as saved_model:
        export_saved_model(model, saved_model)
        export_litert(saved_model, path, quantization,
                      representative_data if calibration is not None else None, int8_io)
    return path


def keras_coverage(model):
    """(fraction of the model's weights in layers Keras can quantize, their names)."""
    from tfsuite.compression.pruning import leaf_layers

    total = max(1, model.count_params())
    layers = [l for l in leaf_layers(model) if type(l).__name__ in KERAS_QUANTIZABLE]
    return sum(l.count_params() for l in layers) / total, [l.name for l in layers]


def keras_quantize(model, mode):
    """Quantizes a float32 Keras model in place with `model.quantize(mode)`.

    Returns:
        A note when less than half of the weights are in layers Keras covers
        (Dense, EinsumDense, Embedding), else None.
    """
    fraction, names = keras_coverage(model)
    model.quantize(KERAS_MODES[mode])
    if fraction >= 0.5:
        return None
    return (f"Keras' model.quantize covers Dense, EinsumDense and Embedding layers: only "
            f"{fraction:.1%} of this model's weights are in such layers ({', '.join(names) or 'none'}); "
            "convolutions stay float32. For a convolutional model, full-integer LiteRT "
            "quantization (--set compress.quantization=int8) quantizes every layer.")
