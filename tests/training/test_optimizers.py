import keras
import numpy as np
import pytest

from tfsuite.config import TrainConfig
from tfsuite.errors import UserError
from tfsuite.training.losses import SparseCategoricalCrossentropy
from tfsuite.training.optimizers import OPTIMIZERS, build_optimizer, get_optimizer, get_schedule

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def _rate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step))) if callable(schedule) else schedule


def test_schedules():
    assert get_schedule("constant", 0.1, 10, 5) == 0.1
    step = get_schedule("step", 0.1, steps_per_epoch=10, epochs=30, step_epochs=10,
                        step_gamma=0.1)
    assert _rate(step, 0) == pytest.approx(0.1) and _rate(step, 99) == pytest.approx(0.1)
    assert _rate(step, 100) == pytest.approx(0.01) and _rate(step, 250) == pytest.approx(0.001)
    cosine = get_schedule("cosine", 0.1, 10, 10)
    assert _rate(cosine, 0) == pytest.approx(0.1) and _rate(cosine, 50) == pytest.approx(0.05)
    assert _rate(cosine, 100) == pytest.approx(0.0, abs=1e-7)
    warm = get_schedule("warmup_cosine", 0.1, 10, 10, warmup_epochs=2)
    assert _rate(warm, 0) == pytest.approx(0.0, abs=1e-7)
    assert _rate(warm, 10) == pytest.approx(0.05) and _rate(warm, 20) == pytest.approx(0.1)
    assert _rate(warm, 100) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(UserError):
        get_schedule("linear", 0.1, 1, 1)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_a_step(name):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    optimizer = get_optimizer(TrainConfig(optimizer=name, learning_rate=0.01, weight_decay=1e-4,
                                          clipnorm=1.0, ema=True), steps_per_epoch=2, epochs=1)
    model.compile(optimizer=optimizer, loss=SparseCategoricalCrossentropy(0.1))
    before = [w.copy() for w in model.get_weights()]
    model.fit(np.ones((8, 4), np.float32), np.arange(8) % 3, epochs=1, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    assert optimizer.global_clipnorm == 1.0 and optimizer.use_ema


def test_optimizer_details():
    nesterov = build_optimizer("nesterov", 0.1, momentum=0.8)
    assert nesterov.nesterov and nesterov.momentum == 0.8
    accumulate = build_optimizer("adam", 0.1, gradient_accumulation_steps=4)
    assert accumulate.gradient_accumulation_steps == 4
    assert isinstance(get_optimizer("lion"), keras.optimizers.Lion)
    instance = keras.optimizers.SGD()
    assert get_optimizer(instance) is instance
    assert isinstance(get_optimizer({"class_name": "Adam", "config": {}}), keras.optimizers.Adam)


def test_label_smoothing_loss_matches_keras_categorical():
    y = np.array([0, 2, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]], np.float32)
    ours = SparseCategoricalCrossentropy(label_smoothing=0.1)(y, p)
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(3)[y], p)
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)
    plain = SparseCategoricalCrossentropy()(y, p)
    assert float(plain) == pytest.approx(
        float(keras.losses.SparseCategoricalCrossentropy()(y, p)), rel=1e-6)
