"""Native pruning follows TFMOT's own rules: schedules and masks checked against TFMOT."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot  # a [test] dependency: absence fails

from tfsuite.compression.pruning import m_by_n_mask, magnitude_mask
from tfsuite.compression.schedules import (
    ConstantSparsity,
    PolynomialDecay,
    build_schedule,
)
from tfsuite.config import load_config


@pytest.mark.parametrize("schedule", [
    PolynomialDecay(0.8, 10, 90, 20, initial_sparsity=0.1, power=3.0),
    PolynomialDecay(0.5, 0, 100, 7, power=2.0),
    ConstantSparsity(0.6, 5, 50, 9),
    ConstantSparsity(0.3, 0, -1, 4),
])
def test_schedules_match_tfmot_step_for_step(schedule):
    kind, arguments = schedule.tfmot_arguments()
    reference = getattr(tfmot.sparsity.keras, kind)(**arguments)
    for step in range(130):
        should, sparsity = reference(step)
        assert schedule.should_prune(step) == bool(should), step
        assert schedule.sparsity(step) == pytest.approx(float(sparsity), abs=1e-6), step


def test_automatic_end_step_lands_on_a_pruning_step():
    compress = load_config("digits").compress
    schedule = build_schedule(compress, total_steps=160)
    assert schedule.end_step <= 160 // 2
    assert schedule.should_prune(schedule.end_step)
    assert schedule.sparsity(schedule.end_step) == pytest.approx(0.8)


def test_masks_match_tfmot():
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils

    rng = np.random.default_rng(0)
    for shape in [(3, 3, 8, 16), (3, 3, 6, 4), (20, 10), (7, 5)]:
        weights = rng.normal(size=shape).astype(np.float32)
        arranged = pruning_utils.weights_rearrange(tf.constant(weights))
        expected = pruning_utils.m_by_n_sparsity_mask_prepare(
            pruning_utils.generate_m_by_n_mask(arranged, (2, 4)), tf.TensorShape(shape))
        np.testing.assert_array_equal(m_by_n_mask(weights), expected.numpy())
        mask = magnitude_mask(weights, 0.75)
        assert mask.sum() == max(round(weights.size * 0.25), 1)
        assert np.abs(weights[mask == 1]).min() >= np.abs(weights[mask == 0]).max()
