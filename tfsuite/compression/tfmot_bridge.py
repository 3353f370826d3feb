"""The bridge to TensorFlow Model Optimization (TFMOT), which only accepts tf_keras
(Keras 2) models: Keras 3 -> tf_keras -> TFMOT -> Keras 3.

`to_tf_keras` rebuilds a Keras 3 functional model layer by layer in tf_keras
from its config (dtype policies, initializers and call arguments translated),
copies the weights, and checks both that every weight is equal and that the
two models give the same outputs on real inputs. `to_keras` copies weights
back into a Keras 3 model of the same structure (after `strip_pruning`). On
top of that, `prune_with_tfmot` and `quantization_aware_training` run TFMOT's
own APIs. This is the only module that imports tf_keras or TFMOT.
"""

import inspect

import numpy as np

from tfsuite.errors import user_error
from tfsuite.packages import install_hint

INSTALL_HINT = f"{install_hint('tfmot')} (tensorflow-model-optimization and tf-keras)"
_ATOL = 1e-5


def _modules():
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as e:
        raise user_error("TFMOT is not installed", "tensorflow-model-optimization and tf-keras",
                         f"ImportError: {e}", f"Install them: {INSTALL_HINT}, or use "
                         "--set compress.pruning_backend=native.") from None
    return tf_keras, tfmot


# ---------------------------------------------------------------- Keras 3 -> tf_keras


def _plain(value):
    """Keras 3 serialized objects to the `{class_name, config}` form tf_keras reads."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "DTypePolicyMap"):
            return value["config"]["name"]
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _plain(value["config"])}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _layer_config(cls, entry):
    """The entry's config with only the arguments the tf_keras class takes.

    Initializers are left out (the weights are copied); an argument tf_keras
    lacks is dropped only when it holds its neutral value (None, False, 0).
    """
    accepted = {"name", "trainable", "dtype"}
    for klass in cls.__mro__:  # arguments passed on through **kwargs to base classes
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters)
    config = {}
    for key, value in _plain(entry["config"]).items():
        if key.endswith("_initializer"):
            continue
        if key in accepted:
            config[key] = value
        elif value not in (None, False, 0, {}, []):
            raise _unconvertible(entry, f"its argument {key}={value!r} has no tf_keras "
                                        "equivalent")
    return config


def _unconvertible(entry, why):
    return user_error(f"Layer {entry['name']!r} ({entry['class_name']}) cannot be converted to "
                      f"tf_keras for TFMOT: {why}", "Keras layers that exist in tf_keras "
                      "(Dense, Conv2D, BatchNormalization, pooling, Rescaling, ...)",
                      f"layer={entry['name']!r}", "Use the native Keras 3 pruning instead: "
                      "--set compress.pruning_backend=native.")


def _build_layer(tf_keras, entry):
    cls = getattr(tf_keras.layers, entry["class_name"], None)
    if cls is None or entry.get("module") not in (None, "keras.layers"):
        raise _unconvertible(entry, "tf_keras has no such layer (a custom or Keras 3-only "
                                    "layer)")
    config = _layer_config(cls, entry)
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as e:
        raise _unconvertible(entry, f"{type(e).__name__}: {e}") from e


def _resolve(value, tensors):
    """Keras 3 call arguments with `__keras_tensor__` references replaced by tf_keras tensors."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return tensors[tuple(value["config"]["keras_history"])]
    if isinstance(value, (list, tuple)):
        return [_resolve(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, tensors) for k, v in value.items()}
    return value


def _endpoints(spec, tensors):
    """`input_layers` / `output_layers`: one [name, node, index] triple or a list of them."""
    triples = [spec] if spec and isinstance(spec[0], str) else spec
    found = [tensors[tuple(t)] for t in triples]
    return found[0] if len(found) == 1 else found


def _functional(tf_keras, config):
    tensors = {}
    for entry in config["layers"]:
        name, kind = entry["name"], entry["class_name"]
        if kind == "InputLayer":
            spec = entry["config"]
            tensors[(name, 0, 0)] = tf_keras.Input(batch_shape=spec["batch_shape"],
                                                   dtype=spec.get("dtype"), name=name)
            continue
        if kind in ("Functional", "Model"):
            layer = _functional(tf_keras, entry["config"])
        else:
            layer = _build_layer(tf_keras, entry)
        for index, node in enumerate(entry["inbound_nodes"]):
            args = _resolve(node["args"], tensors)
            # Keras 3 records `training=False` for dropout-like layers; in tf_keras that
            # would switch them off for good, so the training phase is left to fit().
            kwargs = {k: v for k, v in _resolve(node["kwargs"], tensors).items()
                      if k != "training"}
            outputs = layer(*args, **kwargs)
            flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for position, tensor in enumerate(flat):
                tensors[(name, index, position)] = tensor
    return tf_keras.Model(_endpoints(config["input_layers"], tensors),
                          _endpoints(config["output_layers"], tensors), name=config["name"])


def _weighted_layers(model):
    """{name: layer} for the layers that hold weights themselves (nested models searched)."""
    return {layer.name: layer for layer in model._flatten_layers(include_self=False,
                                                                 recursive=True)
            if layer.weights and not hasattr(layer, "layers")}


def _copy_weights(source, target, read):
    """Layer by layer, by name: tf_keras lists a model's trainable weights first, so the
    model-level weight lists of the two libraries are in different orders."""
    targets = _weighted_layers(target)
    sources = _weighted_layers(source)
    if set(targets) != set(sources):
        raise RuntimeError(f"Layers with weights differ: {sorted(set(targets) ^ set(sources))}")
    for name, layer in sources.items():
        targets[name].set_weights([read(w) for w in layer.weights])


