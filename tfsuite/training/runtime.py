"""Runtime: backend report, device and GPU-memory policy, strategy, precision, seeds.

This is the one place that touches `tf.config` and `tf.distribute`. Call
`select_backend()` before anything imports Keras, then `setup_runtime()`
before building data or models.
"""

import contextlib
import logging
import os
from dataclasses import dataclass, field

from tfsuite.errors import user_error
from tfsuite.packages import install_hint, is_installed
from tfsuite.training.cluster import Cluster, current_cluster

logger = logging.getLogger("tfsuite")


def select_backend(runtime_config):
    """Sets KERAS_BACKEND from the config (must run before Keras is imported)."""
    import sys

    wanted = runtime_config.backend
    if wanted == "auto":
        backend = os.environ.get("KERAS_BACKEND") or default_backend()
        os.environ["KERAS_BACKEND"] = backend
        _request_host_devices(backend, runtime_config.cpu_devices)
        return backend
    if not is_installed(wanted):
        hint = "pip install tensorflow" if wanted == "tensorflow" else install_hint(wanted)
        raise user_error(f"The {wanted} backend is not installed", f"the `{wanted}` package for "
                         f"runtime.backend={wanted!r}", f"runtime.backend={wanted!r}",
                         f"Install it with `{hint}`, "
                         "or pick another backend.")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != wanted:
            raise user_error("The Keras backend is already set", f"runtime.backend={wanted!r} "
                             "before Keras is imported", f"backend={keras.backend.backend()!r}",
                             f"Set KERAS_BACKEND={wanted} in the environment instead.")
        return wanted
    os.environ["KERAS_BACKEND"] = wanted
    _request_host_devices(wanted, runtime_config.cpu_devices)
    return wanted


def default_backend():
    """The backend when neither the config nor KERAS_BACKEND names one: TensorFlow, else
    JAX, else PyTorch (GPU machines often have no TensorFlow)."""
    return next((b for b in ("tensorflow", "jax", "torch") if is_installed(b)), "tensorflow")


def _request_host_devices(backend, count):
    """`runtime.cpu_devices` on JAX: XLA's host device count, read when JAX starts."""
    flag = "--xla_force_host_platform_device_count"
    flags = os.environ.get("XLA_FLAGS", "")
    if backend == "jax" and count > 1 and flag not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {flag}={count}".strip()


