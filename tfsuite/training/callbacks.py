"""Callbacks for the trainer: progress lines, resumable checkpoints, NaN guard."""

import math
import os
import sys
import time

import keras
import numpy as np

from tfsuite.io import write_json
from tfsuite.progress import ProgressBar
from tfsuite.run_dir import STATE_FILE


def _log_order(key):
    base = key[4:] if key.startswith("val_") else key
    return (key == "learning_rate", key.startswith("val_"), base != "loss", base)


def _format_logs(logs):
    parts = []
    for key, value in sorted(logs.items(), key=lambda item: _log_order(item[0])):
        if key == "learning_rate":
            parts.append(f"lr: {value:.3g}")
        else:
            parts.append(f"{key}: {value:.4f}")
    return " - ".join(parts)


def current_learning_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class ProgressLogger(keras.callbacks.Callback):
    """One Keras-style line per epoch: `Epoch 3/20 - 1.2s - 950 img/s - loss: ...`, and on a
    terminal a live bar within the epoch (steps, rate, time left, loss).

    Also records epoch times and throughput for the summary.
    """

    def __init__(self, total_epochs, num_examples, stream=None, quiet=False, unit="img",
                 phase=None):
        super().__init__()
        self.phase = phase or (lambda epoch: None)  # epoch index -> its phase's name, if any
        self.unit = unit  # what an example is: img, or sentences for translation
        self.total_epochs = total_epochs
        self.num_examples = num_examples
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        steps = (self.params or {}).get("steps")  # None: unknown, and no bar to draw
        self.bar = ProgressBar(steps or 1, self._label(epoch), self.unit,
                               self.num_examples / (steps or 1), self.stream,
                               enabled=bool(steps) and not self.quiet)

    def _label(self, epoch):
        phase = self.phase(epoch)
        return f"Epoch {epoch + 1}/{self.total_epochs}" + (f" ({phase})" if phase else "")

    def on_train_batch_end(self, batch, logs=None):
        if self.bar.due():  # reading the loss waits for its step: only when drawing
            loss = (logs or {}).get("loss")
            self.bar.update(batch + 1, f"loss: {float(loss):.4f}" if loss is not None else "")

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        self.bar.close()
        if self.quiet:
            return
        logs = dict(logs or {})
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        rate = self.num_examples / seconds if seconds > 0 else float("nan")
        print(f"{self._label(epoch)} - {seconds:.1f}s - {rate:.0f} {self.unit}/s - "
              f"{_format_logs(logs)}", file=self.stream, flush=True)

    def images_per_second(self):
        """Median throughput over epochs after the first (which includes tracing)."""
        timed = self.epoch_seconds[1:] or self.epoch_seconds
        return float(self.num_examples / np.median(timed)) if timed else None

    def epoch_images_per_second(self):
        """Throughput of each epoch this process ran, the first (compiling) included."""
        return [round(self.num_examples / s, 1) for s in self.epoch_seconds if s > 0]