def _check_same(keras_model, tf_model, images, what):
    """Every weight equal and outputs within 1e-5 on `images`, else an error."""
    import keras

    tf_layers = _weighted_layers(tf_model)
    for name, layer in _weighted_layers(keras_model).items():
        for a, b in zip(layer.weights, tf_layers[name].weights):
            if not np.array_equal(keras.ops.convert_to_numpy(a), b.numpy()):
                raise RuntimeError(f"{what}: weight {a.path} differs after the copy")
    expected = keras.ops.convert_to_numpy(keras_model(images, training=False))
    received = tf_model(images, training=False).numpy()
    diff = float(np.abs(expected - received).max())
    if diff > _ATOL:
        raise RuntimeError(f"{what}: outputs differ by {diff:.3g} (more than {_ATOL}) after "
                           "the weights were copied")
    return diff


def to_tf_keras(model, images):
    """A tf_keras copy of a Keras 3 functional model, checked on `images`.

    Args:
        model: a float32 Keras 3 functional model (tfsuite builds these).
        images: a batch of real inputs the two models must agree on.

    Returns:
        (tf_keras model, max |difference| of the outputs).
    """
    tf_keras, _ = _modules()
    import keras

    if not isinstance(model, keras.Model) or "input_layers" not in model.get_config():
        raise user_error("Only functional Keras models can go through the TFMOT bridge",
                         "a model built with keras.Input and layer calls",
                         f"{type(model).__name__}", "Use --set compress.pruning_backend=native.")
    tf_model = _functional(tf_keras, model.get_config())
    _copy_weights(model, tf_model, keras.ops.convert_to_numpy)
    return tf_model, _check_same(model, tf_model, images, "Keras 3 -> tf_keras")


def to_keras(tf_model, template, images):
    """The Keras 3 `template` model with `tf_model`'s weights (same structure), checked."""
    import keras

    model = keras.models.clone_model(template)
    _copy_weights(tf_model, model, lambda w: w.numpy())
    _check_same(model, tf_model, images, "tf_keras -> Keras 3")
    return model


# ---------------------------------------------------------------- TFMOT


def _compile(tf_keras, model, learning_rate):
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])


def prune_with_tfmot(model, data, layer_names, schedule, structure, epochs, learning_rate,
                     images, quiet=False):
    """Prunes a Keras 3 model with `tfmot.sparsity.keras.prune_low_magnitude`.

    The model goes to tf_keras, the named layers are wrapped with the schedule
    (`PolynomialDecay` or `ConstantSparsity`, or 2:4 through
    `sparsity_m_by_n`), it is fine-tuned with `UpdatePruningStep`, then
    `strip_pruning` removes the wrappers and the weights come back into a
    Keras 3 copy of the model.

    Returns:
        (pruned Keras 3 model, {"to_tf_keras_max_diff": ...}).
    """
    tf_keras, tfmot = _modules()
    sparsity = tfmot.sparsity.keras
    tf_model, diff = to_tf_keras(model, images)
    kind, arguments = schedule.tfmot_arguments()
    pruning = {"pruning_schedule": getattr(sparsity, kind)(**arguments)}
    if structure == "2:4":
        pruning["sparsity_m_by_n"] = (2, 4)
    names = set(layer_names)
    nested = sorted(names - {layer.name for layer in tf_model.layers})
    if nested:
        raise user_error("TFMOT prunes only layers at the top of a model; these are inside a "
                         "nested model", "top-level layers", f"layers={nested}",
                         "Use the native pruning (--set compress.pruning_backend=native), "
                         "which reaches nested layers, or select other layers.")

    def wrap(layer):  # the layer itself, not a copy: its trained weights stay
        return sparsity.prune_low_magnitude(layer, **pruning) if layer.name in names else layer

    wrapped = tf_keras.models.clone_model(tf_model, clone_function=wrap)
    _compile(tf_keras, wrapped, learning_rate)
    wrapped.fit(data.train, validation_data=data.val, epochs=epochs,
                callbacks=[sparsity.UpdatePruningStep()], verbose=0 if quiet else 2)
    stripped = sparsity.strip_pruning(wrapped)
    return to_keras(stripped, model, images), {"to_tf_keras_max_diff": diff}


def quantization_aware_training(model, data, epochs, learning_rate, images, quiet=False):
    """Fine-tunes a Keras 3 model with TFMOT's fake quantization (QAT).

    Every layer TFMOT's default 8-bit scheme supports is annotated; the rest
    (e.g. input rescaling) stay float and the converter quantizes around them.

    Returns:
        (tf_keras QAT model, names of the annotated layers, names left float).
    """
    tf_keras, tfmot = _modules()
    quantization = tfmot.quantization.keras
    tf_model, _ = to_tf_keras(model, images)
    annotated, left = [], []
    registry = quantization.default_8bit.Default8BitQuantizeRegistry()

    def annotate(layer):  # the layer itself, not a copy: its trained weights stay
        if not registry.supports(layer):
            left.append(layer.name)
            return layer
        annotated.append(layer.name)
        return quantization.quantize_annotate_layer(layer)

    marked = tf_keras.models.clone_model(tf_model, clone_function=annotate)
    with quantization.quantize_scope():
        qat = quantization.quantize_apply(marked)
    _compile(tf_keras, qat, learning_rate)
    qat.fit(data.train, validation_data=data.val, epochs=epochs, verbose=0 if quiet else 2)
    return qat, annotated, left
