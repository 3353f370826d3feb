"""`lr-find EXPERIMENT`: the learning-rate range test on the experiment's real pipeline and
model, its plot, and `--apply FILE` to train with the suggestion (`train --config FILE`)."""

import os

import numpy as np

from tfsuite.config.parsing import read_yaml_file
from tfsuite.diagnosis.probe import batch_iterator
from tfsuite.errors import user_error
from tfsuite.io import display_path, write_json, write_text
from tfsuite.plots import plot_lr_find
from tfsuite.task import Task, get_task
from tfsuite.training.lr_range import range_rates, run_range_test, suggest

RESULT = "lr_find.json"
PLOT = "lr_find.png"


def lr_find(config, steps=100, start=1e-7, end=10.0, out_dir=None, quiet=False):
    """Runs the range test for `config`; writes OUT_DIR/lr_find.json and lr_find.png.

    Args:
        steps: training steps, one rate each. Defaults to `100`.
        start: the first rate. Defaults to `1e-7`.
        end: the last rate (the test stops earlier once the loss diverges).
            Defaults to `10.0`.
        out_dir: where to write; defaults to the first free `runs/NAME-lr-find[-K]`.

    Returns:
        The result dict (as in lr_find.json): `suggestion`, `rates`, `losses`, ...
    """
    import dataclasses

    from tfsuite.progress import ProgressBar
    from tfsuite.training.trainer import Trainer, build_task_model

    task = get_task(config)
    if type(task).fit is not Task.fit:
        raise user_error(f"lr-find trains {task.label} models step by step on batches",
                         "an experiment trained by the shared trainer (image "
                         "classification, translation, recommendation)",
                         f"{config.name} (task={config.task})", "Its own rate keys are in "
                         f"`python -m tfsuite.run config {config.name}`.")
    if steps < 10:
        raise user_error("Too few lr-find steps", "at least 10", f"--steps {steps}")
    rates = range_rates(start, end, steps)
    out_dir = _out_dir(out_dir, config.name)
    # A constant schedule: the range test sets the rate itself, step by step.
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, schedule="constant", ema=False, gradient_accumulation_steps=None))
    runtime = task.setup_runtime()
    data = task.prepare(runtime, out_dir, False)
    try:
        model = build_task_model(runtime, task, data)
        Trainer(config, out_dir, runtime, quiet=True).compile(task, model, data)
        bar = None if quiet else ProgressBar(len(rates), unit="step", label="lr-find")
        with runtime.scope():
            losses = run_range_test(model, batch_iterator(data.train), rates,
                                    on_step=bar and (lambda step, rate, loss: bar.update(
                                        step + 1, f"lr {rate:.2e} loss {loss:.4g}")))
        if bar:
            bar.close()
    finally:
        if hasattr(data, "close"):
            data.close()
    rate, index, smoothed = suggest(rates, losses)
    tried = rates[:len(losses)]
    result = {"experiment": config.name, "task": config.task, "steps": len(losses),
              "start": start, "end": end, "suggestion": rate,
              "suggestion_loss": None if index is None else float(smoothed[index]),
              "lowest_loss_rate": float(tried[int(np.argmin(smoothed))]) if len(smoothed)
              else None, "configured_rate": config.train.learning_rate,
              "rates": [float(r) for r in tried], "losses": losses,
              "smoothed_losses": [float(v) for v in smoothed],
              "json": os.path.join(out_dir, RESULT), "plot": os.path.join(out_dir, PLOT)}
    os.makedirs(out_dir, exist_ok=True)
    plot_lr_find(tried, losses, smoothed, rate, result["plot"],
                 title=f"lr-find {config.name}: {len(losses)} steps",
                 configured=config.train.learning_rate)
    write_json(result["json"], result)
    return result


def _out_dir(out_dir, name):
    if out_dir is not None:
        if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
            raise user_error("The lr-find output folder is not empty", "a new or empty "
                             "folder", f"--out {out_dir!r}", "Choose another --out; nothing "
                             "was changed.")
        return out_dir
    base = os.path.join("runs", f"{name}-lr-find")
    candidate, number = base, 1
    while os.path.exists(candidate):
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def read_apply_target(path):
    """The YAML mapping `--apply` adds to ({} for a new file): checked before the test
    runs, so a file it cannot take fails at once, unchanged."""
    if not os.path.exists(path):
        return {}
    content = read_yaml_file(path)
    if content is None:
        return {}
    if not isinstance(content, dict) or not isinstance(content.get("train", {}), dict):
        raise user_error("--apply needs a YAML mapping to add train.learning_rate to",
                         "a config file of keys (e.g. `train: {epochs: 5}`) or a new file",
                         f"--apply {path!r}", "Name a new file; nothing was changed.")
    return content


def apply_suggestion(path, content, rate):
    """Writes `content` (from `read_apply_target`) with `train.learning_rate: RATE` to
    `path`, for `train EXPERIMENT --config PATH`; its other keys are kept."""
    import yaml

    content.setdefault("train", {})["learning_rate"] = float(f"{rate:.3g}")
    write_text(path, yaml.safe_dump(content, sort_keys=False))
    return path


def format_result(result, applied=None):
    """What `lr-find` prints."""
    lines = [f"lr-find {result['experiment']}: {result['steps']} steps, rates "
             f"{result['start']:.0e} to {result['rates'][-1]:.2e}"]
    if result["suggestion"] is None:
        lines.append("  no suggestion: the loss never fell. Check the data and the model "
                     "(`diagnose` a short run), or widen the range with --start/--end.")
    else:
        lines.append(f"  suggested learning rate: {result['suggestion']:.3g} (steepest "
                     f"descent of the smoothed loss; lowest loss at "
                     f"{result['lowest_loss_rate']:.3g}; configured: "
                     f"{result['configured_rate']:.3g})")
        lines.append(f"  train with it: python -m tfsuite.run train {result['experiment']} "
                     f"--set train.learning_rate={result['suggestion']:.3g}")
    if applied:
        lines.append(f"  written to {display_path(applied)}: python -m tfsuite.run train "
                     f"{result['experiment']} --config {display_path(applied)}")
    lines.append(f"  plot: {display_path(result['plot'])}")
    lines.append(f"  result: {display_path(result['json'])}")
    return "\n".join(lines)
