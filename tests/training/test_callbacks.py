"""The trainer's callbacks in a real Keras fit: batch-end logs one step late, the NaN stop."""

import math

import keras
import numpy as np
import pytest

from tfsuite.training.callbacks import NanGuard, OneStepLateBatchEnd

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


class Recorder(keras.callbacks.Callback):
    """What the callbacks saw, in order: ("batch", n, loss) and ("epoch", n, guard state)."""

    def __init__(self, guard):
        super().__init__()
        self.guard, self.seen = guard, []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(("batch", batch, float(logs["loss"])))

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(("epoch", epoch, self.guard.triggered))


def _fit(nan_batch, epochs=2):
    """Six batches of 4 per epoch; the inputs of batch `nan_batch` (0-based) hold a NaN."""
    x = np.random.RandomState(0).normal(size=(24, 3)).astype("float32")
    if nan_batch is not None:
        x[4 * nan_batch] = np.nan
    y = np.zeros((24, 1), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    guard = NanGuard()
    recorder = Recorder(guard)
    callbacks = OneStepLateBatchEnd([guard, recorder], add_history=True, model=model,
                                    epochs=epochs, steps=6, verbose=0)
    model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, callbacks=callbacks, verbose=0)
    return model, guard, recorder.seen


def test_every_batch_reaches_the_callbacks_in_order_before_the_epoch_ends():
    model, guard, seen = _fit(nan_batch=None)
    assert guard.triggered is None
    expected = [("batch", b) for b in range(6)] + [("epoch", 0)]
    assert [s[:2] for s in seen] == expected + [(k, n) for k, n in expected[:-1]] + [("epoch", 1)]
    assert all(math.isfinite(s[2]) for s in seen if s[0] == "batch")
    assert int(model.optimizer.iterations) == 12
    assert len(model.history.history["loss"]) == 2


def test_a_nan_stops_training_one_step_later_and_names_its_batch():
    model, guard, seen = _fit(nan_batch=2)
    assert guard.triggered[:2] == (1, 3) and math.isnan(guard.triggered[2])
    # Delivered after step 4 was dispatched: Keras stops there, and the epoch ends with
    # step 4 delivered (NaN too; the first one is the one reported).
    assert int(model.optimizer.iterations) == 4
    assert [s[:2] for s in seen] == [("batch", b) for b in range(4)] + [("epoch", 0)]


def test_a_nan_in_the_last_batch_is_seen_before_the_epoch_ends():
    model, guard, seen = _fit(nan_batch=5)
    assert guard.triggered[:2] == (1, 6)
    assert seen[-1] == ("epoch", 0, guard.triggered)  # e.g. the checkpoint sees the NaN
    assert int(model.optimizer.iterations) == 6


def test_early_stopping_knows_an_earlier_process_had_stopped():
    """A run killed after early stopping ended it, before its model was saved, must not
    train on when resumed: the replayed history says it had stopped."""
    from tfsuite.training.callbacks import ResumableEarlyStopping

    history = {"val_accuracy": [0.5, 0.6, 0.55, 0.58]}
    def stopping(patience):
        return ResumableEarlyStopping(history=history, monitor="val_accuracy", mode="max",
                                      patience=patience)
    assert stopping(2).stopped_before()
    assert not stopping(3).stopped_before()
    assert not ResumableEarlyStopping(monitor="val_loss", mode="min",
                                      patience=1).stopped_before()
