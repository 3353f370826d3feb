"""Probes that run a few steps of a run's real pipeline: where the step time goes (the
input pipeline alone, one cached batch through the training step, the real loop), and
the first layer whose output stops being finite."""

import itertools
import time

import keras
import numpy as np

from tfsuite.diagnosis.verdict import Verdict

WARMUP = 3  # steps before timing: tracing, compilation, first buffers
MIN_SECONDS = 2.0  # each timing lasts at least this long (and MAX_STEPS at most)
MAX_STEPS = 2000


def _is_tf_dataset(batches):
    return type(batches).__module__.startswith("tensorflow")


def num_batches(batches):
    """Batches in one pass over `batches` (a tf.data dataset or a PyDataset), or None."""
    if _is_tf_dataset(batches):
        count = int(batches.cardinality())
        return count if count > 0 else None
    return len(batches) if hasattr(batches, "__len__") else None


def first_batch(batches):
    """The first (inputs, labels) batch, as NumPy arrays."""
    batch = batches[0] if hasattr(batches, "__getitem__") and not _is_tf_dataset(batches) \
        else next(iter(batches))
    return tuple(keras.ops.convert_to_numpy(part) for part in batch[:2])


def _endless(batches):
    """`batches` repeated: an iterable the timings never run out of."""
    if _is_tf_dataset(batches):
        return batches.repeat()
    if hasattr(batches, "__getitem__"):
        return batches  # a PyDataset; `fit` passes steps_per_epoch <= its length
    return itertools.cycle(batches)


def batch_iterator(batches):
    """A never-ending iterator over the batches of a tf.data dataset or a PyDataset."""
    if _is_tf_dataset(batches):
        return iter(batches.repeat())
    if hasattr(batches, "__getitem__"):
        return (batches[i % len(batches)] for i in itertools.count())
    return itertools.cycle(batches)


def _repeated(batch):
    """One batch, repeated without end, in the form `fit` reads fastest."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.data.Dataset.from_tensors(batch).repeat()
    return itertools.repeat(batch)


class _StepTimer(keras.callbacks.Callback):
    """From the first step's start to the end of training (when the work is done)."""

    def on_train_batch_begin(self, batch, logs=None):
        if self.started is None:
            self.started = time.perf_counter()

    def on_train_begin(self, logs=None):
        self.started = None

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.started


