"""`RandomBrightnessScale`: the legacy `brightness_range`."""

import keras

from tfsuite.data.augment.base import RandomImageLayer, uniform


@keras.saving.register_keras_serializable(package="tfsuite")
class RandomBrightnessScale(RandomImageLayer):
    """Multiplies each image by a factor uniform in [lo, hi], clipped to [0, 255].

    This is the legacy `brightness_range` (PIL's brightness enhancer), not
    Keras' additive `RandomBrightness`.

    Args:
        brightness_range: [lo, hi] factors.
        value_range: the clipping range. Defaults to `(0, 255)`.
        seed: random seed. Defaults to `None`.
    """

    config_keys = ("brightness_range", "value_range")

    def __init__(self, brightness_range, value_range=(0.0, 255.0), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.brightness_range = [float(v) for v in brightness_range]
        self.value_range = [float(v) for v in value_range]

    def get_random_transformation(self, images, seed=None):
        batch = self.backend.shape(images)[0]
        low, high = self.brightness_range
        return uniform(self, (batch, 1, 1, 1), low, high, seed, 0)

    def transform_images(self, images, factors):
        return self.backend.numpy.clip(images * factors, *self.value_range)
