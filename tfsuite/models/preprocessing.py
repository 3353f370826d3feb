"""Inference preprocessing that lives inside the saved model.

Models take raw images (0..255 at the configured size); these layers turn them
into what each network expects. Augmentation never goes here.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfsuite")
class ImageNetPreprocessing(keras.layers.Layer):
    """`keras.applications` preprocess_input as a serializable layer.

    Args:
        mode: "caffe" (RGB to BGR, ImageNet mean subtracted: ResNet-50),
            "torch" (0..1, ImageNet mean and std) or "tf" (-1..1).
            Defaults to `"caffe"`.
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)
    CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "torch", "tf"):
            raise ValueError(f"`mode` must be 'caffe', 'torch' or 'tf'. Received: mode={mode!r}")
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            return (images / 255.0 - ops.array(self.MEAN, self.compute_dtype)) / ops.array(
                self.STD, self.compute_dtype)
        return ops.flip(images, axis=-1) - ops.array(self.CAFFE_MEAN_BGR, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def build_preprocessing(model_name, augment_config, feature_mean=None, feature_variance=None):
    """The preprocessing layers for a model, in order.

    Small models get `rescale` (default 1/255) then, when the augmentation
    config asks for it, feature-wise centering and std normalization with
    statistics from the training data, as `ImageDataGenerator.standardize`.
    ResNet-50 gets its own `preprocess_input` (caffe mode); EfficientNetV2 and MobileNetV3
    preprocess inside their keras.applications models.
    """
    if model_name == "resnet50":
        return [ImageNetPreprocessing("caffe", name="imagenet_preprocessing")]
    if model_name.startswith(("efficientnetv2", "mobilenetv3")):
        return []  # their keras.applications models take 0..255 and preprocess themselves
    rescale = augment_config.rescale if augment_config.rescale is not None else 1.0 / 255.0
    layers = [keras.layers.Rescaling(rescale, name="rescale")]
    center = augment_config.featurewise_center
    scale = augment_config.featurewise_std_normalization
    if (center or scale) and feature_mean is not None:
        mean = feature_mean if center else feature_mean * 0.0
        variance = feature_variance if scale else feature_variance * 0.0 + 1.0
        layers.append(keras.layers.Normalization(axis=-1, mean=mean, variance=variance,
                                                 name="featurewise_normalization"))
    return layers
