"""The task seam: what every task (image classification, translation, DQN, ...) brings.

A task is a package that subclasses `Task` and registers it with
`register_task`; the composition root, `tfsuite.tasks`, imports the task
packages. The layers below the tasks (config, data, models, training,
compression, export and the run skeleton in `tfsuite.stages`) name no task:
the skeleton, the Python API and the CLI look the task up with
`get_task(config)` and call its hooks; export and compression are handed the
task object. Modelled on TF Model Garden's `base_task.Task` and `task_factory`.

The hooks a run calls, in order (`tfsuite.stages.train`): `setup_runtime`,
`prepare` (data; nothing written yet), `write_run_files`, `print_start`, `fit`,
`model_to_save`, `write_model_files`, `plot_training`, `evaluate_model`, `summary`. The default
`fit` is the shared `Trainer`, which asks the task for `build_model`, `loss`,
`metrics` and `start_fine_tuning`. A finished run's commands call
`evaluate_run`, `export_spec` or `serving_export`, and `compress`.
"""

import dataclasses
from typing import Any, Optional

from tfsuite.config import register_schema
from tfsuite.errors import user_error
from tfsuite.run_dir import EXTEND

_TASKS = {}


def register_task(cls):
    """Registers a `Task` subclass under `cls.name` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Task) and cls.name):
        raise TypeError(f"register_task takes a Task subclass with a name; got {cls!r}")
    _TASKS[cls.name] = cls
    register_schema(cls.schema)
    return cls


def get_task(config):
    """The task object of `config.task`, bound to `config`."""
    if config.task not in _TASKS:
        import difflib

        close = difflib.get_close_matches(str(config.task), list(_TASKS), n=1)
        raise user_error("Unknown task", f"one of {list(_TASKS)}", f"task={config.task!r}",
                         f"Did you mean '{close[0]}'?" if close else None)
    return _TASKS[config.task](config)


def registered_tasks():
    """{name: Task subclass} of every registered task."""
    return dict(_TASKS)


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What the export stage checks a Keras model's artifacts on, and how they read.

    Attributes:
        inputs: float32 array of the inputs every artifact is verified on.
        source: where they come from, e.g. "test split" (written to export.json).
        outputs: the signature's two output names: the scores, and their argmax.
        input: description of the input for export.json.
        labels: what export.json says the outputs mean (class names, ...).
    """

    inputs: Any
    source: str
    outputs: tuple
    input: dict
    labels: dict


@dataclasses.dataclass
class Fitted:
    """What `Task.fit` returns to the run skeleton.

    Attributes:
        model: the trained Keras model.
        info: summary keys about the fit (epochs completed, best epoch, ...).
        metrics: training-side metrics merged into the summary's `metrics`.
        history: per-epoch (or per-episode) values for the curves.
        earlier_seconds: training time of earlier, interrupted processes.
        throughput: examples per second of the fit, or None.
        trainer: the `Trainer`, for tasks that fit with it.
    """

    model: Any
    info: dict
    metrics: dict
    history: Any = None
    earlier_seconds: float = 0.0
    throughput: Optional[float] = None
    trainer: Any = None


