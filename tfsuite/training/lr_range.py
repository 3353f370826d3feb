"""The learning-rate range test (Smith, 2015; fastai's `lr_find`): train for about a
hundred steps while the rate rises exponentially, smooth the losses, and suggest the rate
where the loss falls fastest."""

import math

import keras
import numpy as np

SMOOTHING = 0.98  # exponential moving average of the step losses, bias-corrected
STOP_FACTOR = 4.0  # stop once the smoothed loss is this many times its minimum


def range_rates(start, end, steps):
    """`steps` rates from `start` to `end`, evenly spaced on a log scale."""
    if not 0 < start < end:
        raise ValueError(f"the range needs 0 < start < end. Received: start={start}, "
                         f"end={end}")
    return np.geomspace(start, end, steps)


def smooth(losses, beta=SMOOTHING):
    """The bias-corrected exponential moving average of `losses`."""
    average, smoothed = 0.0, []
    for step, loss in enumerate(losses, 1):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** step))
    return np.asarray(smoothed)


def run_range_test(model, batches, rates, on_step=None):
    """Trains a compiled `model` one batch per rate; returns the step losses, cut where the
    loss diverges (non-finite, or STOP_FACTOR times the smoothed minimum).

    Args:
        batches: an iterator of (inputs, labels[, sample weights]) batches, never ending.
        on_step: called with (step, rate, loss) after each step (progress).
    """
    losses = []
    for step, rate in enumerate(rates):
        model.optimizer.learning_rate = float(rate)
        batch = next(batches)
        logs = model.train_on_batch(*batch[:2], sample_weight=batch[2] if len(batch) > 2
                                    else None, return_dict=True)
        loss = float(keras.ops.convert_to_numpy(logs["loss"]))
        if on_step:
            on_step(step, rate, loss)
        if not math.isfinite(loss):
            break
        losses.append(loss)
        smoothed = smooth(losses)
        if step > 10 and smoothed[-1] > STOP_FACTOR * smoothed.min():
            break
    return losses


def suggest(rates, losses):
    """The suggested rate: where the smoothed loss falls fastest against log(rate), before
    its minimum. Returns (rate, index, smoothed losses) or (None, None, smoothed) when the
    loss never fell."""
    smoothed = smooth(losses)
    if len(smoothed) < 5:
        return None, None, smoothed
    lowest = int(np.argmin(smoothed))
    if lowest < 3:
        return None, None, smoothed
    # Skip the first steps: the average there rests on few losses.
    skip = max(1, len(smoothed) // 10)
    slopes = np.gradient(smoothed[:lowest + 1], np.log(rates[:lowest + 1]))
    index = skip + int(np.argmin(slopes[skip:])) if lowest + 1 > skip else int(np.argmin(slopes))
    return float(rates[index]), index, smoothed
