"""ImageDataGenerator-style augmentation as Keras 3 data layers.

Keys and units follow the legacy `ImageDataGenerator` (rotation and shear in
degrees, shifts as fractions or pixels, zoom as [lo, hi] with zx and zy drawn
independently, brightness as a multiplicative factor, channel shift as an
intensity added to every channel). One class per module:

- `RandomAffine` (random_affine.py): rotation, shifts, shear, zoom and flips
  fused into one affine warp per image;
- `RandomChannelShift`, `RandomBrightnessScale`.

`build_augmentation` turns an `AugmentConfig` into the list of layers, in the
legacy order (warp, channel shift, brightness).
"""

from tfsuite.data.augment.random_affine import FILL_MODES, INTERPOLATIONS, RandomAffine, _pair
from tfsuite.data.augment.random_brightness_scale import RandomBrightnessScale
from tfsuite.data.augment.random_channel_shift import RandomChannelShift

__all__ = ["FILL_MODES", "INTERPOLATIONS", "RandomAffine", "RandomBrightnessScale",
           "RandomChannelShift", "augments", "build_augmentation"]


def _parts(config):
    """Which layers `config` asks for: (warp, channel shift, brightness)."""
    zoom = _pair(config.zoom_range, "zoom_range")
    geometric = bool(config.rotation_range or config.width_shift_range
                     or config.height_shift_range or config.shear_range or zoom != [1.0, 1.0]
                     or config.horizontal_flip or config.vertical_flip)
    brightness = (config.brightness_range is not None
                  and list(config.brightness_range) != [1.0, 1.0])
    return geometric, config.channel_shift_range > 0, brightness


def augments(config):
    """Whether an `AugmentConfig` asks for any augmentation (without building layers)."""
    return any(_parts(config))


def build_augmentation(config, seed=None, image_dtype="float32"):
    """Builds the list of augmentation layers for an `AugmentConfig`.

    A layer is added only when its strength is above zero (as timm does), so an
    empty list means no augmentation. Each layer is applied with its own
    `Dataset.map` on batches, or inside the training model
    (`tfsuite.data.augment.in_model`); none of them goes into the saved model.

    Args:
        config: `tfsuite.config.AugmentConfig`.
        seed: base seed; each layer gets its own offset. Defaults to `None`.
        image_dtype: dtype of the incoming images. With "uint8" and nearest
            interpolation the warp moves bytes, not floats;
            the other layers compute in float32. Defaults to `"float32"`.

    Returns:
        A list of Keras layers.
    """
    layers = []
    geometric, channel_shift, brightness = _parts(config)
    offset = lambda k: None if seed is None else seed + k  # noqa: E731
    if geometric:
        layers.append(RandomAffine(
            rotation_range=config.rotation_range, width_shift_range=config.width_shift_range,
            height_shift_range=config.height_shift_range, shear_range=config.shear_range,
            zoom_range=config.zoom_range, horizontal_flip=config.horizontal_flip,
            vertical_flip=config.vertical_flip, fill_mode=config.fill_mode, cval=config.cval,
            interpolation=config.interpolation, seed=offset(1),
            dtype=image_dtype if config.interpolation == "nearest" else "float32"))
    # The legacy order: warp, channel shift, (flips,) brightness. float32 whatever the dtype
    # policy: bfloat16 would round the shifted and scaled pixel values.
    if channel_shift:
        layers.append(RandomChannelShift(config.channel_shift_range, seed=offset(3),
                                         dtype="float32"))
    if brightness:
        layers.append(RandomBrightnessScale(config.brightness_range, seed=offset(2),
                                            dtype="float32"))
    return layers