class Task:
    """A task's hooks, with the defaults of a task fitted by the shared `Trainer`.

    Subclasses set `name` and `schema` and implement at least `prepare`,
    `build_model`, `loss`, `evaluate_model` and `format_summary`.

    Attributes:
        name: the value of `task:` in an experiment.
        schema: its `TaskSchema` (data sources, config section, validation).
        unit: what one training example is, in messages ("images", "pairs", ...).
        multi_worker: trains as one of several workers (`launch`, TF_CONFIG).
        compression_methods: the `compress --method` values it supports. The generic
            methods (`tfsuite.compression`) score models on `build_inputs(augment=False)`;
            a task with its own compression overrides `compress`.
        commands: {CLI command: one-line help} of the commands it adds (see
            `add_command`).
    """

    name = None
    schema = None
    unit = "examples"
    multi_worker = False
    compression_methods = ()
    commands = {}
    evaluate_options = {}  # {"--flag": argparse keyword arguments} of `evaluate`
    run_files = ()  # files `write_run_files` writes before the first epoch ends
    label = None  # how messages name the task, e.g. "translation" (default: its name)
    noun = None  # its models, in messages: e.g. "translation models"
    can_probe = True  # `diagnose --probe` times batches of its dataset through `fit`

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.label is None and cls.name:
            cls.label = cls.name.replace("_", " ")

    def __init__(self, config):
        self.config = config

    # ---------------------------------------------------------------- the run

    def setup_runtime(self):
        """The run's `Runtime`; a task that trains in one process refuses a cluster."""
        from tfsuite.training.runtime import setup_runtime

        runtime = setup_runtime(self.config.runtime)
        if runtime.cluster.num_workers > 1 and not self.multi_worker:
            raise user_error(f"{self.label.capitalize()} trains in one process", "a single process "
                             "(no `launch`, no TF_CONFIG cluster)", f"worker "
                             f"{runtime.cluster.index} of {runtime.cluster.num_workers}",
                             "Use the devices of one machine (runtime.strategy=mirrored or "
                             "data_parallel) instead.")
        runtime.check_batch_size(self.config.train.batch_size)
        return runtime

    def prepare(self, runtime, run_dir, resuming):
        """The run's data; bad data fails here, before the run directory is written."""
        raise NotImplementedError

    def write_run_files(self, run_dir, data, resuming):
        """Files of the task's own, written after config.yaml (a tokenizer, an index)."""

    def print_start(self, run_dir, runtime, data, resuming):
        print(f"tfsuite: experiment '{self.config.name}' -> {run_dir}"
              + (" (extending the completed run)" if resuming == EXTEND
                 else " (resuming)" if resuming else ""), flush=True)

    def fit(self, run_dir, runtime, data, quiet):
        """Trains (or resumes) with the shared `Trainer`; returns `Fitted`."""
        from tfsuite.training.trainer import Trainer

        trainer = Trainer(self.config, run_dir, runtime, quiet=quiet)
        model = trainer.fit(self, data)
        return fitted_by(trainer, model)

    def model_to_save(self, model, data):
        """The model written to RUN_DIR/model.keras."""
        return model

    def write_model_files(self, model, run_dir):
        """Files of the task's own written next to model.keras (e.g. LoRA weights alone)."""

    def plot_training(self, fitted, data, path):
        if fitted.history:
            from tfsuite.plots import plot_history

            train = self.config.train
            model_epoch = fitted.info.get("model_epoch")
            plot_history(fitted.history, path,
                         title=f"{self.config.name}: the saved model holds epoch {model_epoch}"
                         if model_epoch else self.config.name,
                         best_epoch=fitted.info.get("best_epoch"), model_epoch=model_epoch,
                         phases=[(train.epochs + 1, "fine-tuning")]
                         if train.fine_tune_epochs else [])

    def evaluate_model(self, model, data, out_dir):
        """Scores the trained model on the test split; writes `out_dir`; returns metrics."""
        raise NotImplementedError

    def summary(self, fitted, data, runtime):
        """The task's own keys of summary.json (data, runtime, throughput, ...)."""
        return {"runtime": runtime.report()}

    def model_name(self):
        """The summary's name of the model."""
        return self.config.model.name

    def model_summary(self, model, data, run_dir):
        """Extra keys of summary.json's `model` entry."""
        return {}

    def format_summary(self, summary):
        """What `train` prints when the run is done."""
        raise NotImplementedError

    def format_worker_summary(self, summary):
        """What a multi-worker job's other workers print (the chief prints the summary)."""
        return (f"Done: worker {summary['worker']} of {summary['num_workers']} (the chief "
                f"writes {summary['run_dir']})")

    # ---------------------------------------------------------------- the trainer's

    def build_inputs(self, augment=True, drop_remainder=False):
        """Data with `train` and `test` splits of (inputs, labels) batches: what the generic
        compression methods fine-tune on and score (for tasks that list them)."""
        raise NotImplementedError

    def build_model(self, data):
        raise NotImplementedError

    def loss(self):
        raise NotImplementedError

    def metrics(self, num_classes):
        return []

    def weighted_metrics(self, num_classes):
        return None

    def layout_map(self, mesh):
        """The `keras.distribution.LayoutMap` of `runtime.strategy=model_parallel` on `mesh`
        (a [batch, model] `DeviceMesh`), or None for tfsuite's own: the last axis of large
        Dense, EinsumDense and Embedding kernels split over `model`."""
        return None

    def start_fine_tuning(self, model):
        """Called before the fine-tuning epochs; by default every weight keeps training."""

    # ---------------------------------------------------------------- diagnosis

    def diagnose(self, run, probe=False):
        """`diagnose RUN_DIR`: ([`Verdict`], names of the checks that ran) for `run`, a
        `tfsuite.diagnosis.record.RunRecord`. By default the checks of a Trainer-fitted run
        (curves; with `probe`, timed steps) and the task's `task_verdicts`."""
        from tfsuite.diagnosis.checks import trainer_checks

        verdicts, checked = trainer_checks(self, run, probe)
        own, own_checked = self.task_verdicts(run)
        return verdicts + own, checked + own_checked

    def diagnosis_curves(self, run):
        """What diagnosis.png draws: (the x axis' unit, [(panel title, {label: values})]).
        By default the loss and accuracy of a Trainer-fitted run, per epoch."""
        h = run.history
        return "epoch", [("loss", {"train": h.get("loss", []),
                                   "validation": h.get("val_loss", [])}),
                         ("accuracy", {"train": h.get("accuracy", []),
                                       "validation": h.get("val_accuracy", [])})]

    def task_verdicts(self, run):
        """The task's own checks of a run: ([`Verdict`], names of the checks)."""
        return [], []

    def chance_loss(self, run):
        """The loss of a model that knows nothing (ln C for C classes), or None."""
        return None

    def diagnosis_fixes(self, name, run):
        """The task's own `--set` lines for verdict `name` (after the generic ones)."""
        return []

    # ---------------------------------------------------------------- finished runs

    def load_model(self, run_dir):
        from tfsuite.models.saving import load_run_model

        return load_run_model(run_dir)

    def evaluate_run(self, run_dir, options):
        """`evaluate RUN_DIR`: re-scores a finished run; returns (metrics, text to print).

        `options` holds the values of the task's `evaluate_options` flags (None
        when not given) and `quiet`.
        """
        raise NotImplementedError

    def predict(self, run_dir, inputs, **options):
        """`Run.predict`: by default the model's outputs for an array of inputs."""
        import keras
        import numpy as np

        model = self.load_model(run_dir)
        return keras.ops.convert_to_numpy(model.predict(np.asarray(inputs, np.float32),
                                                        verbose=0))

    def export_spec(self, run_dir, model, count):
        """The `ExportSpec` of a Keras model exported in the generic formats."""
        raise NotImplementedError

    def serving_formats(self, requested):
        """A task with its own serving module: the formats of `requested` (`export.formats`)
        it writes, checked (cheap: called before any model is loaded). None: the model is
        exported in the generic formats (see `export_spec`)."""
        return None

    def serving_export(self, run_dir, export_config):
        """A task with its own serving module: an object whose `write(staging, final,
        formats, quiet)` writes and checks a version, returning the report's entries and
        a failure message or None (see `tfsuite.export.stage.export_version`)."""
        raise NotImplementedError

    def compress(self, run_dir, config, method, quiet):
        """A task with its own compression returns its report; None: the generic stage."""
        return None

    def check_compression(self, method, run_dir):
        """Refuses a compression method the task does not support."""
        if method in self.compression_methods:
            return
        if self.compression_methods:
            raise user_error(f"A {self.label} model is compressed with "
                             f"{' or '.join(self.compression_methods)}, not {method}", "--method "
                             + " or ".join(self.compression_methods), f"--method {method!r}")
        able = [t.noun or f"{t.label} models" for t in _TASKS.values() if t.compression_methods]
        raise user_error(f"Compression works on {' and '.join(able)}", "a run of a task "
                         "with compression methods", f"{run_dir} (task={self.name})",
                         f"A {self.label} model is not compressed; export it with `python -m "
                         f"tfsuite.run export {run_dir}`.")

    def format_compression(self, report):
        from tfsuite.compression.stage import format_report

        return format_report(report)

    # ---------------------------------------------------------------- the CLI

    @classmethod
    def add_command(cls, name, parser):
        """Adds the arguments of the task's command `name` to its `argparse` parser and
        returns the function that runs it: `run(args, start_backend)`."""
        raise NotImplementedError


