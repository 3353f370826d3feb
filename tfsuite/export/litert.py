"""LiteRT (TFLite): converted from the exported SavedModel, run in the LiteRT interpreter.

Converting from the SavedModel (not from a concrete function) freezes the
variables into constants; a concrete function keeps them as resource variables
that the interpreter leaves uninitialized, and its outputs are NaN.
"""

import numpy as np

from tfsuite.export.saved_model import SIGNATURE
from tfsuite.quiet import native_stderr_silenced

QUANTIZATIONS = ("none", "dynamic_range", "int8", "float16", "qat")


def export_litert(saved_model_dir, path, quantization="none", representative_data=None,
                  int8_io=False):
    """Writes a `.tflite` file from a SavedModel's `serving_default` signature.

    Args:
        saved_model_dir: a SavedModel written by `export_saved_model`.
        path: the `.tflite` file to write.
        quantization: "none" (float32), "dynamic_range" (int8 weights, float
            activations), "int8" (full integer: weights and activations, ranges
            from `representative_data`), "float16" (float16 weights) or "qat"
            (int8 from the fake-quantization ranges a QAT model learned).
            Defaults to `"none"`.
        representative_data: a callable yielding `[batch]` lists of inputs, for
            "int8". Defaults to `None`.
        int8_io: for "int8" and "qat", the model takes and returns int8 instead
            of float32. Defaults to `False`.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}. Received: "
                         f"quantization={quantization!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=[SIGNATURE])
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        if representative_data is None:
            raise ValueError("Full-integer quantization needs `representative_data`.")
        converter.representative_dataset = representative_data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io and quantization in ("int8", "qat"):
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with native_stderr_silenced():  # the MLIR converter logs each pass; errors still raise
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)


def interpreter_module():
    """`ai_edge_litert.interpreter` where installed, else `tf.lite` (deprecated in TF 2.20+)."""
    try:
        from ai_edge_litert import interpreter
        return interpreter, "ai_edge_litert"
    except ImportError:
        import tensorflow as tf
        return tf.lite, "tf.lite"


class LiteRTRunner:
    """Runs a `.tflite` file's `serving_default` signature; the batch size is resized per call.

    Takes and returns float32 whatever the file's own input and output types:
    an int8 input is quantized with its scale and zero point, an int8 output
    dequantized, as a client of such a model would.
    """

    def __init__(self, path, output="probabilities"):
        module, self.runtime = interpreter_module()
        self.interpreter = module.Interpreter(model_path=path, num_threads=2)
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        (self.input_name,) = self.interpreter.get_signature_list()[SIGNATURE]["inputs"]
        self.input = self.runner.get_input_details()[self.input_name]
        self.output_name = output
        self.output = self.runner.get_output_details()[output]
        self._first_call = True

    def _to_input(self, images):
        images = np.asarray(images, np.float32)
        if self.input["dtype"] == np.float32:
            return images
        scale, zero_point = self.input["quantization"]
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(images / scale + zero_point), info.min,
                       info.max).astype(self.input["dtype"])

    def __call__(self, images):
        # The first call applies the XNNPACK delegate, which announces itself on fd 2.
        with native_stderr_silenced(self._first_call):
            outputs = self.runner(**{self.input_name: self._to_input(images)})
        self._first_call = False
        scores = outputs[self.output_name]
        if self.output["dtype"] == np.float32:
            return scores
        scale, zero_point = self.output["quantization"]
        return (scores.astype(np.float32) - zero_point) * scale
