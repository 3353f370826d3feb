"""Image classifiers: the classic MLP, a small CNN, a small ResNet, and keras.applications
backbones (ResNet-50, EfficientNetV2-B0, MobileNetV3), from scratch or ImageNet weights.

Every model takes raw images (float 0..255) of the configured size, applies its
own preprocessing, and ends in a float32 softmax, so mixed precision never
computes the loss in half precision.
"""

import os

import keras
from keras import layers

from tfsuite.data.augment.in_model import LAYER_NAME as AUGMENTATION_LAYER, TrainingAugmentation
from tfsuite.errors import user_error
from tfsuite.models.batch_norm import use_one_pass_statistics, without_biases_before_batch_norm
from tfsuite.models.preprocessing import build_preprocessing

KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"
# The keras.applications backbones: (constructor, its ImageNet weights without the top
# (the file keras.applications reads from the Keras cache), the folder it downloads from).
APPLICATIONS = {
    "resnet50": ("ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "resnet/"),
    "efficientnetv2b0": ("EfficientNetV2B0", "efficientnetv2-b0_notop.h5", "efficientnet_v2/"),
    "mobilenetv3large": ("MobileNetV3Large",
                         "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                         "mobilenet_v3/"),
    "mobilenetv3small": ("MobileNetV3Small",
                         "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                         "mobilenet_v3/"),
}


def _regularizer(l2):
    return keras.regularizers.L2(l2) if l2 > 0 else None


def _conv_bn_relu(x, filters, l2, strides=1, name=None):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                      kernel_regularizer=_regularizer(l2), name=name and name + "_conv")(x)
    # momentum 0.9: small datasets take few steps, and 0.99 leaves the moving
    # statistics far from the data after a short run.
    x = layers.BatchNormalization(momentum=0.9, name=name and name + "_bn")(x)
    return layers.ReLU(name=name and name + "_relu")(x)


def build_mlp_base(x, config):
    """The classic MLP: Flatten, Dense 512, Dense 256 (ReLU, dropout)."""
    x = layers.Flatten(name="flatten")(x)
    for units in (512, 256):
        x = layers.Dense(units, activation="relu", kernel_regularizer=_regularizer(config.l2),
                         name=f"dense_{units}")(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{units}")(x)
    return x


def build_cnn_base(x, config):
    """Two VGG-style blocks (two 3x3 convs + max-pool), then global average pooling."""
    for block, filters in enumerate((config.width, 2 * config.width), start=1):
        x = _conv_bn_relu(x, filters, config.l2, name=f"block{block}a")
        x = _conv_bn_relu(x, filters, config.l2, name=f"block{block}b")
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = _conv_bn_relu(x, 4 * config.width, config.l2, name="block3")
    return layers.GlobalAveragePooling2D(name="avg_pool")(x)


def _basic_block(x, filters, strides, l2, name):
    shortcut = x
    y = _conv_bn_relu(x, filters, l2, strides=strides, name=name + "_1")
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                      kernel_regularizer=_regularizer(l2), name=name + "_2_conv")(y)
    y = layers.BatchNormalization(momentum=0.9, name=name + "_2_bn")(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                 kernel_regularizer=_regularizer(l2), name=name + "_proj")(x)
        shortcut = layers.BatchNormalization(momentum=0.9, name=name + "_proj_bn")(shortcut)
    return layers.ReLU(name=name + "_out")(layers.Add(name=name + "_add")([shortcut, y]))


def build_resnet_base(x, config):
    """A small ResNet for small images: 3x3 stem, three stages of two basic blocks."""
    x = _conv_bn_relu(x, config.width, config.l2, name="stem")
    for stage, filters in enumerate((config.width, 2 * config.width, 4 * config.width)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, config.l2, name=f"stage{stage + 1}_{block + 1}")
    return layers.GlobalAveragePooling2D(name="avg_pool")(x)


def resolve_weights(model_name, weights):
    """None, a local file, or "imagenet": the file in the Keras cache, downloaded there by
    Keras first where the network allows. Offline, a clear error (called before the run
    folder is written)."""
    if weights != "imagenet":
        return weights
    if model_name not in APPLICATIONS:
        raise user_error("ImageNet weights exist for the keras.applications backbones only",
                         f"model.name one of {sorted(APPLICATIONS)}",
                         f"model.name={model_name!r} with model.weights='imagenet'",
                         "Leave model.weights out to train from scratch.")
    _, file_name, folder = APPLICATIONS[model_name]
    cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
    path = os.path.join(cache, file_name)
    if os.path.isfile(path):
        return path
    try:
        return keras.utils.get_file(file_name, KERAS_WEIGHTS + folder + file_name,
                                    cache_subdir="models")
    except Exception as e:  # Keras wraps every network failure in a bare Exception
        raise user_error(f"ImageNet weights for {model_name} are not in the Keras cache and "
                         "could not be downloaded", f"the file {path}",
                         f"model.weights='imagenet' ({str(e)[:200]})",
                         f"Download {KERAS_WEIGHTS + folder + file_name} where there is "
                         "network and put it there, or pass a local file with --set "
                         "model.weights=/path/to/file.h5.") from None


def build_application_base(x, config):
    """A keras.applications backbone without its top, as one sub-model named "backbone".

    ResNet-50 trained from scratch has no bias in its convolutions (each feeds a batch
    norm, which cancels it), as in torchvision and the reference implementations.
    """
    constructor = getattr(keras.applications, APPLICATIONS[config.name][0])
    weights = resolve_weights(config.name, config.weights)
    options = {"include_preprocessing": True} if config.name != "resnet50" else {}
    backbone = constructor(include_top=False, weights=weights, input_shape=tuple(x.shape[1:]),
                           pooling="avg", **options)
    if weights is None and config.name == "resnet50":
        backbone = without_biases_before_batch_norm(backbone)
    backbone.name = "backbone"
    return backbone(x)


BASES = {"mlp": build_mlp_base, "cnn": build_cnn_base, "resnet": build_resnet_base,
         **{name: build_application_base for name in APPLICATIONS}}


def build_classifier(model_config, augment_config, image_shape, num_classes,
                     feature_mean=None, feature_variance=None, augment_in_model=False,
                     seed=None):
    """Builds an image classifier that takes raw 0..255 images.

    Args:
        model_config: `tfsuite.config.ModelConfig`.
        augment_config: `tfsuite.config.AugmentConfig` (rescale and feature-wise
            normalization go into the model).
        image_shape: (height, width, channels).
        num_classes: number of classes.
        feature_mean, feature_variance: training-set statistics for
            feature-wise normalization. Defaults to `None`.
        augment_in_model: put `augment_config`'s augmentation into the model, first
            (`TrainingAugmentation`: on while training only; `model_to_save` takes
            it out). Defaults to `False`.
        seed: the augmentation's seed. Defaults to `None`.

    Returns:
        A functional `keras.Model` ending in a float32 softmax named "predictions".
    """
    if model_config.name in APPLICATIONS and image_shape[-1] != 3:
        raise user_error(f"{model_config.name} needs RGB images", "data.color_mode='rgb'",
                         f"data.color_mode with {image_shape[-1]} channel(s)")
    inputs = keras.Input(shape=tuple(image_shape), name="image")
    x = inputs
    if augment_in_model:
        x = TrainingAugmentation(augment_config, seed=seed, name=AUGMENTATION_LAYER)(x)
    for layer in build_preprocessing(model_config.name, augment_config, feature_mean,
                                     feature_variance):
        x = layer(x)
    x = BASES[model_config.name](x, model_config)
    if model_config.dropout and model_config.name != "mlp":
        x = layers.Dropout(model_config.dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32",
                           kernel_regularizer=_regularizer(model_config.l2),
                           name="predictions")(x)
    return use_one_pass_statistics(keras.Model(inputs, outputs, name=model_config.name))


def set_trainable_layers(model, num_layers):
    """Freezes the network body, then unfreezes its top `num_layers` layers.

    Batch normalization layers stay frozen (inference mode), as recommended for
    fine-tuning. `num_layers=None` unfreezes every layer but those.
    """
    body = model.get_layer("backbone") if "backbone" in [l.name for l in model.layers] else model
    candidates = [l for l in body.layers if l.weights and l.name != "predictions"
                  and not isinstance(l, (layers.Rescaling, layers.Normalization))]
    body.trainable = True
    if num_layers is None:
        unfrozen = candidates
    else:
        unfrozen = candidates[len(candidates) - num_layers:] if num_layers else []
    for layer in candidates:
        layer.trainable = layer in unfrozen and not isinstance(layer,
                                                               layers.BatchNormalization)