@dataclass
class Runtime:
    """What `setup_runtime` chose.

    `build_model(builder)` builds a model where the strategy wants it (under a
    tf.distribute scope, replicated or sharded by `keras.distribution`);
    `scope()` wraps compile and fit.
    """

    backend: str
    strategy_name: str
    strategy: object  # a tf.distribute.Strategy or None
    num_replicas: int
    precision: str
    devices: list
    has_gpu: bool = False
    cluster: Cluster = field(default_factory=Cluster)
    distribution: object = None  # a keras.distribution.Distribution (JAX) or None
    config: object = None  # the RuntimeConfig
    sharded: dict = field(default_factory=dict)  # model_parallel: {variable path: layout}

    def scope(self):
        if self.strategy is not None:
            return self.strategy.scope()
        if self.distribution is not None:
            return self.distribution.scope()
        return contextlib.nullcontext()

    def build_model(self, builder, layout_map=None):
        """`builder()` in the strategy's scope. For model_parallel, first on the host: its
        variables choose the layouts (`layout_map(mesh)`: a task's own LayoutMap, or None),
        and the sharded model starts from its weights."""
        if self.strategy_name != "model_parallel":
            with self.scope():
                model = builder()
            if self.strategy is not None:
                from tfsuite.training.keras_tf_distribute import patch_model

                patch_model(model)
            return model
        import jax

        from tfsuite.training.distribution import build_model_parallel, same_layer_names

        with same_layer_names() as repeat, jax.default_device(jax.devices("cpu")[0]):
            probe = builder()  # on the host: the whole model need not fit one accelerator
            repeat()
        self.distribution, self.sharded = build_model_parallel(
            _backend_devices(self.backend), self.config, probe, layout_map)
        with self.distribution.scope():
            model = builder()
        model.set_weights(probe.get_weights())
        return model

    def per_replica_batch_size(self, batch_size):
        return batch_size // self.num_replicas

    @property
    def needs_full_batches(self):
        """A JAX mesh splits each batch evenly over its devices: no partial batches."""
        return self.backend == "jax" and self.num_replicas > 1

    def check_batch_size(self, batch_size):
        """The global batch must split evenly over the replicas of a JAX mesh."""
        if self.needs_full_batches and batch_size % self.num_replicas:
            raise user_error("train.batch_size does not split over the replicas",
                             f"a global batch size divisible by {self.num_replicas} "
                             f"(runtime.strategy={self.strategy_name})",
                             f"train.batch_size={batch_size}",
                             f"Use e.g. --set train.batch_size="
                             f"{max(1, round(batch_size / self.num_replicas)) * self.num_replicas}.")

    def shard_dataset(self, dataset):
        """Each worker of a multi-worker job reads its share of every global batch."""
        if dataset is None or self.strategy_name != "multi_worker":
            return dataset
        import tensorflow as tf

        options = tf.data.Options()
        # The sources are in-memory arrays or file lists read whole: shard the elements.
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        return dataset.with_options(options)

    def gather_from_workers(self, value):
        """`value` (an int) from every worker of the job, in worker order."""
        if self.cluster.num_workers < 2:
            return [value]
        import numpy as np

        if self.backend == "jax":
            from jax.experimental import multihost_utils

            return [int(v) for v in np.ravel(multihost_utils.process_allgather(
                np.array([value], np.int64)))]
        import tensorflow as tf

        strategy = self.strategy

        @tf.function
        def gather():
            values = strategy.run(lambda: tf.constant([value], tf.int64))
            return strategy.gather(values, axis=0)

        return [int(v) for v in gather().numpy()]

    def check_same_start(self, epochs_completed):
        """Every worker resumes from the same epoch (a worker that cannot read the chief's
        checkpoints would start over while the chief resumes)."""
        found = self.gather_from_workers(epochs_completed)
        if len(set(found)) > 1:
            raise user_error("The workers would start from different epochs",
                             "every worker reading the chief's checkpoints",
                             f"epochs completed, by worker: {found}",
                             "Put --run-dir on storage every worker reads (or start the "
                             "workers on one machine with `launch`).")

    def end_job(self):
        """JAX: every process waits here for the chief, whose compression and export run
        after training (a process that exited first would time out in JAX's shutdown)."""
        if self.backend == "jax" and self.cluster.num_workers > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("tfsuite: the chief has finished")

    def peak_memory(self):
        """The accelerators' peak memory in use since the process started, in bytes (the
        largest device's), or None on CPUs and where the backend does not say."""
        peaks = []
        try:
            if self.backend == "jax":
                import jax

                peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use")
                         for d in jax.local_devices() if d.platform != "cpu"]
            elif self.backend == "torch":
                import torch

                peaks = [torch.cuda.max_memory_allocated(i)
                         for i in range(torch.cuda.device_count())]
            elif self.has_gpu:
                import tensorflow as tf

                peaks = [tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"]
                         for i in range(len(tf.config.list_logical_devices("GPU")))]
        except Exception:  # noqa: BLE001 - a report, never a failed run
            return None
        peaks = [p for p in peaks if p]
        return max(peaks) if peaks else None

    def report(self):
        report = {"backend": self.backend, "strategy": self.strategy_name,
                  "num_replicas": self.num_replicas, "num_workers": self.cluster.num_workers,
                  "precision": self.precision, "devices": self.devices}
        if self.strategy_name == "model_parallel":
            report["mesh_shape"] = list(self.distribution.device_mesh.shape) \
                if self.distribution is not None else None
            report["sharded_variables"] = {k: list(v) for k, v in self.sharded.items()}
        return report


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


