"""The Keras model as it is exported: checked for augmentation, rebuilt in float32.

Exported graphs never hold augmentation layers (they would run at serving time
in inference mode at best, and bloat or break converters at worst), and a model
trained in mixed precision is served in float32, so every runtime computes what
the reference computes.
"""

import numpy as np

from tfsuite.errors import user_error

# Keras 3 augmentation layers that are not named Random*.
_AUGMENTATION_CLASSES = ("RandAugment", "AugMix", "MixUp", "CutMix")


def find_augmentation_layers(model):
    """Names (with their class) of augmentation layers anywhere in `model`."""
    from tfsuite.data.augment.base import RandomImageLayer

    found = []
    for layer in _walk(model):
        name = type(layer).__name__
        if (isinstance(layer, RandomImageLayer) or name.startswith("Random")
                or name in _AUGMENTATION_CLASSES):
            found.append(f"{layer.name} ({name})")
    return found


def _walk(layer):
    """Every layer inside `layer`, nested models and layers held by custom layers included."""
    return layer._flatten_layers(include_self=False, recursive=True)


def check_exportable(model, model_path):
    """Raises a clear error when the model cannot be exported as it is."""
    augmentation = find_augmentation_layers(model)
    if augmentation:
        raise user_error(
            "The model has augmentation layers baked in; exported graphs must not contain them",
            "a model whose augmentation runs in the input pipeline (tfsuite's data.augment)",
            f"{model_path} with " + ", ".join(augmentation),
            "Rebuild the model without these layers (copy the trained weights over) and save "
            "it as model.keras again; tfsuite models apply augmentation in tf.data.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise user_error("Only single-input, single-output models can be exported here",
                         "one image input and one probabilities output",
                         f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")


def _float32_policies(config):
    """Replaces every mixed dtype policy in a serialized model with float32, in place."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(
                config.get("config", {}).get("name", "")).startswith("mixed_"):
            config["config"]["name"] = "float32"
        for value in config.values():
            _float32_policies(value)
    elif isinstance(config, list):
        for value in config:
            _float32_policies(value)
    return config


def float32_copy(model):
    """The model rebuilt with float32 layers and no optimizer, weights copied.

    Returns:
        (copy, was_mixed): `was_mixed` tells whether any layer computed in a
        mixed precision policy.
    """
    import keras

    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # no optimizer: its state would triple the file
    was_mixed = any(layer.dtype_policy.name.startswith("mixed_") for layer in _walk(model))
    copy = keras.saving.deserialize_keras_object(_float32_policies(config))
    copy.set_weights(model.get_weights())
    return copy, was_mixed


def predict_in_batches(model, images, batch_size):
    """Float32 probabilities of a Keras model on a NumPy batch, without fit/predict loops."""
    import keras

    outputs = [keras.ops.convert_to_numpy(model(images[i:i + batch_size], training=False))
               for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs).astype(np.float32)