def model_line(model, runtime):
    """The start line that names the model and how it runs: "  model: ...; runtime: backend
    B, strategy S (N replica(s)), PRECISION"."""
    report = runtime.report()
    return (f"  model: {model}; runtime: backend {report['backend']}, strategy "
            f"{report['strategy']} ({report['num_replicas']} replica(s)), "
            f"{report['precision']}")


def fitted_by(trainer, model):
    """`Fitted` of a model trained by the shared `Trainer`."""
    info, history = trainer.info(), trainer.history()
    return Fitted(model=model,
                  info={"epochs_completed": info["epochs_completed"],
                        "epochs_planned": trainer.total_epochs,
                        "resumed_from_epoch": info["resumed_from_epoch"],
                        "early_stopped": info["early_stopped"],
                        "best_epoch": info["best_epoch"],
                        # Which weights model.keras holds (train.restore_best).
                        "restore_best": trainer.restore_best,
                        "model_epoch": trainer.model_epoch()},
                  metrics={f"final_{k}": round(v[-1], 6) for k, v in history.items()
                           if v and k != "learning_rate"},
                  history=history, earlier_seconds=info["earlier_wall_seconds"],
                  throughput=info["images_per_second"], trainer=trainer)


def check_full_batches(config, data, runtime):
    """A JAX mesh takes full batches only: a split smaller than one would be empty."""
    batch = config.train.batch_size
    unit = "images" if getattr(data, "unit", "img") == "img" else data.unit
    for split, count in (("training", data.num_train), ("validation", data.num_val)):
        if runtime.needs_full_batches and 0 < count < batch:
            raise user_error(f"The {split} split is smaller than one batch",
                             f"at least train.batch_size={batch} {split} {unit} "
                             f"(runtime.strategy={runtime.strategy_name} takes full batches "
                             "only)", f"{count} {split} {unit}",
                             "Lower train.batch_size (a multiple of the replicas).")


