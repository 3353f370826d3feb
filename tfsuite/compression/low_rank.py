"""Low-rank factorization: a kernel W (inputs x outputs) becomes U_r @ V_r by
truncated SVD, so one layer becomes two thinner ones.

A Dense layer becomes Dense(r, no bias) -> Dense(outputs, its bias and
activation). A k x k Conv2D (its kernel read as (k*k*inputs) x outputs)
becomes a k x k conv to r channels (same strides and padding, no bias) -> a 1x1
conv with the original bias and activation. The model is rebuilt from its
config with each factorized layer replaced by the pair; every other weight is
copied.
"""

import copy

import keras
import numpy as np

from tfsuite.compression.pruning import kernel_of, select_layers
from tfsuite.errors import user_error

FACTORIZABLE = ("Dense", "Conv2D")


def _matrix(layer):
    kernel = keras.ops.convert_to_numpy(kernel_of(layer)).astype(np.float64)
    return kernel.reshape(-1, kernel.shape[-1])


def max_rank(layer):
    return min(_matrix(layer).shape)


def saving_rank(layer):
    """The largest rank whose two factors hold fewer weights than the kernel."""
    rows, cols = _matrix(layer).shape
    return (rows * cols - 1) // (rows + cols)


def choose_rank(layer, singular_values, compress):
    """The rank for one layer: `rank`, else `energy`, else `param_reduction`."""
    rows, cols = _matrix(layer).shape
    if compress.rank is not None:
        if compress.rank > min(rows, cols):
            raise user_error(f"compress.rank is larger than layer {layer.name!r} allows",
                             f"a rank <= {min(rows, cols)} (its kernel is a {rows} x {cols} "
                             "matrix)", f"compress.rank={compress.rank}",
                             "Lower compress.rank, pick layers with compress.low_rank_layers, "
                             "or use compress.param_reduction / compress.energy instead.")
        return compress.rank
    if compress.energy is not None:
        energy = np.cumsum(singular_values ** 2) / np.sum(singular_values ** 2)
        return int(np.searchsorted(energy, compress.energy - 1e-12) + 1)
    return max(1, int((1.0 - compress.param_reduction) * rows * cols / (rows + cols)))


def _factors(layer, rank):
    """(first kernel, second kernel) whose product is the best rank-`rank` kernel."""
    kernel = keras.ops.convert_to_numpy(kernel_of(layer))
    u, s, vt = np.linalg.svd(_matrix(layer), full_matrices=False)
    root = np.sqrt(s[:rank])
    first = (u[:, :rank] * root).reshape(*kernel.shape[:-1], rank)
    second = root[:, None] * vt[:rank]
    if kernel.ndim == 4:
        second = second.reshape(1, 1, rank, kernel.shape[-1])
    return first.astype(kernel.dtype), second.astype(kernel.dtype)


def _pair_entries(entry, rank, output_shape):
    """The layer's config entry split into its two factor layers (names `<name>_u`, `_v`)."""
    name = entry["name"]
    first, second = copy.deepcopy(entry), copy.deepcopy(entry)
    first["name"] = first["config"]["name"] = f"{name}_u"
    second["name"] = second["config"]["name"] = f"{name}_v"
    config = first["config"]
    config.update(use_bias=False, activation="linear", kernel_regularizer=None,
                  activity_regularizer=None)
    config["units" if entry["class_name"] == "Dense" else "filters"] = rank
    if entry["class_name"] == "Conv2D":
        second["config"].update(kernel_size=[1, 1], strides=[1, 1], padding="valid",
                                dilation_rate=[1, 1], groups=1)
    first.pop("build_config", None)
    second.pop("build_config", None)
    # The first factor's output: the layer's own output with `rank` channels.
    history = {"class_name": "__keras_tensor__", "config": {
        "shape": [*output_shape[:-1], rank], "dtype": "float32",
        "keras_history": [f"{name}_u", 0, 0]}}
    second["inbound_nodes"] = [{"args": [history], "kwargs": {}}]
    return first, second


def _rename_references(value, old, new):
    """Points every `keras_history` (and output) reference from layer `old` to `new`."""
    if isinstance(value, dict):
        return {k: ([new, *v[1:]] if k == "keras_history" and v[0] == old
                    else _rename_references(v, old, new)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # get_config() holds both
        if len(value) == 3 and value[0] == old and isinstance(value[1], int):
            return [new, *value[1:]]
        return [_rename_references(v, old, new) for v in value]
    return value


def factorize(model, compress):
    """A new model with the selected layers factorized; the original is left as it is.

    Returns:
        (model, {layer name: {"rank", "params_before", "params_after"}}).
    """
    chosen = select_layers(model, compress.low_rank_layers, FACTORIZABLE,
                           key="compress.low_rank_layers")
    if not compress.low_rank_layers:
        chosen = [l for l in chosen if len(kernel_of(l).shape) in (2, 4)
                  and np.prod(kernel_of(l).shape) >= compress.low_rank_min_params]
    config = model.get_config()
    if "input_layers" not in config:
        raise user_error("Low-rank factorization works on functional models",
                         "a model built with keras.Input and layer calls",
                         type(model).__name__)
    top_level = {entry["name"] for entry in config["layers"]}
    plan, factors = {}, {}
    for layer in chosen:
        if layer.name not in top_level:
            continue  # inside a nested model (e.g. a keras.applications backbone)
        singular_values = np.linalg.svd(_matrix(layer), compute_uv=False)
        rank = choose_rank(layer, singular_values, compress)
        rows, cols = _matrix(layer).shape
        if rank > saving_rank(layer):
            continue  # the two factors would hold more weights than the kernel
        factors[layer.name] = _factors(layer, rank)
        plan[layer.name] = {"rank": rank, "params_before": rows * cols,
                            "params_after": rank * (rows + cols)}
    if not plan:
        raise user_error("No layer can be factorized with these settings",
                         "Dense/Conv2D layers whose rank-r factors hold fewer weights than "
                         "the kernel", f"layers={[l.name for l in chosen]}, "
                         f"rank={compress.rank}, energy={compress.energy}, "
                         f"param_reduction={compress.param_reduction}",
                         "Lower compress.energy or compress.rank, or raise "
                         "compress.param_reduction.")
    layers = []
    for entry in config["layers"]:
        if entry["name"] in plan:
            layers.extend(_pair_entries(entry, plan[entry["name"]]["rank"],
                                        list(model.get_layer(entry["name"]).output.shape)))
        else:
            layers.append(entry)
    config["layers"] = layers
    for name in plan:
        config = _rename_references(config, name, f"{name}_v")
    new = model.__class__.from_config(config)
    _copy_weights(model, new, plan, factors)
    return new, plan


def _copy_weights(model, new, plan, factors):
    for layer in new.layers:
        base = layer.name[:-2] if layer.name[-2:] in ("_u", "_v") else None
        if base in plan:
            first, second = factors[base]
            if layer.name.endswith("_u"):
                layer.set_weights([first])
            else:
                bias = model.get_layer(base).weights[1:]
                layer.set_weights([second, *[keras.ops.convert_to_numpy(b) for b in bias]])
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
