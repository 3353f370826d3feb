"""The export formats: one `Format` each, registered in `FORMATS`.

A format's writer takes the shared `ExportContext` and returns a dict with
`path`, `runner` (a callable from float32 inputs to the model's scores,
executing the artifact in the format's own runtime) and facts for the report,
or `{"skipped": {"reason": ..., "command": ...}}` when the format cannot be
built on this machine. A new format is a module with its writer and runner,
and one `register_format(Format(...))` line below.
"""

import dataclasses
import os
from typing import Callable, Optional

import numpy as np

from tfsuite.config import register_export_format
from tfsuite.errors import user_error
from tfsuite.export import layout


@dataclasses.dataclass(frozen=True)
class Format:
    """An export format: how it is written and checked, and what it needs.

    Attributes:
        name: the name in `export.formats` and `--format`.
        write: the writer (see the module docstring).
        needs: modules that must be importable to write and check it.
        install: how to install them.
        aliases: other names `--format` accepts (lower case).
        built_from: formats written before it that it is converted from.
        unavailable: `() -> reason or None`: why it cannot be built on this machine even
            with `needs` installed. Such a format is still listed by `all` and skipped at
            export with the command that builds it elsewhere.
    """

    name: str
    write: Callable
    needs: tuple = ()
    install: str = ""
    aliases: tuple = ()
    built_from: tuple = ()
    unavailable: Optional[Callable] = None


FORMATS = {}  # in the order versions are written


def register_format(fmt):
    FORMATS[fmt.name] = fmt
    register_export_format(fmt.name)
    return fmt

FILES = {"onnx": "model.onnx", "litert": "model.tflite", "tensorrt": "model.engine",
         "keras": "model.keras", "litert_quantized": "model_quantized.tflite"}


@dataclasses.dataclass
class ExportContext:
    """What the per-format exporters share while one version is written."""

    model: object
    export: object  # ExportConfig
    staging: str
    final: str
    images: np.ndarray
    input_name: str
    saved_model: str = None  # the version's SavedModel, once written: ONNX and LiteRT read it
    run_dir: str = None
    outputs: tuple = ("probabilities", "class_id")  # the signature's scores and their argmax

    @property
    def scores(self):
        """The output every runner returns and every check compares."""
        return self.outputs[0]


def _export_saved_model(context):
    from tfsuite.export import saved_model

    saved_model.export_saved_model(context.model, context.staging, context.outputs)
    xla = saved_model.xla_only_ops(context.staging)
    if xla:
        raise user_error("The SavedModel contains XLA-only ops, which TF Serving's CPU build "
                         "may not run", "a graph without them", ", ".join(xla))
    size = layout.folder_size(context.staging)
    warmup = saved_model.write_warmup_requests(context.staging, context.images[:1],
                                               context.input_name)
    context.saved_model = context.staging
    return {"path": context.staging,
            "runner": saved_model.SavedModelRunner(context.staging, context.scores),
            "size_bytes": size, "signature": saved_model.SIGNATURE,
            "outputs": list(context.outputs), "warmup_requests": warmup}


def _export_onnx(context):
    from tfsuite.export.onnx import OnnxRunner, dynamic_batch, export_onnx

    path = os.path.join(context.staging, FILES["onnx"])
    export_onnx(context.saved_model, path, context.export.onnx_opset)
    return {"path": path, "runner": OnnxRunner(path, context.scores), "opset": context.export.onnx_opset,
            "dynamic_batch": dynamic_batch(path), "onnx_checker": "passed"}


def _export_litert(context):
    from tfsuite.export.litert import LiteRTRunner, export_litert

    path = os.path.join(context.staging, FILES["litert"])
    export_litert(context.saved_model, path)
    runner = LiteRTRunner(path, context.scores)
    return {"path": path, "runner": runner, "interpreter": runner.runtime,
            "quantization": "none (float32)"}




def compressed_litert(run_dir):
    """The compression stage's quantized `.tflite` in a run, with its report, or None."""
    from tfsuite.run_dir import COMPRESS_REPORT as REPORT
    from tfsuite.run_dir import compress_dir as output_dir
    from tfsuite.io import read_json

    folder = output_dir(run_dir, "quantize")
    path = os.path.join(folder, "model.tflite")
    report = os.path.join(folder, REPORT)
    if not (os.path.isfile(path) and os.path.isfile(report)):
        return None
    return path, read_json(report)


