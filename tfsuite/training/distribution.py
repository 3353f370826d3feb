"""JAX data and model parallelism through `keras.distribution`.

`data_parallel` replicates every variable and splits each batch over the
devices. `model_parallel` puts the devices on a `[batch, model]` mesh and
shards the last axis of large Dense, EinsumDense and Embedding kernels over
the `model` axis through a `LayoutMap` (the layers chosen by
`runtime.model_parallel_layers`); the other variables are replicated and the
batch is split over the `batch` axis.
"""

import collections
import contextlib
import logging

import keras
import numpy as np

from tfsuite.errors import user_error
from tfsuite.models.selection import select_layers

logger = logging.getLogger("tfsuite")

SHARDABLE = {"Dense": "kernel", "EinsumDense": "kernel", "Embedding": "embeddings"}


def build_data_parallel(devices):
    return keras.distribution.DataParallel(devices=devices)


def mesh_shape(runtime_config, num_devices):
    """[batch, model]: the configured shape (checked against the devices) or [1, all]."""
    shape = list(runtime_config.mesh_shape or [1, num_devices])
    if shape[0] * shape[1] != num_devices:
        raise user_error("runtime.mesh_shape does not cover the devices",
                         f"[batch, model] whose product is the number of devices "
                         f"({num_devices})", f"runtime.mesh_shape={shape}",
                         f"Use e.g. --set runtime.mesh_shape=[1,{num_devices}].")
    return shape


def shardable_variables(model, runtime_config, model_axis_size):
    """{variable path: layout} for the kernels the model-parallel mesh shards.

    A kernel is sharded on its last axis when it has at least
    `runtime.model_parallel_min_params` weights and that axis divides evenly
    over the `model` axis; named layers that cannot be sharded are an error.
    """
    patterns = runtime_config.model_parallel_layers
    chosen = select_layers(model, patterns, SHARDABLE, key="runtime.model_parallel_layers")
    layouts = {}
    for layer in chosen:
        variable = getattr(layer, SHARDABLE[type(layer).__name__])
        shape = tuple(variable.shape)
        if shape[-1] % model_axis_size:
            if patterns:
                raise user_error(f"Layer {layer.name!r} cannot be sharded",
                                 f"a last kernel axis divisible by the model axis "
                                 f"({model_axis_size})", f"kernel shape={shape}",
                                 "Change runtime.mesh_shape or runtime.model_parallel_layers.")
            continue
        if not patterns and np.prod(shape) < runtime_config.model_parallel_min_params:
            continue
        layouts[variable.path] = (None,) * (len(shape) - 1) + ("model",)
    return layouts


@contextlib.contextmanager
def same_layer_names():
    """Yields `repeat()`, after which new layers get the names the ones built since the
    start got again (Keras numbers auto-named layers: `dense`, `dense_1`, ...), so a
    model built twice has the same variable paths for the LayoutMap."""
    from keras.src.backend.common import global_state

    uids = global_state.get_global_attribute("object_name_uids",
                                             default=collections.defaultdict(int),
                                             set_to_default=True)
    saved = dict(uids)

    def repeat():
        uids.clear()
        uids.update(saved)

    yield repeat


def build_model_parallel(devices, runtime_config, probe_model, task_layout_map=None):
    """A `ModelParallel` distribution for the variables of `probe_model` (built on the host
    with the same config, so the sharded model can start from the same weights).
    `task_layout_map(mesh)`: the task's own LayoutMap (KerasHub's for its decoders), or
    None for tfsuite's (`shardable_variables`)."""
    shape = mesh_shape(runtime_config, len(devices))
    mesh = keras.distribution.DeviceMesh(shape=tuple(shape), axis_names=("batch", "model"),
                                         devices=devices)
    own = task_layout_map(mesh) if task_layout_map else None
    layout_map = keras.distribution.LayoutMap(mesh)
    if own is not None:
        if runtime_config.model_parallel_layers:
            logger.warning("runtime.model_parallel_layers is not used: this task shards its "
                           "model with its own layout map.")
        layouts = _task_layouts(own, layout_map, probe_model,
                                dict(zip(("batch", "model"), shape)))
        return keras.distribution.ModelParallel(layout_map=layout_map,
                                                batch_dim_name="batch"), layouts
    layouts = shardable_variables(probe_model, runtime_config, shape[1])
    if not layouts:
        logger.warning("runtime.strategy=model_parallel shards nothing in this model: no "
                       "Dense/EinsumDense/Embedding kernel has %d weights or more with a last "
                       "axis divisible by %d. Every variable is replicated.",
                       runtime_config.model_parallel_min_params, shape[1])
    for path, layout in layouts.items():
        layout_map[path] = layout  # exact paths: no regex can catch another variable
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch"), \
        layouts


def _task_layouts(own, layout_map, probe_model, sizes):
    """Fills `layout_map` with the task's layout of each variable (by exact path), an axis
    the mesh does not divide evenly left whole (a warning says which); returns {path:
    layout} of what is split over more than one device, for the report."""
    layouts = {}
    for variable in probe_model.variables:
        layout = own[variable.path]
        if layout is None:
            continue
        axes = list(layout.axes)
        for i, axis in enumerate(axes):
            if axis is not None and variable.shape[i] % sizes[axis]:
                logger.warning("%s (shape %s) stays whole on axis %d: %d %r devices do not "
                               "divide %d.", variable.path, tuple(variable.shape), i,
                               sizes[axis], axis, variable.shape[i])
                axes[i] = None
        layout_map[variable.path] = tuple(axes)
        split = tuple(a if a is not None and sizes[a] > 1 else None for a in axes)
        if any(split):
            layouts[variable.path] = split
    return layouts


def variable_shardings(model):
    """{variable path: the JAX sharding spec} of a model's sharded variables (for reports
    and tests): only variables split over more than one device are listed."""
    found = {}
    for variable in model.variables:
        sharding = getattr(variable.value, "sharding", None)
        spec = getattr(sharding, "spec", None)
        if spec is not None and any(axis is not None for axis in spec):
            found[variable.path] = [axis for axis in spec]
    return found