class OneStepLateBatchEnd(keras.callbacks.CallbackList):
    """Gives the callbacks each step's batch-end logs once the next step is dispatched.

    Reading a step's loss on the host waits for the step to finish. Keras reads it right
    after dispatching the step, so the accelerator idles while the host prepares the
    next one: on an H200 that cost ResNet-50 about 20% of its images/s (benchmarks/
    RESULTS.md). One step late, the next step is already queued while the host waits.
    A callback that stops training stops it one step later. (Keras' own remedy, batch
    hooks on a helper thread, crashed a NaN stop on JAX with "Array has been deleted",
    and its TensorBoard lost donated buffers there.) The last step of an epoch is
    delivered before `on_epoch_end`.
    """

    def __init__(self, callbacks, **kwargs):
        super().__init__(callbacks, **kwargs)
        self._pending = None

    def on_train_batch_end(self, batch, logs=None):
        self._deliver_pending()
        self._pending = (batch, logs)

    def _deliver_pending(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            super().on_train_batch_end(*pending)

    def on_epoch_end(self, epoch, logs=None):
        self._deliver_pending()
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        self._deliver_pending()
        super().on_train_end(logs)


class DataEpoch(keras.callbacks.Callback):
    """Tells batches whose order is a function of (seed, epoch) which epoch Keras trains.

    Their own count (`on_epoch_end`) runs ahead: Keras also calls it once per `fit` before
    the first epoch, so a run with a fine-tuning phase (two `fit` calls), or one resumed,
    would read other epochs than an unbroken run. Keras' epoch index is the same in all.
    """

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened.

    It reads the loss after every step, on the training thread; the trainer hands it
    the logs one step late (`OneStepLateBatchEnd`).
    """

    def __init__(self):
        super().__init__()
        self.triggered = None  # (epoch, batch, loss)
        # The largest finite running loss of the fit and where it was, and the first: what
        # `diagnose` tells an explosion that did not reach NaN by (saved in state.json).
        self.peak = None  # {"epoch", "batch", "loss", "learning_rate"}
        self.first_loss = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if self.triggered is None and not math.isfinite(loss):
            self.triggered = (self._epoch + 1, batch + 1, loss)
            self.model.stop_training = True
        elif math.isfinite(loss):
            if self.first_loss is None:
                self.first_loss = loss
            if self.peak is None or loss > self.peak["loss"]:
                self.peak = {"epoch": self._epoch + 1, "batch": batch + 1, "loss": loss,
                             "learning_rate": current_learning_rate(self.model.optimizer)}

    def record(self):
        """What state.json keeps of the losses seen step by step."""
        return {"loss_peak": self.peak, "first_step_loss": self.first_loss}


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves weights and optimizer state after every epoch, plus the best weights.

    Files in `checkpoint_dir`: `epoch-NNNN.weights.h5` (the last completed
    epoch; older ones are removed once the state points past them),
    `best.weights.h5`, and `state.json` with the epoch, history and best value,
    written last so it only ever names a complete weights file.
    """

    def __init__(self, checkpoint_dir, monitor="val_accuracy", nan_guard=None, state=None,
                 extra_state=None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.monitor = monitor
        self.nan_guard = nan_guard
        self.state = state or {"epochs_completed": 0, "history": {}, "best": None,
                               "best_epoch": None}
        self.extra_state = extra_state or (lambda: {})
        os.makedirs(checkpoint_dir, exist_ok=True)

    def _better(self, value):
        best = self.state["best"]
        if best is None:
            return True
        return value < best if "loss" in self.monitor else value > best

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.nan_guard is not None and self.nan_guard.triggered:
            return  # never checkpoint a diverged model
        weights = os.path.join(self.checkpoint_dir, f"epoch-{epoch + 1:04d}.weights.h5")
        self.model.save_weights(weights)
        for key, value in logs.items():
            self.state["history"].setdefault(key, []).append(float(value))
        # The rate each epoch ended with, for the curves' learning-rate panel.
        self.state["history"].setdefault("learning_rate", []).append(
            current_learning_rate(self.model.optimizer))
        value = logs.get(self.monitor)
        if value is not None and self._better(value):
            self.state["best"], self.state["best_epoch"] = float(value), epoch + 1
            best_tmp = os.path.join(self.checkpoint_dir, "best-tmp.weights.h5")
            self.model.save_weights(best_tmp)
            os.replace(best_tmp, os.path.join(self.checkpoint_dir, "best.weights.h5"))
        previous = self.state.get("weights")
        self.state.update(self.extra_state())
        self.state["epochs_completed"] = epoch + 1
        self.state["weights"] = os.path.basename(weights)
        write_json(os.path.join(self.checkpoint_dir, STATE_FILE), self.state)
        if previous and previous != self.state["weights"]:
            try:
                os.remove(os.path.join(self.checkpoint_dir, previous))
            except FileNotFoundError:
                pass


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that continues across processes: a resumed run replays the monitored
    values of the epochs already done, and the best weights it restores may be those of an
    epoch an earlier process trained.

    Keras' own callback resets its count and best value when training begins, and keeps
    the best weights only in memory, so a run killed and resumed ended with the weights
    of an epoch after the best one. Here a best epoch from an earlier process is restored
    from `best_weights_file` (`ResumableCheckpoint` keeps it for the same monitor).
    """

    def __init__(self, history=None, best_weights_file=None, **kwargs):
        super().__init__(**kwargs)
        self.history = history or {}
        self.best_weights_file = best_weights_file
        self._best_seen_here = False

    def _replay(self):
        """Best value and patience count after the epochs of earlier processes."""
        if self.monitor_op is None:
            self._set_monitor_op()
        best, wait = None, 0
        for value in self.history.get(self.monitor, []):
            if self._is_improvement(value, best):
                best, wait = value, 0
            else:
                wait += 1
        return best, wait

    def stopped_before(self):
        """Whether an earlier process had already stopped (killed before saving its model)."""
        values = self.history.get(self.monitor, [])
        return len(values) > 1 and self._replay()[1] >= self.patience

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._best_seen_here = False
        if self.history.get(self.monitor):
            self.best, self.wait = self._replay()

    def on_epoch_end(self, epoch, logs=None):
        best = self.best
        super().on_epoch_end(epoch, logs)
        if self.best != best:
            self._best_seen_here = True

    def on_train_end(self, logs=None):
        if self._best_seen_here or not self.history.get(self.monitor):
            super().on_train_end(logs)  # the best weights are those kept in memory
        else:
            self.restore_saved_best(self.model)

    def restore_saved_best(self, model):
        """Loads the best epoch's weights saved by an earlier process, if any."""
        if self.restore_best_weights and self.best_weights_file and os.path.isfile(
                self.best_weights_file):
            model.load_weights(self.best_weights_file)


def trim_history(path, epochs):
    """Keeps the CSV log's rows of the first `epochs` epochs (one per epoch, the latest).

    A resumed run trains again from the last checkpoint; rows written after it (an epoch
    a kill cut short, the epoch a NaN stopped) would otherwise stay, and the epoch appear
    twice.
    """
    import csv
    import io

    from tfsuite.io import write_text

    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    column, kept = rows[0].index("epoch"), {}
    for row in rows[1:]:
        try:
            epoch = int(row[column])
        except (ValueError, IndexError):
            continue  # a line cut short by a kill
        if epoch < epochs:
            kept[epoch] = row
    text = io.StringIO()
    csv.writer(text).writerows([rows[0], *(kept[e] for e in sorted(kept))])  # as CSVLogger
    write_text(path, text.getvalue())
