"""ONNX through tf2onnx: same input and outputs as the SavedModel, dynamic batch.

The conversion reads the exported SavedModel's `serving_default` signature (as
`python -m tf2onnx.convert --saved-model` does), not a live `tf.function`:
from a function, tf2onnx turns tensors the function captures by value (the
mean and variance of a Normalization layer, for one) into extra graph inputs.
"""

import logging

import numpy as np

from tfsuite.errors import user_error
from tfsuite.export.saved_model import SIGNATURE


def export_onnx(saved_model_dir, path, opset):
    """Converts a SavedModel's serving signature to ONNX at `path`; checks it with onnx.checker."""
    import onnx
    import tf2onnx
    from tf2onnx import tf_loader

    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)  # TF1-API deprecation notices from the freezing step
    try:
        graph_def, inputs, outputs, names = tf_loader.from_saved_model(
            saved_model_dir, None, None, tag="serve", signatures=[SIGNATURE],
            return_tensors_to_rename=True)
        tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                                       opset=opset, tensors_to_rename=names, output_path=path)
    except Exception as e:  # tf2onnx raises bare exceptions for unsupported ops
        raise user_error("tf2onnx could not convert the model", "a model made of ops ONNX "
                         f"opset {opset} supports", f"{type(e).__name__}: {e}",
                         "Try another opset with --opset, or export without onnx.") from e
    finally:
        tf_logger.setLevel(level)
    onnx.checker.check_model(path, full_check=True)


def dynamic_batch(path):
    """True when the ONNX model's input batch dimension is symbolic."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    return bool(first.dim_param) or not first.HasField("dim_value")


class OnnxRunner:
    """Runs an ONNX file in onnxruntime on the CPU."""

    def __init__(self, path, output="probabilities"):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(path, options,
                                                    providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output = output

    def __call__(self, images):
        (scores,) = self.session.run([self.output],
                                     {self.input_name: np.asarray(images, np.float32)})
        return scores
