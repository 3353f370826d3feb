"""Runtime: backend report, device and GPU-memory policy, strategy, precision, seeds.

This is the one place that touches `tf.config` and `tf.distribute`. Call
`select_backend()` before anything imports Keras, then `setup_runtime()`
before building data or models.
"""

import contextlib
import logging
import os
from dataclasses import dataclass

from tfsuite.errors import user_error

logger = logging.getLogger("tfsuite")


def select_backend(runtime_config):
    """Sets KERAS_BACKEND from the config (must run before Keras is imported)."""
    import importlib.util
    import sys

    wanted = runtime_config.backend
    if wanted == "auto":
        return os.environ.get("KERAS_BACKEND", "tensorflow")
    if importlib.util.find_spec(wanted) is None:
        extra = {"tensorflow": "", "jax": "[jax]", "torch": "[torch]"}[wanted]
        raise user_error(f"The {wanted} backend is not installed", f"the `{wanted}` package for "
                         f"runtime.backend={wanted!r}", f"runtime.backend={wanted!r}",
                         f'Install it with `pip install -e ".{extra}"` (or pip install {wanted}), '
                         "or pick another backend.")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != wanted:
            raise user_error("The Keras backend is already set", f"runtime.backend={wanted!r} "
                             "before Keras is imported", f"backend={keras.backend.backend()!r}",
                             f"Set KERAS_BACKEND={wanted} in the environment instead.")
        return wanted
    os.environ["KERAS_BACKEND"] = wanted
    return wanted


@dataclass
class Runtime:
    """What `setup_runtime` chose; `scope()` wraps model building and compile."""

    backend: str
    strategy_name: str
    strategy: object  # a tf.distribute.Strategy or None
    num_replicas: int
    precision: str
    devices: list
    has_gpu: bool = False

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def report(self):
        return {"backend": self.backend, "strategy": self.strategy_name,
                "num_replicas": self.num_replicas, "precision": self.precision,
                "devices": self.devices}


def _split_cpu(tf, count):
    """Splits the host CPU into `count` logical devices (before TF initializes)."""
    cpus = tf.config.list_physical_devices("CPU")
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    try:
        tf.config.set_logical_device_configuration(cpus[0], wanted)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != count:
            raise user_error("Cannot split the CPU after TensorFlow has started",
                             f"runtime.cpu_devices set before any TensorFlow work ({have} "
                             "logical CPUs exist now)", f"runtime.cpu_devices={count}",
                             "Start a new Python process (or restart the notebook kernel).") from None


def _tensorflow_devices(tf, runtime_config):
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        if runtime_config.gpu_memory_growth:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # already initialized: the setting from the first call stays
    if runtime_config.cpu_devices > 1 and not gpus:
        _split_cpu(tf, runtime_config.cpu_devices)
    if gpus:
        return [d.name for d in tf.config.list_logical_devices("GPU")]
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _choose_strategy(tf, name, devices, backend):
    if backend != "tensorflow":
        if name == "mirrored":
            raise user_error("runtime.strategy='mirrored' is a tf.distribute strategy",
                             "the TensorFlow backend", f"backend={backend!r}",
                             "Run with KERAS_BACKEND=tensorflow, or use runtime.strategy=none.")
        return "none", None
    if name == "none" or (name == "auto" and len(devices) < 2):
        return "none", None
    return "mirrored", tf.distribute.MirroredStrategy(devices=devices)


def setup_runtime(runtime_config):
    """Applies the runtime config; returns a `Runtime`.

    Order matters: device configuration first (TensorFlow refuses it once it
    has started), then seeds, determinism, the dtype policy and the strategy.
    """
    import keras

    backend = keras.backend.backend()
    devices = []
    tf = None
    try:
        import tensorflow as tf
    except ImportError:
        if backend == "tensorflow":
            raise
    if tf is not None:
        if backend != "tensorflow":
            # TensorFlow only feeds data here: keep it off the GPUs (it would take all memory).
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:
                pass
            devices = [f"{d.platform}:{d.id}" for d in _backend_devices(backend)]
        else:
            devices = _tensorflow_devices(tf, runtime_config)
    keras.utils.set_random_seed(runtime_config.seed)
    if runtime_config.deterministic and tf is not None:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_dtype_policy(runtime_config.precision)
    has_gpu = _has_gpu(tf, backend)
    if runtime_config.precision != "float32" and not has_gpu:
        logger.warning("runtime.precision=%s on a CPU: it runs, but slower than float32.",
                       runtime_config.precision)
    strategy_name, strategy = _choose_strategy(tf, runtime_config.strategy, devices, backend)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    return Runtime(backend, strategy_name, strategy, replicas, runtime_config.precision, devices,
                   has_gpu)


def _backend_devices(backend):
    if backend == "jax":
        import jax

        return jax.devices()
    return []


def _has_gpu(tf, backend):
    if backend == "tensorflow":
        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        return any(d.platform == "gpu" for d in _backend_devices(backend))
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
