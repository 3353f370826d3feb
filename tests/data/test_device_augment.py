"""`data.augment_on=device`: the augmentation inside the compiled training step means what the
host pipeline's does (tests/data/test_augment.py), and never reaches a saved model."""

import json
import os

import keras
import numpy as np
import pytest

from tests.conftest import call_cli
from tfsuite.config import AugmentConfig, DataConfig
from tfsuite.data.augment.in_model import TrainingAugmentation, without_training_augmentation
from tfsuite.data.pipeline import build_image_data
from tfsuite.models.saving import load_model_file

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def compiled_call(layer, images, steps=1):
    """`layer(images, training=True)`, compiled as the training step compiles it (XLA), for
    `steps` steps with the random state carried between them; the outputs as NumPy."""
    images = keras.ops.convert_to_tensor(images)
    layer.build(images.shape)
    outputs = []
    if keras.backend.backend() == "jax":
        import jax

        step = jax.jit(lambda state, x: layer.stateless_call([], state, x, training=True))
        state = [v.value for v in layer.non_trainable_variables]
        for _ in range(steps):
            out, state = step(state, images)
            outputs.append(np.asarray(out))
        return outputs
    import tensorflow as tf

    step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    return [np.asarray(step(images)) for _ in range(steps)]


def one_image_batch(n, height=11, width=11, channels=3):
    image = (np.random.default_rng(0).random((height, width, channels)) * 255).round()
    return image.astype(np.float32), np.repeat(image[None].astype(np.float32), n, axis=0)


def test_flip_only_gives_exact_flips_per_image_and_new_draws_every_step():
    image, batch = one_image_batch(64)
    layer = TrainingAugmentation(AugmentConfig(horizontal_flip=True), seed=3)
    first, second = compiled_call(layer, batch, steps=2)
    for out in (first, second):
        flipped = [np.array_equal(o, image[:, ::-1]) for o in out]
        kept = [np.array_equal(o, image) for o in out]
        assert all(f or k for f, k in zip(flipped, kept))
        assert 16 < sum(flipped) < 48  # half of them, per image
    assert not np.array_equal(first, second)  # the seed state advances between steps


def test_90_degree_rotation_and_known_shift_in_the_compiled_step():
    """Known parameters through the backend's ops (as test_augment's `ours` on the host),
    then shifts drawn inside the compiled step."""
    image, batch = one_image_batch(1)
    layer = TrainingAugmentation(AugmentConfig(width_shift_range=3, interpolation="nearest",
                                               fill_mode="constant"), seed=0)
    layer.build(batch.shape)
    affine = layer.augmentation_layers[0]
    params = {k: keras.ops.convert_to_tensor([float(v)]) for k, v in {
        "theta": 90.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0,
        "flip_horizontal": 0.0, "flip_vertical": 0.0}.items()}
    rotated = np.asarray(affine.transform_images(keras.ops.convert_to_tensor(batch), params))
    np.testing.assert_allclose(rotated[0], np.rot90(image, k=1), atol=1e-3)
    params["theta"], params["tx"] = params["tx"], keras.ops.convert_to_tensor([3.0])
    shifted = np.asarray(affine.transform_images(keras.ops.convert_to_tensor(batch), params))
    np.testing.assert_allclose(shifted[0, :, :-3], image[:, 3:], atol=1e-4)
    # Drawn in the compiled step: a bright pixel moves sideways by whole pixels in [-3, 3].
    dot = np.zeros((64, 12, 20, 1), np.float32)
    dot[:, 5, 9] = 255.0
    (moved,) = compiled_call(layer, dot)
    rows, cols = np.nonzero(moved[..., 0] > 127)[1:]
    assert set(rows.tolist()) == {5} and set(cols.tolist()) <= set(range(6, 13))
    assert len(set(cols.tolist())) >= 5  # per-image shifts


def test_inference_passes_images_through_and_the_seed_repeats():
    _, batch = one_image_batch(8)
    config = AugmentConfig(rotation_range=30, zoom_range=0.2, brightness_range=[0.5, 1.5],
                           channel_shift_range=20)
    layer = TrainingAugmentation(config, seed=5)
    np.testing.assert_array_equal(np.asarray(layer(batch)), batch)
    first = compiled_call(layer, batch)[0]
    again = compiled_call(TrainingAugmentation(config, seed=5), batch)[0]
    np.testing.assert_allclose(first, again, atol=1e-4)
    assert first.dtype == np.float32 and 0 <= first.min() and first.max() <= 255
    assert not np.allclose(first, batch)


def test_the_layer_is_taken_out_of_the_saved_model(tmp_path):
    inputs = keras.Input((8, 8, 3), name="image")
    x = TrainingAugmentation(AugmentConfig(horizontal_flip=True), seed=1,
                             name="augmentation")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(
        keras.layers.Flatten(name="flatten")(x)))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.zeros((8, 8, 8, 3)), np.zeros(8, np.int32), batch_size=4, verbose=0)
    saved = without_training_augmentation(model)
    saved.save(tmp_path / "model.keras")  # the trained optimizer goes with it
    assert int(keras.saving.load_model(tmp_path / "model.keras").optimizer.iterations) == 2
    assert [layer.name for layer in saved.layers] == ["image", "flatten", "head"]
    assert saved.get_layer("head") is model.get_layer("head")  # the trained weights, shared
    images = np.random.default_rng(1).random((4, 8, 8, 3)).astype(np.float32) * 255
    np.testing.assert_allclose(saved.predict(images, verbose=0), model.predict(images, verbose=0))
    assert without_training_augmentation(saved) is saved


def test_batches_are_not_augmented_on_the_host_when_the_model_augments():
    data = DataConfig(source="digits", image_size=[16, 16], color_mode="grayscale",
                      augment_on="device", augment=AugmentConfig(rotation_range=20))
    on_device = build_image_data(data, 32, seed=0, in_model=True)
    plain = build_image_data(data, 32, seed=0, augment=False)
    assert on_device.augment_in_model and not plain.augment_in_model
    first, second = next(iter(on_device.train)), next(iter(plain.train))
    np.testing.assert_array_equal(np.asarray(first[0]), np.asarray(second[0]))
    host = build_image_data(DataConfig(**{**data.__dict__, "augment_on": "host"}), 32, seed=0,
                            in_model=True)
    assert not host.augment_in_model
    # Nothing to augment: no layer in the model.
    none = build_image_data(DataConfig(source="digits", augment_on="device"), 32, seed=0,
                            in_model=True)
    assert not none.augment_in_model


@pytest.mark.slow
def test_a_run_augmented_on_the_device_trains_saves_and_exports(tmp_path):
    run_dir = str(tmp_path / "run")
    result = call_cli("train", "digits", "--run-dir", run_dir, "--set", "train.epochs=3",
                      "--set", "data.augment_on=device", "--set", "compress.methods=[]",
                      "--set", "export.formats=[keras]", "--set", f"export.out={tmp_path / 'exported'}")
    assert result.returncode == 0, result.stderr
    assert "augmented on the device" in result.stdout
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["data"]["augmented_on"] == "device"
    assert summary["metrics"]["test_accuracy"] > 0.5  # chance is 0.1
    model = load_model_file(os.path.join(run_dir, "model.keras"))
    assert "augmentation" not in [layer.name for layer in model.layers]
