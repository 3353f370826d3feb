"""Low-rank factorization: exact where the kernel's rank allows it, clear errors otherwise."""

import dataclasses

import keras
import numpy as np
import pytest

from tfsuite.compression.low_rank import factorize
from tfsuite.config import CompressConfig
from tfsuite.errors import UserError

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def _model_with_rank_two_kernels():
    """A functional model whose Conv2D and Dense kernels are exactly rank 2."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(32, activation="relu", name="dense")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(x))
    for name, shape in (("conv", (27, 16)), ("dense", (16, 32))):
        low = (rng.normal(size=(shape[0], 2)) @ rng.normal(size=(2, shape[1]))).astype("float32")
        layer = model.get_layer(name)
        layer.kernel.assign(low.reshape(layer.kernel.shape))
        layer.bias.assign(rng.normal(size=shape[1]).astype("float32"))
    return model, rng.uniform(0, 1, (5, 8, 8, 3)).astype("float32")


def test_rank_two_kernels_are_factorized_exactly():
    model, images = _model_with_rank_two_kernels()
    compress = dataclasses.replace(CompressConfig(), rank=2, low_rank_layers=["conv", "dense"])
    factorized, plan = factorize(model, compress)
    assert {name: p["rank"] for name, p in plan.items()} == {"conv": 2, "dense": 2}
    assert plan["conv"]["params_after"] == 2 * (27 + 16)
    names = [layer.name for layer in factorized.layers]
    assert {"conv_u", "conv_v", "dense_u", "dense_v"} <= set(names) and "conv" not in names
    assert factorized.get_layer("conv_v").kernel.shape == (1, 1, 2, 16)
    np.testing.assert_allclose(factorized.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-5)


def test_energy_picks_the_rank_that_holds_it():
    model, _ = _model_with_rank_two_kernels()
    compress = dataclasses.replace(CompressConfig(), energy=0.999999, low_rank_layers=["dense"])
    _, plan = factorize(model, compress)
    assert plan["dense"]["rank"] == 2


def test_a_rank_larger_than_the_layer_allows():
    model, _ = _model_with_rank_two_kernels()
    compress = dataclasses.replace(CompressConfig(), rank=17, low_rank_layers=["dense"])
    with pytest.raises(UserError, match="larger than layer 'dense' allows.*a rank <= 16"):
        factorize(model, compress)
