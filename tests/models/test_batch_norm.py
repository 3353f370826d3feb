"""Cheaper batch norm: the same statistics in one pass, and no biases it would cancel."""

import keras
import numpy as np
import pytest

from tfsuite.config import AugmentConfig, ModelConfig
from tfsuite.models.batch_norm import use_one_pass_statistics, without_biases_before_batch_norm
from tfsuite.models.vision import build_classifier

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_one_pass_statistics_match_keras_and_train_the_same():
    x = np.random.RandomState(0).normal(3.0, 2.0, (64, 6, 6, 8)).astype("float32")
    plain = keras.Sequential([keras.Input((6, 6, 8)), keras.layers.BatchNormalization()])
    fast = use_one_pass_statistics(keras.models.clone_model(plain))
    assert fast.layers[0]._moments.__func__ is not type(fast.layers[0])._moments
    np.testing.assert_allclose(_numpy(fast(x, training=True)), _numpy(plain(x, training=True)),
                               atol=1e-4)
    for model in (plain, fast):
        model(x, training=True)  # moves the moving statistics
    np.testing.assert_allclose(_numpy(fast.layers[0].moving_variance),
                               _numpy(plain.layers[0].moving_variance), rtol=1e-5)


def test_resnet50_from_scratch_drops_only_biases_batch_norm_cancels():
    source = keras.applications.ResNet50(include_top=False, weights=None,
                                         input_shape=(32, 32, 3), pooling="avg")
    copy = without_biases_before_batch_norm(source)
    convolutions = [l for l in copy.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convolutions) == 53 and not any(l.use_bias for l in convolutions)
    assert copy.count_params() == source.count_params() - sum(
        l.filters for l in convolutions)
    # Same kernels and a random bias in the source: the outputs match in inference (the
    # copy's moving means shifted by the bias) and in training (batch statistics).
    by_name = {l.name: l for l in source.layers}
    rng = np.random.RandomState(1)
    for layer in copy.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, _ = by_name[layer.name].get_weights()
            bias = rng.normal(0, 0.5, layer.filters).astype("float32")
            by_name[layer.name].set_weights([kernel, bias])
            layer.set_weights([kernel])
            bn = by_name[layer.name.replace("_conv", "_bn")]
            gamma, beta, mean, variance = bn.get_weights()
            copy.get_layer(bn.name).set_weights([gamma, beta, mean - bias, variance])
        elif layer.weights and not isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(by_name[layer.name].get_weights())
    x = rng.uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    for training in (False, True):  # inference first: training moves the moving means
        ours, theirs = _numpy(copy(x, training=training)), _numpy(source(x, training=training))
        # 53 float32 batch norms deep (the last over 8 values a channel): rounding, not
        # the O(1) a bias that mattered would make.
        assert np.abs(ours - theirs).max() < 0.01 * np.abs(theirs).max()


def test_classifiers_get_one_pass_statistics_and_resnet50_loses_its_biases():
    model = build_classifier(ModelConfig(name="resnet50"), AugmentConfig(), (32, 32, 3), 5)
    backbone = model.get_layer("backbone")
    assert not any(getattr(l, "use_bias", False) for l in backbone.layers
                   if isinstance(l, keras.layers.Conv2D))
    norms = [l for l in backbone.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all("_one_pass_moments" in l._moments.__func__.__name__ for l in norms)
