"""`RandomChannelShift`: the legacy `channel_shift_range`."""

import keras

from tfsuite.data.augment.base import RandomImageLayer, uniform


@keras.saving.register_keras_serializable(package="tfsuite")
class RandomChannelShift(RandomImageLayer):
    """Adds one intensity in [-r, r] to every channel, clipped to the image's own range.

    Args:
        channel_shift_range: r, in pixel values (0..255 images).
        seed: random seed. Defaults to `None`.
    """

    config_keys = ("channel_shift_range",)

    def __init__(self, channel_shift_range, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.channel_shift_range = float(channel_shift_range)

    def get_random_transformation(self, images, seed=None):
        batch = self.backend.shape(images)[0]
        r = self.channel_shift_range
        return uniform(self, (batch, 1, 1, 1), -r, r, seed, 0)

    def transform_images(self, images, intensity):
        ops = self.backend
        low = ops.numpy.min(images, axis=(1, 2, 3), keepdims=True)
        high = ops.numpy.max(images, axis=(1, 2, 3), keepdims=True)
        return ops.numpy.minimum(ops.numpy.maximum(images + intensity, low), high)
