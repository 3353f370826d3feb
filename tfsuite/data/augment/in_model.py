"""`TrainingAugmentation`: the augmentation layers inside the training model.

With `data.augment_on=device` (the default on a JAX accelerator) batches cross to
the accelerator as they are, uint8, and the augmentation runs there, inside the
compiled training step: the host only gathers (or decodes) images. The layers are
the ones the tf.data pipeline maps on the host (`build_augmentation`): the same
keys, units, per-image draws and legacy order. Training applies them; inference
passes images through; `without_training_augmentation` takes the layer out before
the model is saved, since saved and exported models never contain augmentation.
"""

import dataclasses

import keras

from tfsuite.data.augment import build_augmentation

LAYER_NAME = "augmentation"


@keras.saving.register_keras_serializable(package="tfsuite")
class TrainingAugmentation(keras.layers.Layer):
    """Applies ImageDataGenerator-style augmentation when `training` is true.

    It computes in float32 whatever the dtype policy: a warp's source coordinates
    need more than bfloat16's 8 bits (pixel 200 of a row would move in steps of 1).

    Args:
        augment: the `data.augment` keys, a dict (or a `tfsuite.config.AugmentConfig`).
        seed: random seed; each augmentation layer gets its own offset. Defaults to `None`.
    """

    def __init__(self, augment, seed=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if dataclasses.is_dataclass(augment):
            augment = dataclasses.asdict(augment)
        from tfsuite.config import AugmentConfig

        self.augment = dict(augment)
        self.seed = seed
        self.augmentation_layers = build_augmentation(AugmentConfig(**self.augment), seed,
                                                      image_dtype="float32")

    def build(self, input_shape):
        for layer in self.augmentation_layers:
            layer.build(input_shape)

    def call(self, images, training=None):
        if not training:
            return images
        images = keras.ops.cast(images, "float32")
        for layer in self.augmentation_layers:
            images = layer(images)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "augment": self.augment, "seed": self.seed}


def without_training_augmentation(model):
    """`model` without its `TrainingAugmentation` layer (the same layers, weights and
    optimizer), or `model` itself when it has none."""
    if not any(isinstance(layer, TrainingAugmentation) for layer in model.layers):
        return model

    def call(layer, *args, **kwargs):
        if isinstance(layer, TrainingAugmentation):
            return args[0]
        return layer(*args, **kwargs)

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer,
                                     call_function=call)
    if getattr(model, "optimizer", None) is not None:
        # The same variables (the layers are shared), so the trained optimizer fits them:
        # its state is saved with the model, as for a model that never had this layer.
        clone.optimizer = model.optimizer
    return clone
