"""The Python API: what the command line does, as functions and a `Run` object.

    import tfsuite

    run = tfsuite.train("digits", overrides={"train.epochs": 3})
    run.metrics["test_accuracy"], run.history["val_accuracy"]
    run.evaluate()
    run.predict(["data/digits/3/0.png"])
    run.compress("prune")
    run.export(["saved_model", "onnx"])
    run.diagnose()  # what is wrong, with the --set lines that fix it
    tfsuite.lr_find("digits")["suggestion"]
    run = tfsuite.load_run("runs/digits")

Bad input raises `tfsuite.UserError` (a `ValueError`) with the same what /
expected / received / fix as the CLI's messages, worded for Python: an
override is named `overrides={"key": value}`, not `--set key=value`.
"""

import contextlib
import contextvars
import csv
import os
import re

from tfsuite.backends import start_backend, start_tensorflow_backend
from tfsuite.config import ExperimentConfig, load_config, read_run_config, resolve
from tfsuite.errors import UserError
from tfsuite.run_dir import HISTORY, SUMMARY
from tfsuite.task import get_task

__all__ = ["Run", "UserError", "load_config", "load_model", "load_run", "lr_find", "train"]

_SET = re.compile(r"--set ([\w.]+)=(\S+?)(?=[.,;]?(?:\s|$))")


def python_wording(message):
    """A CLI message with `--set key=value` hints rewritten as `overrides={...}` (the value
    read as YAML, as the CLI reads it, and written as Python)."""
    import yaml

    def python(match):
        try:
            value = yaml.safe_load(match.group(2))
        except yaml.YAMLError:
            value = match.group(2)
        return f"overrides={{{match.group(1)!r}: {value!r}}}"

    return _SET.sub(python, message)


# The command line calls this API too; its users get the CLI's own wording.
_CLI_WORDING = contextvars.ContextVar("tfsuite_cli_wording", default=False)


@contextlib.contextmanager
def cli_wording():
    """Within it, errors keep the CLI's wording (`--set key=value`)."""
    token = _CLI_WORDING.set(True)
    try:
        yield
    finally:
        _CLI_WORDING.reset(token)


@contextlib.contextmanager
def _python_errors():
    try:
        yield
    except UserError as e:
        if _CLI_WORDING.get():
            raise
        error = type(e)(python_wording(str(e)))
        raise error.with_traceback(None) from e.__cause__


def train(experiment="digits", overrides=None, run_dir=None, config_file=None, quiet=False):
    """Trains an experiment end to end, as `python -m tfsuite.run train` does.

    Args:
        experiment: a shipped experiment's name (`tfsuite.config.list_experiments`),
            or an `ExperimentConfig`.
        overrides: {"train.epochs": 3, ...} with Python values (a string is read as
            YAML, as on the command line), or ["train.epochs=3", ...].
        run_dir: where the run goes. Defaults to runs/EXPERIMENT (or the next free
            runs/EXPERIMENT-N); an unfinished run there with the same config resumes.
        config_file: a YAML file merged over the experiment before `overrides`.
        quiet: no progress lines.

    Returns:
        The finished `Run`.

    Raises:
        UserError: a bad config, bad data, or a run directory that is not free.
    """
    from tfsuite import stages

    with _python_errors():
        if isinstance(experiment, ExperimentConfig):
            if config_file:
                raise UserError("config_file applies to an experiment name, not to a config "
                                "object. Expected config.replace(...) or overrides. Received: "
                                f"config_file={config_file!r}.")
            config = resolve(experiment, overrides)
        else:
            config = load_config(experiment, config_file, overrides or ())
        start_backend(config)
        result = stages.train(config, run_dir, quiet=quiet)
        run = Run(result["run_dir"])
    run.result = result
    return run


def lr_find(experiment="digits", overrides=None, steps=100, start=1e-7, end=10.0,
            out_dir=None, config_file=None, quiet=False):
    """The learning-rate range test, as `python -m tfsuite.run lr-find` runs it: `steps`
    steps of the real pipeline at rates rising from `start` to `end`; writes lr_find.json
    and lr_find.png to `out_dir` (default: runs/EXPERIMENT-lr-find[-K]).

    Returns:
        The result dict: `suggestion` (None when the loss never fell), `rates`, `losses`,
        `smoothed`, `out_dir`, ...
    """
    from tfsuite.diagnosis.lr_find import lr_find as range_test

    with _python_errors():
        if not 0 < start < end:
            raise UserError("The lr-find range is empty. Expected 0 < start < end. "
                            f"Received: start={start!r}, end={end!r}.")
        config = (resolve(experiment, overrides) if isinstance(experiment, ExperimentConfig)
                  else load_config(experiment, config_file, overrides or ()))
        start_backend(config)
        return range_test(config, steps=steps, start=start, end=end, out_dir=out_dir,
                          quiet=quiet)


def load_run(run_dir):
    """The `Run` in a run directory (finished or not)."""
    with _python_errors():
        return Run(run_dir)


def load_model(path):
    """Loads a model saved by tfsuite (`RUN_DIR/model.keras`, or `RUN_DIR`) with its layers.

    Plain `keras.saving.load_model` works too once tfsuite's custom objects are
    registered; this function registers them and loads.
    """
    if os.path.isdir(path):  # a run directory
        return load_run(path).model
    from tfsuite.models.saving import load_model_file

    with _python_errors():
        return load_model_file(path)


