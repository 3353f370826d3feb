"""Each ImageDataGenerator key against the legacy class (tf_keras), where it is deterministic."""

import numpy as np
import pytest
import tensorflow as tf
from tf_keras.preprocessing.image import ImageDataGenerator

from tfsuite.config import AugmentConfig
from tfsuite.data.pipeline import apply_augmentation
from tfsuite.data.augment import (RandomAffine, RandomBrightnessScale, RandomChannelShift,
                                  build_augmentation)

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

IDENTITY = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0,
            "flip_horizontal": 0.0, "flip_vertical": 0.0}


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((11, 11, 3)) * 255).astype(np.float32)


def ours(image, fill_mode="nearest", interpolation="bilinear", cval=0.0, **params):
    layer = RandomAffine(fill_mode=fill_mode, interpolation=interpolation, cval=cval)
    transformation = {k: tf.constant([float(v)]) for k, v in {**IDENTITY, **params}.items()}
    return np.asarray(layer.transform_images(tf.constant(image[None]), transformation))[0]


def legacy(image, fill_mode="nearest", cval=0.0, **params):
    return ImageDataGenerator(fill_mode=fill_mode, cval=cval).apply_transform(image, params)


def test_rotation_90_degrees_matches_legacy_and_numpy(image):
    out = ours(image, theta=90)
    np.testing.assert_allclose(out, legacy(image, theta=90), atol=1e-3)
    # Legacy (and ours): +90 degrees turns the picture counter-clockwise on screen.
    np.testing.assert_allclose(out, np.rot90(image, k=1), atol=1e-3)


def test_known_pixel_shifts(image):
    # width shift: horizontal (legacy parameter "tx"); height shift: vertical ("ty").
    shifted = ours(image, tx=3)
    np.testing.assert_allclose(shifted, legacy(image, tx=3), atol=1e-4)
    np.testing.assert_allclose(shifted[:, :-3], image[:, 3:], atol=1e-4)
    down = ours(image, ty=-2)
    np.testing.assert_allclose(down, legacy(image, ty=-2), atol=1e-4)
    np.testing.assert_allclose(down[2:], image[:-2], atol=1e-4)


def test_flips(image):
    np.testing.assert_array_equal(ours(image, flip_horizontal=1), image[:, ::-1])
    np.testing.assert_array_equal(ours(image, flip_vertical=1), image[::-1])
    np.testing.assert_allclose(ours(image, flip_horizontal=1),
                               legacy(image, flip_horizontal=True), atol=1e-4)


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant"])
@pytest.mark.parametrize("params", [
    {"shear": 30},  # degrees, as in the legacy generator
    {"zx": 0.5, "zy": 0.8},  # below 1 zooms in
    {"zx": 1.4, "zy": 1.1},
    {"theta": 17, "tx": 1.5, "ty": -2.5, "shear": 10, "zx": 1.2, "zy": 0.9},
])
def test_shear_zoom_and_combinations_match_legacy(image, fill_mode, params):
    np.testing.assert_allclose(ours(image, fill_mode, cval=7.0, **params),
                               legacy(image, fill_mode, cval=7.0, **params), atol=1e-3)


def test_shift_keys_on_a_non_square_image():
    """width_shift_range moves content sideways, height_shift_range up and down."""
    image = np.zeros((12, 20, 1), np.float32)
    image[5, 9] = 255.0
    for key, axis in (("width_shift_range", 1), ("height_shift_range", 0)):
        layer = RandomAffine(**{key: 3}, interpolation="nearest", fill_mode="constant", seed=0)
        params = layer.get_random_transformation(tf.zeros((64, 12, 20, 1)))
        moved = layer.transform_images(tf.constant(np.repeat(image[None], 64, 0)), params)
        rows, cols = np.nonzero(np.asarray(moved)[..., 0] > 127)[1:]
        still = cols if axis == 0 else rows  # the other axis never moves
        assert set(still.tolist()) == {9 if axis == 0 else 5}
        assert len(set((rows if axis == 0 else cols).tolist())) > 3


def test_wrap_fill_is_periodic(image):
    np.testing.assert_allclose(ours(image, "wrap", tx=4), np.roll(image, -4, axis=1), atol=1e-4)


def test_nearest_interpolation_is_exact_for_integer_shifts(image):
    np.testing.assert_array_equal(ours(image, interpolation="nearest", tx=2)[:, :-2],
                                  image[:, 2:])


