"""SavedModel for TF Serving: the `serving_default` signature, TF Serving files, a runner.

The signature takes the model's own input (raw images at the configured size,
or observations, float32, dynamic batch) under the input's name and returns two
named outputs: the model's scores and their argmax, `probabilities` [batch,
classes] and `class_id` [batch] for a classifier (`q_values` and `action` for a
Q-network). Preprocessing lives in the model, so a client sends pixels and
nothing else.
"""

import json
import os

import numpy as np

SIGNATURE = "serving_default"
OUTPUTS = ("probabilities", "class_id")
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def input_name(model):
    """The serving input's name: the model input's name when it is a valid identifier."""
    name = model.inputs[0].name.split(":")[0]
    return name if name.isidentifier() else "image"


def serving_function(model, outputs=OUTPUTS):
    """A `tf.function` (never XLA-compiled) with a dynamic batch and named outputs:
    `outputs` names the scores and their argmax."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=input_name(model))

    @tf.function(input_signature=[spec], jit_compile=False)
    def serve(image):
        scores = model(image, training=False)
        return {outputs[0]: scores,
                outputs[1]: tf.argmax(scores, axis=-1, output_type=tf.int64)}

    return serve, spec


def export_saved_model(model, path, outputs=OUTPUTS):
    """Writes `model` as a SavedModel with the `serving_default` signature to `path`.

    A plain `tf.Module` holding the TensorFlow variables the function captures,
    rather than Keras' ExportArchive, which in Keras 3.15 also tracks the Keras
    variable wrappers and so checkpoints every weight twice. Tracking the
    captured variables themselves (not the wrappers) is also what lets the
    LiteRT converter freeze them into constants.
    """
    import tensorflow as tf

    serve, _ = serving_function(model, outputs)
    concrete = serve.get_concrete_function()
    module = tf.Module()
    module.captured_variables = list(concrete.variables)
    module.serve = serve
    logger = tf.get_logger()  # "Assets written to ..." at INFO, shown in notebooks
    level = logger.level
    logger.setLevel("WARNING")
    try:
        tf.saved_model.save(module, path, signatures={SIGNATURE: concrete})
    finally:
        logger.setLevel(level)


def xla_only_ops(path):
    """Op names in the SavedModel's graph that only XLA can run (should be none)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    found = set()
    for meta_graph in saved.meta_graphs:
        nodes = list(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
            if function.attr["_XlaMustCompile"].b:
                found.add(f"{function.signature.name} (_XlaMustCompile)")
        found.update(n.op for n in nodes if n.op.startswith(("Xla", "_Xla")))
    return sorted(found)


class SavedModelRunner:
    """Runs `serving_default` of a SavedModel loaded with `tf.saved_model.load`; returns
    its `output` (the scores)."""

    def __init__(self, path, output=OUTPUTS[0]):
        import tensorflow as tf

        self._tf = tf
        self.loaded = tf.saved_model.load(path)
        self.signature = self.loaded.signatures[SIGNATURE]
        _, inputs = self.signature.structured_input_signature
        (self.input_name, self.input_spec), = inputs.items()
        self.output = output

    def __call__(self, images):
        outputs = self.signature(**{self.input_name: self._tf.constant(images, self._tf.float32)})
        return outputs[self.output].numpy()


def write_rest_request(path, images, name):
    """An example body for POST /v1/models/NAME:predict (TF Serving's row format)."""
    body = {"signature_name": SIGNATURE,
            "instances": [{name: np.asarray(image).round(3).tolist()} for image in images]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(body, f)


def _quoted(text):
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def models_config_text(name, base_path):
    """A `--model_config_file` for tensorflow_model_server serving one model."""
    return ("model_config_list {\n  config {\n"
            f"    name: {_quoted(name)}\n    base_path: {_quoted(base_path)}\n"
            '    model_platform: "tensorflow"\n  }\n}\n')


def check_models_config(text):
    """Parses a models.config with TF Serving's own proto, when tensorflow-serving-api is here.

    Returns:
        True when it was checked, False when the proto is not installed.
    """
    try:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        return False
    text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    return True


def write_warmup_requests(saved_model_dir, images, name):
    """TF Serving warm-up records, so the first real request does not pay for tracing.

    Skipped (returns False) when tensorflow-serving-api is not installed.
    """
    try:
        import tensorflow as tf
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        return False
    os.makedirs(os.path.dirname(os.path.join(saved_model_dir, WARMUP_FILE)), exist_ok=True)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(signature_name=SIGNATURE))
    request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(images, np.float32)))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(os.path.join(saved_model_dir, WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())
    return True