class Run:
    """A run directory: its config, model, history and summary, and the stages that work on
    it (`evaluate`, `predict`, `compress`, `export`, `diagnose`).

    Attributes:
        run_dir: the folder.
        config: the run's `ExperimentConfig` (from its config.yaml).
        task: the run's `tfsuite.task.Task`.
        result: what `train` returned: the summary (or, on a multi-worker job's other
            workers, that worker's record); None for a run loaded with `load_run`.

    Keras starts on the run's backend (`runtime.backend`) when a method first needs it,
    unless it is already loaded; `export` starts it on TensorFlow (without the GPU).
    """

    def __init__(self, run_dir):
        from tfsuite.export.stage import refuse_export_version

        self.run_dir = os.fspath(run_dir)
        refuse_export_version(self.run_dir)
        self.config = read_run_config(self.run_dir)
        self.task = get_task(self.config)
        self.result = None
        self._summary = None
        self._model = None

    def __repr__(self):
        status = self.summary.get("status", "unfinished")
        return f"Run({self.run_dir!r}, experiment={self.config.name!r}, status={status!r})"

    @property
    def summary(self):
        """summary.json as a dict ({} while the run is unfinished)."""
        path = os.path.join(self.run_dir, SUMMARY)
        if os.path.isfile(path):
            from tfsuite.io import read_json

            self._summary = read_json(path)
        return self._summary or {}

    @property
    def metrics(self):
        """The test metrics and the last epoch's training figures."""
        return self.summary.get("metrics", {})

    @property
    def history(self):
        """history.csv as {column: [value per epoch (or episode)]}."""
        path = os.path.join(self.run_dir, HISTORY)
        if not os.path.isfile(path):
            return {}
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return {key: [_number(row[key]) for row in rows] for key in (rows[0] if rows else {})}

    @property
    def model(self):
        """The trained Keras model (RUN_DIR/model.keras), loaded on first use."""
        if self._model is None:
            with _python_errors():
                start_backend(self.config)
                self._model = self.task.load_model(self.run_dir)
        return self._model

    def evaluate(self, **options):
        """Scores the model on the run's test split again (writes evaluation/); returns the
        metrics. Options are the task's `evaluate` flags, e.g. `episodes=50` for a DQN
        run or `sampler="beam"` for a translation run."""
        with _python_errors():
            checked = {"quiet": True}
            for flag, spec in self.task.evaluate_options.items():
                name = flag.lstrip("-").replace("-", "_")
                value = checked[name] = options.pop(name, None)
                kind, choices = spec.get("type", str), spec.get("choices")
                if value is not None and (not isinstance(value, kind) or isinstance(value, bool)
                                          or (choices and value not in choices)):
                    raise UserError(f"Bad evaluate option `{name}`. Expected "
                                    + (f"one of {list(choices)}" if choices else
                                       f"a {kind.__name__}") + f". Received: {name}={value!r}.")
            if options:
                allowed = [f.lstrip("-").replace("-", "_") for f in self.task.evaluate_options]
                raise UserError(f"Unknown evaluate option for this run (task="
                                f"{self.task.name}). Expected {allowed or 'none'}. Received: "
                                f"{sorted(options)}.")
            start_backend(self.config)
            metrics, _ = self.task.evaluate_run(self.run_dir, checked)
        return metrics

    def diagnose(self, probe=False):
        """What is wrong with this run (overfitting, divergence, underfitting, an input
        pipeline that starves the model, its data, the task's own checks), as `diagnose
        RUN_DIR` says it; writes RUN_DIR/diagnosis/ and returns diagnose.json's dict (its
        `verdicts`: name, severity, summary, evidence, fixes). `probe` times a few steps of
        the real pipeline too."""
        from tfsuite.diagnosis.run import diagnose

        with _python_errors():
            start_backend(self.config)
            return diagnose(self.run_dir, probe=probe)

    def predict(self, inputs, **options):
        """The task's predictions for `inputs` (image files: top-k classes; texts:
        translations; user ids: recommendations; arrays: the model's outputs)."""
        with _python_errors():
            start_backend(self.config)
            return self.task.predict(self.run_dir, inputs, **options)

    def compress(self, method, overrides=None, source=None, quiet=False):
        """Compresses the model (prune, quantize, low_rank, distill); returns the report
        (also RUN_DIR/compress/METHOD/report.json). `overrides` sets compress.* keys."""
        from tfsuite.compression.stage import check_method, compress_config_for, compress_run
        from tfsuite.tensorflow_process import is_child

        with _python_errors():
            check_method(method)
            config = compress_config_for(self.run_dir, self.task, method,
                                         _strings(overrides))
            if is_child():  # a JAX/torch run's TensorFlow-only step, in its TensorFlow child
                start_tensorflow_backend()
            else:
                start_backend(config)
            return compress_run(self.run_dir, config, method, get_task(config),
                                source=source, quiet=quiet)

    def export(self, formats=None, overrides=None, name=None, out=None, opset=None,
               quiet=False):
        """Exports a new verified version OUT/NAME/VERSION in `formats` (a list, or a
        comma-separated string; default: all this machine can produce); returns the report
        (also RUN_DIR/export.json). `overrides` sets export.* keys."""
        from tfsuite.export.stage import export_config_for, export_run
        from tfsuite.packages import require_tensorflow

        if isinstance(formats, str):
            formats = [formats]
        with _python_errors():
            require_tensorflow("Export")
            export_config = export_config_for(
                self.run_dir, _strings(overrides),
                formats=None if formats is None else ",".join(formats), name=name, out=out,
                opset=opset)
            start_tensorflow_backend()  # when Keras is not loaded yet: TensorFlow, no GPU
            return export_run(self.run_dir, export_config, self.task, quiet=quiet)


def _strings(overrides):
    """{key: value} overrides as the `key=value` strings the section-limited helpers take."""
    import json

    if not overrides:
        return []
    if isinstance(overrides, dict):
        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                for k, v in overrides.items()]
    return list(overrides)


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text

