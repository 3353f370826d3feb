"""The TFMOT bridge: Keras 3 <-> tf_keras with weights and outputs checked, and the
cross-check the issue asks for: native and TFMOT pruning agree on the digits CNN."""

import keras
import numpy as np
import pytest
import tensorflow_model_optimization  # noqa: F401  a [test] dependency: absence fails

from tfsuite.errors import UserError


@pytest.fixture(scope="module")
def digits(cnn_run):
    from tfsuite.config import read_run_config
    from tfsuite.export.model import float32_copy
    from tfsuite.models.saving import load_run_model
    from tfsuite.task import get_task

    _, run_dir = cnn_run
    config = read_run_config(run_dir)
    data = get_task(config).build_inputs()
    images = np.concatenate([np.asarray(b) for b, _ in data.test])
    return config, float32_copy(load_run_model(run_dir))[0], data, images


def test_round_trip_keeps_every_weight_and_output(digits):
    from tfsuite.compression.tfmot_bridge import to_keras, to_tf_keras

    _, model, _, images = digits
    tf_model, diff = to_tf_keras(model, images[:64])
    assert diff <= 1e-5 and type(tf_model).__module__.startswith("tf_keras")
    back = to_keras(tf_model, model, images[:64])
    for a, b in zip(model.weights, back.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


def test_a_layer_tf_keras_lacks_is_named():
    from tfsuite.compression.tfmot_bridge import to_tf_keras
    from tfsuite.models.preprocessing import ImageNetPreprocessing

    inputs = keras.Input((8, 8, 3), name="image")
    x = ImageNetPreprocessing("tf", name="imagenet_preprocessing")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    with pytest.raises(UserError, match="'imagenet_preprocessing' \\(ImageNetPreprocessing\\) "
                                        "cannot be converted"):
        to_tf_keras(model, np.zeros((2, 8, 8, 3), np.float32))


@pytest.mark.slow
def test_native_and_tfmot_pruning_agree_on_the_digits_cnn(digits):
    """Same target, schedule, data and fine-tuning: same sparsity, accuracy within 1 point."""
    from tfsuite.compression import finetune
    from tfsuite.compression.methods import _accuracy
    from tfsuite.compression.pruning import (
        MagnitudePruning,
        select_layers,
        sparsity_by_layer,
    )
    from tfsuite.compression.schedules import build_schedule
    from tfsuite.compression.tfmot_bridge import prune_with_tfmot
    from tfsuite.export.model import float32_copy

    config, model, data, images = digits
    labels = np.concatenate([np.asarray(l) for _, l in data.test])
    names = [layer.name for layer in select_layers(model, [])]
    epochs = 6
    schedule = build_schedule(config.compress, finetune.steps_per_epoch(config, data) * epochs)
    native = float32_copy(model)[0]
    keras.utils.set_random_seed(0)
    finetune.fine_tune(native, data, epochs, 3e-4,
                       [MagnitudePruning(select_layers(native, []), schedule)], quiet=True)
    keras.utils.set_random_seed(0)
    tfmot_model, _ = prune_with_tfmot(model, data, names, schedule, "unstructured", epochs,
                                      3e-4, images[:64], quiet=True)
    native_sparsity = sparsity_by_layer(native, names)
    assert native_sparsity == sparsity_by_layer(tfmot_model, names)
    assert all(abs(s - 0.8) < 0.01 for s in native_sparsity.values())
    accuracies = [_accuracy(m, (images, labels)) for m in (native, tfmot_model)]
    assert abs(accuracies[0] - accuracies[1]) <= 0.01, accuracies
    assert min(accuracies) >= 0.95, accuracies
