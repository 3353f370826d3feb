"""ONNX through tf2onnx: same input and outputs as the SavedModel, dynamic batch."""

import numpy as np

from tfsuite.errors import user_error

INSTALL_HINT = "pip install tf2onnx onnx onnxruntime"


def export_onnx(model, path, opset):
    """Converts the model's serving function to ONNX at `path`; checks it with onnx.checker."""
    import onnx
    import tf2onnx

    from tfsuite.export.saved_model import serving_function

    serve, spec = serving_function(model)
    try:
        tf2onnx.convert.from_function(serve, input_signature=[spec], opset=opset,
                                      output_path=path)
    except Exception as e:  # tf2onnx raises bare exceptions for unsupported ops
        raise user_error("tf2onnx could not convert the model", "a model made of ops ONNX "
                         f"opset {opset} supports", f"{type(e).__name__}: {e}",
                         "Try another opset with --opset, or export without onnx.") from e
    onnx.checker.check_model(path, full_check=True)


def dynamic_batch(path):
    """True when the ONNX model's input batch dimension is symbolic."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    return bool(first.dim_param) or not first.HasField("dim_value")


class OnnxRunner:
    """Runs an ONNX file in onnxruntime on the CPU."""

    def __init__(self, path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(path, options,
                                                    providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images):
        (probabilities,) = self.session.run(["probabilities"],
                                            {self.input_name: np.asarray(images, np.float32)})
        return probabilities
