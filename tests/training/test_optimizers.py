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


def test_bfloat16_rounding_is_unbiased():
    """1 + 2^-10 lies an eighth of the way from 1 to the next bfloat16 (1 + 2^-7)."""
    from tfsuite.training.bfloat16_optimizers import round_stochastic

    x = keras.ops.full((100_000,), 1 + 2 ** -10, "float32")
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(
        round_stochastic(x, keras.random.SeedGenerator(1)), "float32"))
    assert set(np.unique(rounded)) == {1.0, 1 + 2 ** -7}
    assert abs(rounded.mean() - (1 + 2 ** -10)) < 2e-5
    negative = keras.ops.convert_to_numpy(keras.ops.cast(
        round_stochastic(-x, keras.random.SeedGenerator(2)), "float32"))
    assert abs(negative.mean() + (1 + 2 ** -10)) < 2e-5
    # NaN stays NaN (a diverged step must not pass for a finite one), inf stays inf.
    # 0x7FFFFFFF is the NaN GPUs make, whose low bits carry over into the sign.
    gpu_nan = np.array([0x7FFFFFFF], "uint32").view("float32")[0]
    special = keras.ops.convert_to_tensor(np.array([gpu_nan, -np.nan, np.inf, -np.inf, 0.0],
                                                   "float32"))
    kept = keras.ops.convert_to_numpy(keras.ops.cast(
        round_stochastic(special, keras.random.SeedGenerator(3)), "float32"))
    assert np.isnan(kept[:2]).all() and list(kept[2:]) == [np.inf, -np.inf, 0.0]


@pytest.mark.parametrize("name, state", [("adam", "float32"), ("adamw", "bfloat16")])
def test_bfloat16_weights_take_steps_keras_adam_rounds_away(name, state):
    """A bfloat16 weight of 1.0, 50 steps of 1e-3: Keras' Adam (its arithmetic in bfloat16)
    leaves it at 1.0; tfsuite's moves it by 0.05 on average, its moments in `state`."""
    def trained(optimizer):
        weight = keras.Variable(np.ones(4096, "float32"), dtype="bfloat16")
        optimizer.build([weight])
        for _ in range(50):
            optimizer.apply([keras.ops.ones(4096, "bfloat16")], [weight])
        return optimizer, float(keras.ops.mean(keras.ops.cast(weight, "float32")))

    _, plain = trained(keras.optimizers.Adam(1e-3))
    assert plain == 1.0
    optimizer, moved = trained(build_optimizer(name, 1e-3, weight_decay=0.0,
                                               bfloat16_state=state))
    assert moved == pytest.approx(0.95, abs=2e-3)
    moments = [v for v in optimizer.variables if v.shape == (4096,)]
    assert len(moments) == 2 and {str(v.dtype) for v in moments} == {state}


def test_bfloat16_weight_decay_is_applied_once_in_float32():
    """A zero gradient leaves AdamW's decay alone: 50 steps multiply by 1 - 0.01 x 0.1."""
    weight = keras.Variable(np.ones(4096, "float32"), dtype="bfloat16")
    optimizer = build_optimizer("adamw", 0.01, weight_decay=0.1, bfloat16_state="float32")
    optimizer.build([weight])
    for _ in range(50):
        optimizer.apply([keras.ops.zeros(4096, "bfloat16")], [weight])
    mean = float(keras.ops.mean(keras.ops.cast(weight, "float32")))
    assert mean == pytest.approx(0.999 ** 50, abs=1e-3)


def test_a_bfloat16_model_fits_like_float32():
    """The same small regression with float32 weights (tfsuite's AdamW hands them to
    Keras' update) and with bfloat16 weights (its float32 update): both fit it, with
    gradient accumulation and the weights' moving average (EMA) on."""
    x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    y = x @ np.linspace(-1, 1, 8).astype("float32")[:, None]
    losses = {}
    for policy in ("float32", "bfloat16"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, dtype=policy),
                                  keras.layers.Dense(1, dtype=policy)])
        optimizer = get_optimizer(TrainConfig(optimizer="adamw", learning_rate=0.02,
                                              weight_decay=1e-4, gradient_accumulation_steps=2,
                                              ema=True, ema_momentum=0.9),
                                  bfloat16_weights=True)
        model.compile(optimizer=optimizer, loss="mse")
        history = model.fit(x, y, batch_size=32, epochs=8, verbose=0).history["loss"]
        losses[policy] = history[-1]
        assert history[-1] < 0.1 * history[0], (policy, history)
    assert losses["bfloat16"] < 0.05 and losses["float32"] < 0.05, losses