def _tensorflow_devices(tf, runtime_config, multi_worker):
    """The local devices, after GPU memory growth and the CPU split; a multi-worker
    strategy is created first (TensorFlow refuses it once its context has started)."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        if runtime_config.gpu_memory_growth:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # already initialized: the setting from the first call stays
    strategy = None
    if multi_worker:
        from tfsuite.training.keras_tf_distribute import patch_trainer

        patch_trainer()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif runtime_config.cpu_devices > 1 and not gpus:
        _split_cpu(tf, runtime_config.cpu_devices)
    kind = "GPU" if gpus else "CPU"
    return [d.name for d in tf.config.list_logical_devices(kind)], strategy


def _strategy_error(name, backend, expected, fix):
    return user_error(f"runtime.strategy={name!r} does not run on the {backend} backend",
                      expected, f"runtime.strategy={name!r}, backend={backend!r}", fix)


def _check_strategy(name, backend, cluster):
    """Refuses a strategy its backend has no engine for, before anything starts."""
    if backend == "tensorflow" and name in ("data_parallel", "model_parallel"):
        raise _strategy_error(name, backend, "mirrored or multi_worker on TensorFlow "
                              "(Keras' TensorFlow keras.distribution is a prototype)",
                              "Use runtime.strategy=mirrored (or auto), or run with "
                              "KERAS_BACKEND=jax.")
    if backend == "jax" and name in ("mirrored", "multi_worker"):
        raise _strategy_error(name, backend, "data_parallel or model_parallel on JAX "
                              "(mirrored and multi_worker are tf.distribute strategies)",
                              "Use runtime.strategy=data_parallel (or auto), or run with "
                              "KERAS_BACKEND=tensorflow.")
    if backend == "torch" and name not in ("auto", "none"):
        raise _strategy_error(name, backend, "auto or none: Keras' PyTorch backend trains on "
                              "one device (neither tf.distribute nor keras.distribution "
                              "supports it)", "Use runtime.strategy=none, or run with "
                              "KERAS_BACKEND=jax (data_parallel, model_parallel) or "
                              "tensorflow (mirrored, multi_worker).")
    if name == "model_parallel" and cluster.num_workers > 1:
        raise user_error("runtime.strategy='model_parallel' runs in one process",
                         "data_parallel in a multi-process job (a kernel sharded over "
                         "several processes cannot be saved from one)",
                         f"runtime.strategy='model_parallel' with {cluster.num_workers} "
                         "processes", "Use runtime.strategy=data_parallel (or auto) here, "
                         "or model_parallel over the devices of one machine.")
    if name == "multi_worker" and cluster.num_workers < 2:
        raise user_error("runtime.strategy='multi_worker' needs a cluster",
                         "TF_CONFIG describing two or more workers", "TF_CONFIG="
                         f"{os.environ.get('TF_CONFIG')!r}", "Start the workers with "
                         "`python -m tfsuite.run launch --workers 2 -- train ...`, or set "
                         "TF_CONFIG on each machine (README: Scaling out).")
    if cluster.num_workers > 1 and name in ("none", "mirrored"):
        raise user_error(f"runtime.strategy={name!r} trains each process alone, but this "
                         f"process is worker {cluster.index} of {cluster.num_workers}",
                         "runtime.strategy=auto or multi_worker (data_parallel on JAX) in a "
                         "multi-worker job", f"runtime.strategy={name!r}", "Drop the "
                         "override, or unset TF_CONFIG to train on this machine alone.")


def _choose_strategy(tf, name, devices, backend):
    """(name, tf.distribute strategy or None) for the config's `runtime.strategy`."""
    if backend == "jax":
        if name == "auto":
            name = "data_parallel" if len(devices) > 1 else "none"
        return name, None
    if backend != "tensorflow" or name == "none" or (name == "auto" and len(devices) < 2):
        return "none", None
    return "mirrored", tf.distribute.MirroredStrategy(devices=devices)


