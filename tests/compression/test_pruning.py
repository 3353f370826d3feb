"""Native Keras 3 pruning: exact sparsity through fine-tuning, on TensorFlow and JAX."""

import keras
import numpy as np
import pytest

from tfsuite.compression.pruning import (
    MagnitudePruning,
    select_layers,
    sparsity_by_layer,
)
from tfsuite.compression.schedules import PolynomialDecay
from tfsuite.errors import UserError

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def _prune(patterns=(), structure="unstructured"):
    """Fine-tunes a small CNN with pruning to 75% on this process's Keras backend (the README
    runs this file on TensorFlow, then again on JAX)."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(16, activation="relu", name="hidden")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(h))
    layers = select_layers(model, list(patterns))
    pruning = MagnitudePruning(layers, PolynomialDecay(0.75, 0, 24, 4), structure)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[pruning])
    return {"steps": pruning.step,
            "sparsity": sparsity_by_layer(model, [layer.name for layer in layers]),
            "accuracy": history.history["accuracy"][-1]}


def test_native_pruning_reaches_the_target():
    outcome = _prune()
    assert outcome["steps"] == 32
    assert outcome["sparsity"] == {"conv": 0.75, "hidden": 0.75, "out": 0.75}
    assert outcome["accuracy"] > 0.6


def test_layer_selection_and_two_of_four():
    outcome = _prune(patterns=["hid.*"], structure="2:4")
    assert outcome["sparsity"] == {"hidden": 0.5}


def test_masks_survive_training_and_are_exact_zeros():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, name="a"),
                              keras.layers.Dense(3, activation="softmax", name="b")])
    x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32")
    y = np.arange(64) % 3
    pruning = MagnitudePruning(select_layers(model, ["a"]), PolynomialDecay(0.5, 0, 2, 1))
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[pruning])
    kernel = keras.ops.convert_to_numpy(model.get_layer("a").kernel)
    zeros = kernel == 0
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[pruning])
    assert (keras.ops.convert_to_numpy(model.get_layer("a").kernel)[zeros] == 0).all()
    assert sparsity_by_layer(model, ["a", "b"]) == {"a": 0.5, "b": 0.0}


def test_a_pattern_that_selects_nothing_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    with pytest.raises(UserError, match="selects nothing.*Received: compress.pruning_layers"):
        select_layers(model, ["conv.*"])