def _fit_seconds_per_step(model, data, steps, per_epoch=None):
    """Seconds per training step over at least `steps` steps and `MIN_SECONDS`, after a
    warm-up (tracing, compilation, the first buffers)."""
    per_epoch = per_epoch or steps
    model.fit(data, epochs=1, steps_per_epoch=min(WARMUP, per_epoch), verbose=0)
    timer = _StepTimer()
    while True:
        epochs = -(-steps // per_epoch)
        model.fit(data, epochs=epochs, steps_per_epoch=min(steps, per_epoch), verbose=0,
                  callbacks=[timer])
        done = epochs * min(steps, per_epoch)
        if timer.seconds >= MIN_SECONDS or done >= MAX_STEPS:
            return timer.seconds / done
        steps = min(MAX_STEPS, int(done * 1.2 * MIN_SECONDS / max(timer.seconds, 1e-3)) + 1)


def time_input(batches, steps):
    """Batches per second of the input pipeline alone (no model), over at least `steps`
    batches and `MIN_SECONDS`: a prefetch buffer filled during the warm-up is a small
    part of that."""
    iterator = batch_iterator(batches)
    take = lambda: next(iterator)  # noqa: E731
    for _ in range(WARMUP):
        take()
    started = time.perf_counter()
    done = 0
    while done < steps or (time.perf_counter() - started < MIN_SECONDS and done < MAX_STEPS):
        keras.ops.convert_to_numpy(take()[0])  # the batch really made, not a promise of it
        done += 1
    return done / (time.perf_counter() - started)


def fill_cache(batches):
    """One pass over `batches`: a tf.data cache is complete afterwards, as it is from a
    run's second epoch on."""
    for _ in (batches if _is_tf_dataset(batches) else []):
        pass


def step_timings(model, batches, steps=20, cached=False):
    """Where a training step's time goes, on a compiled model and its real batches.

    Args:
        cached: the pipeline caches decoded images: one pass fills the cache first.

    Returns:
        {"steps": N, "input_batches_per_second", "compute_batches_per_second" (one cached
        batch repeated through the training step), "loop_batches_per_second" (the real
        loop), "data_share" (the part of the real step that is waiting for data)}.
    """
    if cached:
        fill_cache(batches)
    count = num_batches(batches)
    per_epoch = None if count is None or _is_tf_dataset(batches) else count
    input_rate = time_input(batches, steps)
    compute = _fit_seconds_per_step(model, _repeated(first_batch(batches)), steps)
    loop = _fit_seconds_per_step(model, _endless(batches), steps, per_epoch)
    share = max(0.0, 1 - compute / loop) if loop > 0 else 0.0
    return {"steps": steps, "input_batches_per_second": round(input_rate, 2),
            "compute_batches_per_second": round(1 / compute, 2),
            "loop_batches_per_second": round(1 / loop, 2), "data_share": round(share, 3)}


def input_bound(timings, fixes):
    """The `input_bound` verdict of `step_timings`: warning from 30% of the step waiting
    for data, problem from half of it."""
    share = timings["data_share"]
    text = (f"{share:.0%} of each training step waits for data: the input pipeline alone "
            f"makes {timings['input_batches_per_second']:.3g} batches/s, the training step "
            f"on one cached batch runs {timings['compute_batches_per_second']:.3g} batches/s, "
            f"and the real loop {timings['loop_batches_per_second']:.3g} batches/s.")
    if share >= 0.5:
        return Verdict("input_bound", "problem", "Input-bound: " + text, timings, fixes)
    if share >= 0.3:
        return Verdict("input_bound", "warning", "Partly input-bound: " + text, timings, fixes)
    return Verdict("input_bound", "info", "Not input-bound: " + text, timings)


def layer_outputs_model(model):
    """A model returning every layer's output of a functional `model`, with their names."""
    layers = [layer for layer in model.layers
              if not isinstance(layer, keras.layers.InputLayer)]
    outputs = [layer.output for layer in layers]
    return keras.Model(model.inputs, outputs), [layer.name for layer in layers]


def nonfinite_layer(probe, names, inputs):
    """(first layer whose output holds NaN or inf, largest |output| per layer) on `inputs`."""
    largest = {}
    first = None
    for name, output in zip(names, probe(inputs, training=False)):
        values = keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))
        finite = np.isfinite(values)
        largest[name] = float(np.abs(values[finite]).max()) if finite.any() else None
        if first is None and not finite.all():
            first = name
    return first, largest


def replay_to_nonfinite(model, batches, max_steps):
    """Trains `model` batch by batch from its current weights, checking every layer's
    output before each step; stops at the first batch on which one is not finite.

    Returns:
        {"reproduced": bool, "batch": 1-based batch, "layer": first non-finite layer,
        "largest_output": {layer: max |output|} on that batch (or the last one checked)}.
    """
    probe, names = layer_outputs_model(model)
    iterator = batch_iterator(batches)
    largest = {}
    for step in range(max_steps):
        x, y = next(iterator)[:2]
        layer, largest = nonfinite_layer(probe, names, x)
        if layer is not None:
            return {"reproduced": True, "batch": step + 1, "layer": layer,
                    "largest_output": _top(largest)}
        model.train_on_batch(x, y)
    return {"reproduced": False, "batch": None, "layer": None,
            "largest_output": _top(largest)}


def _top(largest, count=5):
    known = [(k, v) for k, v in largest.items() if v is not None]
    return {k: float(f"{v:.4g}") for k, v in sorted(known, key=lambda kv: -kv[1])[:count]}