def setup_runtime(runtime_config):
    """Applies the runtime config; returns a `Runtime`.

    Order matters: the multi-process and device configuration first
    (TensorFlow and JAX refuse it once they have started), then seeds,
    determinism, the dtype policy and the strategy.
    """
    import keras

    backend = keras.backend.backend()
    cluster = current_cluster(backend)
    name = runtime_config.strategy
    _check_strategy(name, backend, cluster)
    devices, tf, strategy = [], None, None
    try:
        import tensorflow as tf
    except ImportError:
        if backend == "tensorflow":
            raise
    if backend == "jax" and cluster.num_workers > 1:
        keras.distribution.initialize()  # from KERAS_DISTRIBUTION_*: before any JAX work
    if tf is not None and backend != "tensorflow":
        # TensorFlow only feeds data here: keep it off the GPUs (it would take all memory).
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass
    if backend == "tensorflow":
        devices, strategy = _tensorflow_devices(tf, runtime_config, cluster.num_workers > 1)
    elif backend == "jax":
        devices = _jax_devices(runtime_config)
    keras.utils.set_random_seed(runtime_config.seed)
    if runtime_config.deterministic and tf is not None:
        tf.config.experimental.enable_op_determinism()
    has_gpu = _has_gpu(tf, backend)
    precision = runtime_config.precision
    if precision == "auto":  # half precision pays off on accelerators only
        precision = _auto_precision(tf, backend) if has_gpu else "float32"
    keras.mixed_precision.set_dtype_policy(precision)
    if precision != "float32" and not has_gpu:
        logger.warning("runtime.precision=%s on a CPU: it runs, but slower than float32.",
                       precision)
    if strategy is not None:
        name = "multi_worker"
    else:
        name, strategy = _choose_strategy(tf, name, devices, backend)
    if name != "model_parallel" and (runtime_config.mesh_shape or
                                     runtime_config.model_parallel_layers):
        logger.warning("runtime.mesh_shape and runtime.model_parallel_layers apply to "
                       "runtime.strategy=model_parallel only; this run uses %s.", name)
    runtime = Runtime(backend, name, strategy, 1, precision, devices, has_gpu,
                      cluster=cluster, config=runtime_config)
    _distribute(runtime, runtime_config)
    return runtime


def _distribute(runtime, runtime_config):
    """Sets the replica count, and the JAX data-parallel distribution."""
    if runtime.strategy is not None:
        runtime.num_replicas = runtime.strategy.num_replicas_in_sync
    elif runtime.strategy_name == "data_parallel":
        from tfsuite.training.distribution import build_data_parallel

        runtime.distribution = build_data_parallel(_backend_devices(runtime.backend))
        runtime.num_replicas = len(runtime.devices)
    elif runtime.strategy_name == "model_parallel":
        from tfsuite.training.distribution import mesh_shape

        # The distribution itself needs the model's variables: Runtime.build_model.
        runtime.num_replicas = mesh_shape(runtime_config, len(runtime.devices))[0]


def _jax_devices(runtime_config):
    devices = _backend_devices("jax")
    wanted = runtime_config.cpu_devices
    if wanted > 1 and devices[0].platform == "cpu" and len(devices) != wanted:
        raise user_error("JAX started with another number of CPU devices",
                         f"runtime.cpu_devices={wanted} set before JAX starts",
                         f"{len(devices)} CPU device(s)", "Start a new Python process (or "
                         "restart the notebook kernel), or set XLA_FLAGS="
                         f"--xla_force_host_platform_device_count={wanted} before starting it.")
    return [f"{d.platform}:{d.id}" for d in devices]


def _backend_devices(backend):
    if backend == "jax":
        import jax

        return jax.devices()
    return []


def _auto_precision(tf, backend):
    """mixed_bfloat16 on GPUs with bfloat16 units (compute capability 8.0 on: A100, H100,
    RTX 30xx on), mixed_float16 on older ones (V100, T4), where bfloat16 is emulated."""
    capability = None
    try:
        if backend == "tensorflow":
            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0])
            capability = details.get("compute_capability")
        elif backend == "jax":
            import jax

            capability = tuple(int(v) for v in str(
                jax.devices()[0].compute_capability).split("."))
        else:
            import torch

            capability = torch.cuda.get_device_capability(0)
    except Exception:  # no capability to read (a TPU, an unusual device): bfloat16 is native
        return "mixed_bfloat16"
    return "mixed_bfloat16" if capability is None or tuple(capability) >= (8, 0) \
        else "mixed_float16"


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
