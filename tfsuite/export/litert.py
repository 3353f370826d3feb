"""LiteRT (TFLite): converted from the exported SavedModel, run in the LiteRT interpreter.

Converting from the SavedModel (not from a concrete function) freezes the
variables into constants; a concrete function keeps them as resource variables
that the interpreter leaves uninitialized, and its outputs are NaN.
"""

import numpy as np

from tfsuite.export.saved_model import SIGNATURE
from tfsuite.quiet import native_stderr_silenced


def export_litert(saved_model_dir, path, optimizations=(), representative_data=None):
    """Writes a `.tflite` file from a SavedModel's `serving_default` signature.

    Args:
        saved_model_dir: a SavedModel written by `export_saved_model`.
        path: the `.tflite` file to write.
        optimizations: `tf.lite.Optimize` values (empty: plain float32).
            Defaults to `()`.
        representative_data: a callable yielding input lists, for full-integer
            quantization. Defaults to `None`.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=[SIGNATURE])
    converter.optimizations = list(optimizations)
    if representative_data is not None:
        converter.representative_dataset = representative_data
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
    """Runs a `.tflite` file's `serving_default` signature; the batch size is resized per call."""

    def __init__(self, path):
        module, self.runtime = interpreter_module()
        self.interpreter = module.Interpreter(model_path=path, num_threads=2)
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        (self.input_name,) = self.interpreter.get_signature_list()[SIGNATURE]["inputs"]
        self._first_call = True

    def __call__(self, images):
        # The first call applies the XNNPACK delegate, which announces itself on fd 2.
        with native_stderr_silenced(self._first_call):
            outputs = self.runner(**{self.input_name: np.asarray(images, np.float32)})
        self._first_call = False
        return outputs["probabilities"]
