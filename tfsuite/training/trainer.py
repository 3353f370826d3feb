"""The trainer: compile and fit inside the strategy scope, with checkpoints and resume.

A run writes `checkpoints/` after every epoch (weights with optimizer state,
then `state.json`). Started again with the same command after a crash or a
SIGKILL, it rebuilds the model, restores weights and optimizer state from the
last completed epoch and continues from there.
"""

import math
import os
import time

import keras
import numpy as np

from tfsuite.errors import UserError, require_free_space
from tfsuite.packages import has_tensorflow
from tfsuite.io import write_json
from tfsuite.run_dir import CHECKPOINTS, DIVERGED, HISTORY, read_state
from tfsuite.training.callbacks import (DataEpoch, NanGuard, OneStepLateBatchEnd, ProgressLogger,
                                        ResumableCheckpoint, ResumableEarlyStopping,
                                        current_learning_rate, trim_history)
from tfsuite.training.optimizers import get_optimizer
from tfsuite.training.tensorboard import RunTensorBoard, write_hparams


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Fits a task's model on its data for a config, resuming where a run stopped.

    Args:
        config: `ExperimentConfig`.
        run_dir: the run directory (checkpoints, logs, curves go there).
        runtime: `tfsuite.training.runtime.Runtime`.
        quiet: no per-epoch lines. Defaults to `False`.
        resume_from: the run directory whose checkpoints a resumed run starts from.
            Defaults to `run_dir` (another worker's temporary folder takes the chief's).
    """

    def __init__(self, config, run_dir, runtime, quiet=False, resume_from=None):
        self.config = config
        self.run_dir = run_dir
        self.runtime = runtime
        self.quiet = quiet
        self.checkpoint_dir = os.path.join(run_dir, CHECKPOINTS)
        # A multi-worker job resumes every worker from the chief's checkpoints.
        self.resume_dir = os.path.join(resume_from or run_dir, CHECKPOINTS)
        self.state = None
        self.progress = None
        self.tensorboard = None
        self.stopped_before = False

    @property
    def total_epochs(self):
        return self.config.train.epochs + self.config.train.fine_tune_epochs

    @property
    def restore_best(self):
        """Whether the model ends with the best epoch's weights (`train.restore_best`)."""
        train = self.config.train
        return train.early_stopping_patience > 0 if train.restore_best is None \
            else train.restore_best

    def _phases(self):
        train = self.config.train
        phases = [("train", 0, train.epochs, train.learning_rate)]
        if train.fine_tune_epochs:
            phases.append(("fine_tune", train.epochs, self.total_epochs,
                           train.fine_tune_learning_rate))
        return phases

    def _phase_name(self, epoch):
        """What epoch index `epoch` trains, when the run has a fine-tuning phase."""
        train = self.config.train
        if not train.fine_tune_epochs:
            return None
        if epoch >= train.epochs:
            return "fine-tuning"
        return "head, base frozen" if getattr(self.config.model, "freeze_base", False) \
            else "before fine-tuning"

    def _compile(self, task, model, steps_per_epoch, phase_epochs, learning_rate, num_classes):
        optimizer = get_optimizer(self.config.train, steps_per_epoch, phase_epochs,
                                  learning_rate=learning_rate,
                                  bfloat16_weights=self.runtime.precision == "bfloat16")
        jit_compile = self.config.train.jit_compile
        if jit_compile is None:  # JAX always compiles; TF's XLA pays off on GPUs only
            jit_compile = self.runtime.backend == "jax" or (
                self.runtime.backend == "tensorflow" and self.runtime.has_gpu)
        # Sequence tasks weigh their metrics by the padding mask (the data's sample weights).
        weighted = getattr(task, "weighted_metrics", None)
        model.compile(optimizer=optimizer, loss=task.loss(), metrics=task.metrics(num_classes),
                      weighted_metrics=weighted(num_classes) if weighted else None,
                      steps_per_execution=self.config.train.steps_per_execution,
                      jit_compile=jit_compile)

    def compile(self, task, model, data):
        """Compiles `model` as the run's first phase does: for a model trained outside `fit`
        (`diagnose --probe`, `lr-find`)."""
        _, begin, end, learning_rate = self._phases()[0]
        steps = max(1, math.ceil(self._images_per_epoch(data) / self.config.train.batch_size))
        with self.runtime.scope():
            self._compile(task, model, steps, end - begin, learning_rate, data.num_classes)

    def _callbacks(self, data, wall_offset):
        started = time.perf_counter()
        self.nan_guard = NanGuard()
        self.progress = ProgressLogger(self.total_epochs, self._images_per_epoch(data),
                                       quiet=self.quiet, unit=getattr(data, "unit", "img"),
                                       phase=self._phase_name)
        checkpoint = ResumableCheckpoint(
            self.checkpoint_dir, monitor=self._monitor(data), nan_guard=self.nan_guard,
            state=self.state, extra_state=lambda: {
                "wall_seconds": wall_offset + time.perf_counter() - started,
                **self._loss_record()})
        self.state = checkpoint.state
        # The progress logger times the epoch before the checkpoint is written. The CSV row
        # comes before the checkpoint too: a kill between them leaves a row the resumed run
        # trims (`trim_history`), never a saved epoch without its row.
        callbacks = [self.nan_guard, self.progress,
                     keras.callbacks.CSVLogger(os.path.join(self.run_dir, HISTORY),
                                               append=True), checkpoint]
        if has_tensorflow():  # it writes with tf.summary, on any backend
            every = self.config.train.log_every_steps
            log_dir = os.path.join(self.run_dir, "logs")
            self.tensorboard = RunTensorBoard(log_dir, update_freq=every or "epoch")
            callbacks.append(self.tensorboard)
            write_hparams(log_dir, self.config)
        if hasattr(data.train, "set_epoch"):
            callbacks.append(DataEpoch(data.train))
        if self.config.train.early_stopping_patience:
            self.early_stopping = ResumableEarlyStopping(
                history=self.state.get("history", {}), monitor=self._monitor(data),
                best_weights_file=os.path.join(self.resume_dir, "best.weights.h5"),
                patience=self.config.train.early_stopping_patience,
                mode="min" if "loss" in self._monitor(data) else "max",
                restore_best_weights=self.restore_best)
            callbacks.append(self.early_stopping)
        else:
            self.early_stopping = None
        return callbacks

    def _images_per_epoch(self, data):
        """Training images an epoch takes: a JAX mesh leaves the partial batch out."""
        images = data.num_train
        if self.runtime.needs_full_batches:
            images -= images % self.config.train.batch_size
        return images

    def _monitor(self, data):
        monitor = self.config.train.monitor
        return monitor if data.val is not None else monitor.replace("val_", "")

    def fit(self, task, data):
        """Trains (or resumes) and returns the model with its final weights."""
        self.state = read_state(self.resume_dir)
        start = self.state["epochs_completed"] if self.state else 0
        self.runtime.check_same_start(start)
        self.resumed_from_epoch = start or None
        self.earlier_wall_seconds = (self.state or {}).get("wall_seconds", 0.0)
        if start:
            trim_history(os.path.join(self.run_dir, HISTORY), start)
        batch = self.config.train.batch_size
        steps_per_epoch = max(1, math.ceil(self._images_per_epoch(data) / batch))
        if hasattr(data.train, "set_epoch"):
            # Batches whose order is a function of (seed, epoch): a resumed run reads the
            # epochs an unbroken one reads (the checkpoint's epoch is their state; DataEpoch
            # keeps them in step), and Keras builds the model from this epoch's first batch.
            data.train.set_epoch(start)
        model = build_task_model(self.runtime, task, data)
        # Checkpoints (weights and optimizer state, last and best), the model, logs. A disk
        # that fills up later is caught by the stage (`stages.train`).
        needed = 10 * sum(int(np.prod(v.shape)) * 4 for v in model.weights) + 2 ** 20
        require_free_space(self.run_dir, needed)
        restore = self.state is not None
        weights_file = restore and self.state["weights"]
        callbacks = self._callbacks(data, self.earlier_wall_seconds)
        phases = self._phases()
        pending = [p for p in phases if start < p[2]] or phases[-1:]
        # Killed after early stopping ended it, before the model was saved: nothing to fit.
        self.stopped_before = bool(self.early_stopping and self.early_stopping.stopped_before())
        for name, begin, end, learning_rate in pending:
            with self.runtime.scope():
                if name == "fine_tune":
                    task.start_fine_tuning(model)
                self._compile(task, model, steps_per_epoch, end - begin, learning_rate,
                              data.num_classes)
                if restore:  # optimizer variables must exist before loading their state
                    model.optimizer.build(model.trainable_variables)
                    model.load_weights(os.path.join(self.resume_dir, weights_file))
                    restore = False
            if start >= end or self.stopped_before:  # finished before an interruption
                if self.config.train.ema:  # what fit() does at its end
                    model.optimizer.finalize_variable_values(model.trainable_variables)
                if self.early_stopping is not None:
                    self.early_stopping.restore_saved_best(model)
                break
            if self.tensorboard is not None:
                self.tensorboard.first_step = max(start, begin) * steps_per_epoch
            # shuffle=False: tf.data shuffles (Keras warns that it ignores the flag).
            late = OneStepLateBatchEnd(callbacks, add_history=True, model=model, epochs=end,
                                       steps=steps_per_epoch, verbose=0)
            self._optimizer = model.optimizer
            with self.runtime.scope():
                model.fit(data.train, validation_data=data.val, epochs=end, shuffle=False,
                          initial_epoch=max(start, begin), callbacks=late, verbose=0)
            self._check_diverged()
            if self.early_stopping is not None and self.early_stopping.stopped_epoch:
                break
        if self.early_stopping is None:  # early stopping restores the best weights itself
            self._restore_best(model)
        return model

    def _restore_best(self, model):
        """Loads the best epoch's checkpoint into `model` when `restore_best` asks for it."""
        state = self.state or {}
        best = state.get("best_epoch")
        path = os.path.join(self.resume_dir, "best.weights.h5")
        if self.restore_best and best not in (None, state.get("epochs_completed")) \
                and os.path.isfile(path):
            model.load_weights(path)

    def model_epoch(self):
        """The epoch whose weights the trained model holds."""
        state = self.state or {}
        best = state.get("best_epoch")
        return best if self.restore_best and best is not None else state.get(
            "epochs_completed", 0)

    def _loss_record(self):
        """The step losses' peak and first value, over every process of the run."""
        earlier, now = self.state or {}, self.nan_guard.record()
        peaks = [p for p in (earlier.get("loss_peak"), now["loss_peak"]) if p]
        first = earlier.get("first_step_loss")
        return {"loss_peak": max(peaks, key=lambda p: p["loss"]) if peaks else None,
                "first_step_loss": now["first_step_loss"] if first is None else first}

    def _check_diverged(self):
        if not self.nan_guard.triggered:
            return
        epoch, batch, loss = self.nan_guard.triggered
        kept = self.state.get("epochs_completed", 0)
        # What `diagnose` reads of a run that stopped here (no summary.json is written).
        optimizer = self._optimizer
        scale = getattr(optimizer, "dynamic_scale", None)  # mixed_float16's loss scale
        write_json(os.path.join(self.checkpoint_dir, DIVERGED), {
            "epoch": epoch, "batch": batch, "loss": str(loss),
            "learning_rate": current_learning_rate(optimizer),
            "precision": self.runtime.precision,
            "loss_scale": None if scale is None else float(keras.ops.convert_to_numpy(scale)),
            "last_good_epoch": kept, **self._loss_record()})
        raise TrainingDiverged(
            f"Training stopped: the loss became {loss} at epoch {epoch}, batch {batch}. "
            f"Expected a finite loss. Received: loss={loss} with "
            f"train.learning_rate={self.config.train.learning_rate}. Run again with a lower "
            "train.learning_rate, train.clipnorm=1.0, or runtime.precision=float32 (without "
            "--run-dir it goes to a new folder). The checkpoint of the last good epoch "
            f"({kept}) is kept in {self.checkpoint_dir}.")

    def history(self):
        return dict((self.state or {}).get("history", {}))

    def info(self):
        """Facts about the fit for the summary."""
        state = self.state or {}
        return {"epochs_completed": state.get("epochs_completed", 0),
                "resumed_from_epoch": self.resumed_from_epoch,
                "best_epoch": state.get("best_epoch"),
                "earlier_wall_seconds": getattr(self, "earlier_wall_seconds", 0.0),
                "images_per_second": self.progress.images_per_second() if self.progress else None,
                "epoch_images_per_second": (self.progress.epoch_images_per_second()
                                            if self.progress else []),
                "early_stopped": bool(self.early_stopping and (
                    self.early_stopping.stopped_epoch or self.stopped_before))}


def build_task_model(runtime, task, data):
    """The task's model, where the runtime's strategy wants it (with the task's layout map
    for model_parallel)."""
    return runtime.build_model(lambda: task.build_model(data), layout_map=task.layout_map)