def test_zoom_units_shrink_content():
    square = np.zeros((21, 21, 1), np.float32)
    square[5:16, 5:16] = 255.0
    bigger = ours(square, "constant", zx=0.5, zy=0.5)  # zoom in: the square grows
    smaller = ours(square, "constant", zx=2.0, zy=2.0)  # zoom out: it shrinks
    assert (bigger > 127).sum() > (square > 127).sum() > (smaller > 127).sum()


def test_random_parameters_respect_ranges():
    layer = RandomAffine(rotation_range=20, width_shift_range=0.2, height_shift_range=3,
                         shear_range=10, zoom_range=[0.8, 1.1], horizontal_flip=True, seed=3)
    params = layer.get_random_transformation(tf.zeros((512, 40, 50, 3)))
    theta = np.asarray(params["theta"])
    assert -20 <= theta.min() < -15 and 15 < theta.max() <= 20
    tx = np.abs(np.asarray(params["tx"]))
    assert 0.2 * 40 < tx.max() <= 0.2 * 50  # a fraction of the width (50), not the height
    assert np.abs(np.asarray(params["ty"])).max() <= 3  # pixels when >= 1
    assert 0.8 <= np.asarray(params["zx"]).min() and np.asarray(params["zy"]).max() <= 1.1
    assert not np.allclose(np.asarray(params["zx"]), np.asarray(params["zy"]))  # drawn independently
    assert 0.35 < np.asarray(params["flip_horizontal"]).mean() < 0.65
    assert np.asarray(params["flip_vertical"]).max() == 0


@pytest.mark.parametrize("factor", [0.5, 1.6])
def test_brightness_matches_legacy(factor):
    # A dim image (20..140): the legacy path must not stretch it to 0..255 first.
    image = 20 + np.random.default_rng(3).random((9, 9, 3)).astype(np.float32) * 120
    out = np.asarray(RandomBrightnessScale([factor, factor]).transform_images(
        tf.constant(image[None]), tf.constant(factor)))[0]
    expected = ImageDataGenerator().apply_transform(image, {"brightness": factor})
    # The legacy path truncates to uint8 before PIL scales and again after.
    np.testing.assert_allclose(out, expected, atol=2.5)


def test_channel_shift_matches_legacy(image):
    out = np.asarray(RandomChannelShift(50).transform_images(tf.constant(image[None]),
                                                             tf.constant(40.0)))[0]
    expected = ImageDataGenerator().apply_transform(image, {"channel_shift_intensity": 40.0})
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_featurewise_statistics_match_legacy_fit():
    from tfsuite.data.pipeline import _feature_stats

    images = np.random.default_rng(1).integers(0, 256, (64, 9, 9, 3)).astype(np.uint8)
    mean, variance = _feature_stats([images[:40], images[40:]], rescale=1 / 255.0)
    generator = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                                   rescale=1 / 255.0)
    generator.fit(images.astype(np.float32))
    np.testing.assert_allclose(mean, generator.mean.reshape(-1), rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(variance), generator.std.reshape(-1), rtol=1e-4)


def test_build_adds_only_layers_with_strength():
    assert build_augmentation(AugmentConfig()) == []
    layers = build_augmentation(AugmentConfig(rotation_range=10, brightness_range=[0.8, 1.2],
                                              channel_shift_range=5), seed=1)
    # The legacy order: warp, channel shift, brightness.
    assert [type(l).__name__ for l in layers] == ["RandomAffine", "RandomChannelShift",
                                                 "RandomBrightnessScale"]


def test_layers_run_inside_tf_data_seeded_and_batched():
    config = AugmentConfig(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
                           shear_range=20, zoom_range=0.2, horizontal_flip=True,
                           brightness_range=[0.7, 1.3], channel_shift_range=10)
    images = np.random.default_rng(2).integers(0, 256, (32, 24, 24, 3)).astype(np.float32)

    def run(seed):
        dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(32, np.int32))).batch(8)
        dataset = apply_augmentation(tf, dataset, build_augmentation(config, seed), seed)
        return np.concatenate([b.numpy() for b, _ in dataset])

    first, second, other = run(7), run(7), run(8)
    assert first.shape == images.shape and first.dtype == np.float32
    np.testing.assert_allclose(first, second)  # same seed, same augmentation
    assert not np.allclose(first, other)
    assert not np.allclose(first, images)
    assert first.min() >= 0 and first.max() <= 255


def test_layers_serialize():
    layer = RandomAffine(rotation_range=5, zoom_range=0.1, fill_mode="reflect", seed=2)
    again = RandomAffine.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="fill_mode"):
        RandomAffine(fill_mode="mirror")
