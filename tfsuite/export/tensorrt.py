"""TensorRT engines built from the exported ONNX file with the `tensorrt` Python API.

TF-TRT left TensorFlow in 2.18, so the path is ONNX -> TensorRT builder + ONNX
parser, with an optimization profile for the dynamic batch. Building needs the
`tensorrt` package and a CUDA GPU; the runner moves data with PyTorch's CUDA
tensors. Where either is missing, `unavailable_reason` says why and
`trtexec_command` gives the command that builds the same engine on a GPU machine.
"""

import os
import shlex

import numpy as np

from tfsuite.errors import user_error

ENGINE_FILE = "model.engine"


def unavailable_reason():
    """None when engines can be built and run here, else one line saying what is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return ("the `tensorrt` Python package is not installed (it needs NVIDIA's package "
                "index and a CUDA GPU)")
    try:
        import torch
    except ImportError:
        return "PyTorch (used to hold CUDA buffers for the engine) is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return None


def _shapes(input_name, input_shape, batch):
    return f"{input_name}:{'x'.join(str(d) for d in (batch, *input_shape))}"


def trtexec_command(onnx_path, engine_path, input_name, input_shape, precision, opt_batch,
                    max_batch):
    """The `trtexec` line that builds the same engine as `build_engine` (TensorRT 10 flags;
    TensorRT 11 networks are strongly typed and take the precision from the ONNX file)."""
    flags = {"fp32": ["--noTF32"], "fp16": ["--fp16"], "int8": ["--int8", "--fp16"]}[precision]
    words = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", *flags,
             f"--minShapes={_shapes(input_name, input_shape, 1)}",
             f"--optShapes={_shapes(input_name, input_shape, min(opt_batch, max_batch))}",
             f"--maxShapes={_shapes(input_name, input_shape, max_batch)}"]
    return " ".join(shlex.quote(w) for w in words)


def build_engine(onnx_path, engine_path, precision, opt_batch, max_batch, calibration=None):
    """Builds and writes a serialized engine; returns its input name.

    Args:
        onnx_path: the ONNX file written by the onnx exporter.
        engine_path: where to write the engine.
        precision: "fp32", "fp16" or "int8".
        opt_batch, max_batch: the optimization profile's batch sizes (min is 1).
        calibration: float32 images for INT8 calibration. Defaults to `None`.
    """
    import tensorrt as trt

    weakly_typed = hasattr(trt.BuilderFlag, "FP16")  # TensorRT <= 10
    if not weakly_typed and precision == "int8":
        raise user_error("TensorRT 11 builds INT8 only from quantized (Q/DQ) ONNX models",
                         "tensorrt_precision fp32 or fp16 with TensorRT 11",
                         f"tensorrt=={trt.__version__}, precision='int8'",
                         "Use --set export.tensorrt_precision=fp16, or TensorRT 10.")
    if not weakly_typed and precision == "fp16":
        # Strongly typed networks take their precision from the ONNX types.
        onnx_path = float16_onnx(onnx_path, engine_path + ".fp16.onnx")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch (the only mode since TensorRT 10)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        if not parser.parse(f.read()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise user_error("TensorRT's ONNX parser rejected the model",
                             "an ONNX file TensorRT supports", errors)
    tensor = network.get_input(0)
    shape = tuple(tensor.shape)[1:]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, (1, *shape), (min(opt_batch, max_batch), *shape),
                      (max_batch, *shape))
    config.add_optimization_profile(profile)
    if weakly_typed and precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 matmuls would miss the 1e-4 check
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, calibration, tensor.name, opt_batch)
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise user_error("TensorRT could not build an engine", "a buildable network",
                         f"onnx={onnx_path!r}, precision={precision!r}",
                         "Run the printed trtexec command with --verbose to see why.")
    with open(engine_path, "wb") as f:
        f.write(serialized)
    if onnx_path.endswith(".fp16.onnx"):
        os.remove(onnx_path)
    return tensor.name


def float16_onnx(source, target):
    """A float16 copy of an ONNX model with float32 inputs and outputs kept."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(source), keep_io_types=True), target)
    return target


def _calibrator(trt, images, input_name, batch_size):
    """An entropy calibrator over real images (the run's own inputs)."""
    import torch

    if images is None or not len(images):
        raise user_error("INT8 needs calibration images", "images from the run's data",
                         "none")

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = [torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size]))
                            .cuda() for i in range(0, len(images) - batch_size + 1, batch_size)]

        def get_batch_size(self):
            return batch_size

        def get_batch(self, names):
            return [int(self.batches.pop(0).data_ptr())] if self.batches else None

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, cache):
            return None

    return Calibrator()


class TensorRTRunner:
    """Runs a serialized engine on the GPU with CUDA tensors from PyTorch."""

    def __init__(self, path, output="probabilities"):
        import tensorrt as trt
        import torch

        self.torch = torch
        self.trt = trt
        with open(path, "rb") as f:
            self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
                f.read())
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names
                       if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.output = output

    def __call__(self, images):
        torch = self.torch
        images = torch.from_numpy(np.ascontiguousarray(images, np.float32)).cuda()
        self.context.set_input_shape(self.inputs[0], tuple(images.shape))
        self.context.set_tensor_address(self.inputs[0], images.data_ptr())
        buffers = {}
        for name in self.outputs:
            dtype = torch.int64 if self.engine.get_tensor_dtype(name) == self.trt.int64 \
                else torch.float32
            buffers[name] = torch.empty(tuple(self.context.get_tensor_shape(name)),
                                        dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.current_stream()
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return buffers[self.output].cpu().numpy()
