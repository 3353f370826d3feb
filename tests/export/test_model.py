"""Preparing a Keras model for export: augmentation refused, float32 rebuild."""

import os

import keras
import numpy as np

from tfsuite.data.augment.random_affine import RandomAffine
from tfsuite.export.layout import discard, next_version, start_version
from tfsuite.export.model import find_augmentation_layers, float32_copy


def _small_model(dtype_policy=None):
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Rescaling(1 / 255.0, dtype=dtype_policy)(inputs)
    x = keras.layers.Conv2D(4, 3, dtype=dtype_policy)(x)
    x = keras.layers.BatchNormalization(dtype=dtype_policy)(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype_policy)(x)
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def test_finds_augmentation_in_nested_models():
    inner_in = keras.Input((8, 8, 1))
    inner = keras.Model(inner_in, keras.layers.RandomRotation(0.1, name="spin")(inner_in),
                        name="inner")
    inputs = keras.Input((8, 8, 1))
    x = RandomAffine(rotation_range=5, name="affine")(inner(inputs))
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    assert find_augmentation_layers(model) == ["spin (RandomRotation)",
                                               "affine (RandomAffine)"]
    assert find_augmentation_layers(_small_model()) == []


def test_float32_copy_of_a_mixed_precision_model():
    model = _small_model("mixed_bfloat16")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 1)).astype(np.float32)
    model.fit(images, np.arange(16) % 3, epochs=1, verbose=0)
    copy, was_mixed = float32_copy(model)
    assert was_mixed
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert getattr(copy, "optimizer", None) is None  # no optimizer state in artifacts
    for original, copied in zip(model.weights, copy.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(original),
                                      keras.ops.convert_to_numpy(copied))
    mixed = keras.ops.convert_to_numpy(model(images))
    full = keras.ops.convert_to_numpy(copy(images))
    assert np.abs(mixed - full).max() < 0.05  # bf16 rounding only
    assert float32_copy(copy)[1] is False


def test_next_version_counts_rejected_and_skips_staging(tmp_path):
    assert next_version(str(tmp_path / "missing")) == 1
    for name in ("1", "3.rejected-20260101-000000", ".staging-9-123", "notes", "models.config"):
        (tmp_path / name).mkdir()
    assert next_version(str(tmp_path)) == 4


def test_float16_onnx_for_strongly_typed_tensorrt(tmp_path):
    """TensorRT 11 takes fp16 from the ONNX types: the converted file keeps float32 I/O."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    from tfsuite.export.onnx import OnnxRunner
    from tfsuite.export.tensorrt import float16_onnx

    model = _small_model()
    spec = tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")
    serve = tf.function(lambda image: {"probabilities": model(image)}, input_signature=[spec])
    source = str(tmp_path / "model.onnx")
    tf2onnx.convert.from_function(serve, input_signature=[spec], opset=17, output_path=source)
    target = float16_onnx(source, str(tmp_path / "model.fp16.onnx"))
    converted = onnx.load(target)
    assert converted.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in converted.graph.initializer)
    images = np.random.default_rng(1).uniform(0, 255, (32, 8, 8, 1)).astype(np.float32)
    full, half = OnnxRunner(source)(images), OnnxRunner(target)(images)
    assert np.abs(full - half).max() < 1e-2


def test_a_failed_export_removes_only_the_folders_it_made(tmp_path):
    kept = tmp_path / "existing"
    kept.mkdir()
    staging, created = start_version(str(kept / "new" / "digits"), 1)
    assert os.path.isdir(staging) and created == [str(kept / "new" / "digits"),
                                                   str(kept / "new")]
    discard(staging, created)
    assert os.listdir(tmp_path) == ["existing"] and os.listdir(kept) == []
    (kept / "digits").mkdir()
    (kept / "digits" / "1").mkdir()  # a published version
    staging, created = start_version(str(kept / "digits"), 2)
    discard(staging, created)
    assert os.listdir(kept / "digits") == ["1"]