def _export_litert_quantized(context):
    """The run's quantized LiteRT file (compress --method quantize), checked against the
    Keras model it was quantized from: same top-1 class on >= 99% of the images."""
    import shutil

    from tfsuite.export.litert import LiteRTRunner
    from tfsuite.export.model import float32_copy, predict_in_batches
    from tfsuite.models.saving import load_model_file

    source, report = compressed_litert(context.run_dir)
    path = os.path.join(context.staging, FILES["litert_quantized"])
    shutil.copyfile(source, path)
    source = os.path.join(context.run_dir, report.get("source_in_run", "")) if report.get(
        "source_in_run") else report["source"]
    original, _ = float32_copy(load_model_file(source, compile=False))
    reference = predict_in_batches(original, context.images, context.export.batch_size)
    mode = report["settings"]["mode"]
    return {"path": path, "runner": LiteRTRunner(path, context.scores), "reference": reference,
            "precision": {"float16": "fp16", "qat": "qat"}.get(mode, "int8"),
            "quantization": mode, "quantized_from": source, "compress_report": report["path"]}


def _export_tensorrt(context):
    from tfsuite.export import tensorrt

    export = context.export
    onnx_path = os.path.join(context.staging, FILES["onnx"])
    path = os.path.join(context.staging, FILES["tensorrt"])
    command = tensorrt.trtexec_command(
        onnx_path.replace(context.staging, context.final),
        path.replace(context.staging, context.final), context.input_name,
        context.model.input_shape[1:], export.tensorrt_precision, export.batch_size,
        export.max_batch_size)
    reason = tensorrt.unavailable_reason()
    if reason or not os.path.isfile(onnx_path):
        return {"skipped": {"reason": f"TensorRT cannot run here: {reason or 'no ONNX file'}",
                            "command": command}}
    tensorrt.build_engine(onnx_path, path, export.tensorrt_precision, export.batch_size,
                          export.max_batch_size, calibration=context.images)
    return {"path": path, "runner": tensorrt.TensorRTRunner(path, context.scores),
            "precision": export.tensorrt_precision, "trtexec_command": command}


def _export_keras(context):
    from tfsuite.export.keras_model import KerasRunner, export_keras

    path = os.path.join(context.staging, FILES["keras"])
    export_keras(context.model, path)
    return {"path": path, "runner": KerasRunner(path)}


def _tensorrt_unavailable():
    from tfsuite.export.tensorrt import unavailable_reason

    return unavailable_reason()


register_format(Format("saved_model", _export_saved_model, ("tensorflow",),
                       "pip install tensorflow", aliases=("savedmodel", "tf_saved_model")))
register_format(Format("onnx", _export_onnx, ("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
                       "pip install tf2onnx onnx onnxruntime", built_from=("saved_model",)))
register_format(Format("litert", _export_litert, ("tensorflow",), "pip install tensorflow",
                       aliases=("tflite",), built_from=("saved_model",)))
register_format(Format("tensorrt", _export_tensorrt, ("tensorflow", "tf2onnx", "onnx"),
                       "pip install tf2onnx onnx tensorrt (on a machine with a CUDA GPU)",
                       aliases=("trt", "engine"), built_from=("onnx",),
                       unavailable=_tensorrt_unavailable))
register_format(Format("keras", _export_keras))
# Not a format to ask for: the run's own quantized .tflite (compress --method quantize),
# added to a version that has LiteRT.
QUANTIZED_LITERT = Format("litert_quantized", _export_litert_quantized, ("tensorflow",))


def task_formats(requested, formats, always, refusal, fix):
    """A task's own export formats (`formats`) picked by `export.formats` (`requested`):
    all of them for "all" or nothing, else the requested ones plus `always`; any other
    name is one clear error (`refusal`, how to `fix` it)."""
    wanted = set(requested or ["all"])
    if "all" in wanted:
        return list(formats)
    other = sorted(wanted - set(formats))
    if other:
        raise user_error(refusal, f"formats from {list(formats)} or all", f"format={other}",
                         fix)
    return [f for f in formats if f in wanted | {always}]
