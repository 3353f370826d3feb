"""Experiment configuration: the core schema, the tasks' sections, and the public API.

Order of precedence (each step strict, unknown keys are errors that list the
valid ones): dataclass defaults -> experiment YAML -> `--config FILE` ->
`--set a.b=v` -> type checks -> `validate()` -> frozen `ExperimentConfig`.

The sections' dataclasses are in `sections`, reading (YAML, overrides, typed
build) in `parsing`, the core sections' checks in `checks`; a task adds its own
section through `register_schema` (`TaskSchema`).
"""

import copy
import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Optional

import yaml

from tfsuite.config.checks import require, validate_core
from tfsuite.config.parsing import (apply_overrides, build, check_types, flatten, merge,
                                    parse_override, read_yaml, read_yaml_file, type_error,
                                    shown, valid_keys)
from tfsuite.config.sections import (APPLICATION_MODELS, BFLOAT16_OPTIMIZERS, CHOICES,
                                     COMPRESS_METHODS, EXPORT_FORMATS,
                                     FILL_MODES, IMAGE_SOURCES, INTERPOLATIONS, MONITORS,
                                     OPTIMIZERS, PATH, PRECISIONS, QUANTIZATIONS, SCHEDULES,
                                     STRATEGIES,
                                     TENSORRT_PRECISIONS, AugmentConfig, CompressConfig,
                                     DataConfig, ExportConfig, ModelConfig, RuntimeConfig,
                                     TrainConfig, register_export_format)
from tfsuite.errors import user_error

__all__ = [
    # the public API
    "load_config", "config_from_dict", "resolve", "with_overrides", "write_config",
    "read_run_config", "list_experiments", "validate", "ignored_keys", "parse_override",
    # the schema
    "ExperimentConfig", "TaskSchema", "register_schema", "config_class", "schema_of",
    "unused_image_keys", "LANGUAGE_MODEL_ONLY", "require", "PATH", "RUN_CONFIG",
    "AugmentConfig", "DataConfig", "ModelConfig", "TrainConfig", "RuntimeConfig",
    "ExportConfig", "CompressConfig", "register_export_format",
    # accepted values
    "APPLICATION_MODELS", "BFLOAT16_OPTIMIZERS", "CHOICES", "COMPRESS_METHODS", "EXPORT_FORMATS", "FILL_MODES",
    "IMAGE_SOURCES",
    "INTERPOLATIONS", "MONITORS", "OPTIMIZERS", "PRECISIONS", "QUANTIZATIONS", "SCHEDULES", "STRATEGIES",
    "TENSORRT_PRECISIONS"]

EXPERIMENTS_PACKAGE = "tfsuite.experiments"
RUN_CONFIG = "config.yaml"  # a run's resolved config (see tfsuite.run_dir for the rest)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: what to train, on what, and how.

    The core schema; a task with settings of its own (e.g. `rl`, `translation`)
    adds its section through `register_schema`, and `config_class(task)` is this
    class with that one section (see `TaskSchema`).
    """

    name: str = "digits"
    description: str = ""
    task: str = "image_classification"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self):
        # Types are checked (and ints made floats, tuples lists) on every construction,
        # `dataclasses.replace` included, so a wrong type fails here with the key's name,
        # not later inside Keras.
        check_types(self)
        if self.task in _SCHEMAS and type(self) is not config_class(self.task):
            raise user_error(f"A config of task={self.task} built from the wrong class",
                             f"{config_class(self.task).__name__} (it holds the task's "
                             "section)", f"{type(self).__name__}(task={self.task!r})",
                             "Build configs with tfsuite.load_config(...) or "
                             "config.replace(...).")

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """A new validated config with top-level fields changed; a section may be given as
        a dict of its keys to change, e.g. `config.replace(train={"epochs": 3})`.

        Raises:
            UserError: an unknown key, a wrong type or an invalid value.
        """
        raw = self.to_dict()
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                merge(raw[key], value)
            else:
                raw[key] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) \
                    else value
        return config_from_dict(raw, check_files=False, other_sections="error")


@dataclass(frozen=True)
class TaskSchema:
    """What a task adds to the core schema (`ExperimentConfig`).

    Attributes:
        task: the task's name, the value of `task:` in an experiment.
        data_sources: the `data.source` values the task reads.
        section: the name of the task's own config section (e.g. "rl"), if any.
        section_class: its frozen dataclass.
        choices: accepted values of the section's keys, {"rl.key": (...)}.
        validate: `validate(config, check_files)`, raising `UserError`.
        unused: core keys (or sections, e.g. "model") the task never reads, with why:
            a value set there draws a warning.
    """

    task: str
    data_sources: tuple
    section: Optional[str] = None
    section_class: Optional[type] = None
    choices: dict = field(default_factory=dict)
    validate: Optional[typing.Callable] = None
    unused: dict = field(default_factory=dict)


_SCHEMAS = {}


# `TaskSchema.unused` of the tasks other than language_model: its decoder layers are the
# ones rematerialized, its bfloat16 weights the ones whose optimizer state has a dtype.
LANGUAGE_MODEL_ONLY = {
    "train.remat": "rematerialization is built for the decoders of task language_model",
    "train.optimizer_state": "the optimizer state's dtype applies to bfloat16 weights "
                             "(runtime.precision=bfloat16, task language_model)"}


def unused_image_keys(section):
    """`TaskSchema.unused` of a task that reads no images and sets its model in `section.*`."""
    unused = {key: "an image setting" for key in ("data.image_size", "data.color_mode",
                                                  "data.cache", "data.on_device",
                                                  "data.augment", "data.augment_on",
                                                  "data.workers")}
    return {**unused, "model": f"an image model's setting; this task's model is set in "
                               f"`{section}.*`"}


def register_schema(schema):
    """Adds a task's part of the schema (called by the task's package when it registers)."""
    _SCHEMAS[schema.task] = schema
    _config_classes.pop(schema.task, None)


def schema_of(task):
    if task not in _SCHEMAS:
        close = difflib.get_close_matches(str(task), list(_SCHEMAS), n=1)
        raise user_error("Unknown task", f"one of {list(_SCHEMAS)}", f"task={task!r}",
                         f"Did you mean '{close[0]}'?" if close else None)
    return _SCHEMAS[task]


_config_classes = {}


def config_class(task):
    """`ExperimentConfig` with the task's own section (itself for a task without one)."""
    if task not in _config_classes:
        schema = schema_of(task)
        cls = ExperimentConfig
        if schema.section:
            name = "".join(p.title() for p in task.split("_")) + "ExperimentConfig"
            cls = dataclasses.make_dataclass(
                name, [("task", str, field(default=task)),
                       (schema.section, schema.section_class,
                        field(default_factory=schema.section_class))],
                bases=(ExperimentConfig,), frozen=True)
            cls.__module__, cls.__qualname__ = __name__, name
        _config_classes[task] = cls
    return _config_classes[task]


def __getattr__(name):
    """The task config classes by name (how pickle finds them again in another process)."""
    for task in _SCHEMAS:
        cls = config_class(task)
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The accepted names, defined once; the modules that implement them import these.
# ---------------------------------------------------------------- experiments


def list_experiments():
    """Returns {name: description} for the experiments shipped in the package."""
    found = {}
    for entry in sorted(resources.files(EXPERIMENTS_PACKAGE).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            raw = read_yaml(entry.read_text()) or {}
            found[entry.name[: -len(".yaml")]] = raw.get("description", "")
    return found


def _experiment_dict(name):
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise user_error("An experiment is a name or a YAML file", "e.g. 'digits' or "
                         "'my_experiment.yaml'", f"experiment={name!r}")
    if name.endswith((".yaml", ".yml")):  # an experiment of one's own
        raw = read_yaml_file(name)
        raw.setdefault("name", os.path.basename(name).rsplit(".", 1)[0])
        return raw
    available = list_experiments()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise user_error(
            "Unknown experiment",
            f"one of {sorted(available)}",
            f"experiment={name!r}",
            f"Run `python -m tfsuite.run list` to see them.{hint}",
        )
    text = resources.files(EXPERIMENTS_PACKAGE).joinpath(f"{name}.yaml").read_text()
    raw = read_yaml(text) or {}
    raw["name"] = name
    return raw


def validate(config, check_files=True):
    """Checks value ranges and cross-field rules; raises `UserError`.

    Args:
        config: an `ExperimentConfig`.
        check_files: also check that files named in the config exist (off when
            reading a finished run, whose weights file may have moved).
    """
    schema = schema_of(config.task)
    flat = flatten(config.to_dict())
    for key, choices in {**CHOICES, **schema.choices}.items():
        require(flat[key] in choices, key, f"one of {list(choices)}", flat[key])
    require(config.data.source in schema.data_sources, "data.source",
             f"one of {list(schema.data_sources)} for task={config.task}", config.data.source)
    for key, value in flat.items():  # every int key, the tasks' included
        require(not isinstance(value, int) or isinstance(value, bool) or abs(value) < 2 ** 31,
                key, "an int below 2**31 (TensorFlow and JAX count in 32-bit ints)", value)
    validate_core(config, check_files)
    if schema.validate:
        schema.validate(config, check_files)
    return config


def _absolute_paths(config):
    """Fields marked `PATH` become absolute, so a run's config.yaml works from anywhere."""
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            fixed = _absolute_paths(value)
            if fixed is not value:
                changes[f.name] = fixed
        elif f.metadata.get("path") and value:
            changes[f.name] = os.path.abspath(os.path.expanduser(value))
    return dataclasses.replace(config, **changes) if changes else config


# ---------------------------------------------------------------- public API


def load_config(experiment="digits", config_file=None, overrides=()):
    """Resolves an experiment into a validated, frozen `ExperimentConfig`.

    Args:
        experiment: name of a shipped experiment (see `list_experiments()`), or the
            path of an experiment YAML file of one's own (`name` defaults to its stem).
        config_file: optional YAML file merged over the experiment.
        overrides: `a.b=value` strings (values parsed as YAML), applied last.

    Returns:
        A frozen `ExperimentConfig`.

    Example:
        >>> cfg = load_config("digits", overrides=["train.epochs=2"])
    """
    raw = _experiment_dict(experiment)
    if config_file:
        merge(raw, read_yaml_file(config_file))
    apply_overrides(raw, overrides)
    config = validate(_absolute_paths(_build_experiment(raw)))
    _warn_ignored(config)
    return config


# Keys only some data sources and models read: {key: (the values that read it, why)}.
_READ_ONLY_BY = {
    "data.path": ("data.source", ("folder", "npz", "parallel", "ratings", "text"), "the files"),
    "data.tfds_name": ("data.source", ("tfds",), "the TFDS dataset"),
    "data.data_dir": ("data.source", ("tfds",), "the TFDS folder"),
    "data.num_classes": ("data.source", ("synthetic",), "synthetic data's classes"),
    "data.num_examples": ("data.source", ("synthetic",), "synthetic data's size"),
    "model.width": ("model.name", ("cnn", "resnet"), "the width of tfsuite's own CNNs"),
    "model.weights": ("model.name", APPLICATION_MODELS, "keras.applications weights"),
}


def ignored_keys(config):
    """[(key, why)] of keys set away from their defaults that this run will not read."""
    flat, default = flatten(config.to_dict()), flatten(type(config)().to_dict())
    schema = schema_of(config.task)
    found = []
    for key, value in flat.items():
        if value == default.get(key):
            continue
        unused = next((why for prefix, why in schema.unused.items()
                       if key == prefix or key.startswith(prefix + ".")), None)
        if unused:
            found.append((key, unused))
        elif key in _READ_ONLY_BY:
            switch, readers, what = _READ_ONLY_BY[key]
            if flat[switch] not in readers:
                found.append((key, f"{what}: read only with {switch} in {list(readers)}, and "
                                   f"this run has {switch}={flat[switch]}"))
    return found


def _warn_ignored(config):
    import logging

    for key, why in ignored_keys(config):
        logging.getLogger("tfsuite").warning("`%s` is ignored (%s).", key, why)


def _build_experiment(raw, other_sections="error"):
    """The typed config of `raw`'s task: the core keys and that task's section.

    A section of another task is an error, or with `other_sections="drop"` left
    out: run folders written before sections were per task hold all of them.
    """
    if not isinstance(raw, dict):
        raise user_error("A config must be a mapping", "`key: value` pairs", repr(raw)[:200])
    task = raw.get("task", ExperimentConfig.task)
    if not isinstance(task, str):
        raise type_error("task", str, task)
    cls = config_class(schema_of(task).task)
    own = {f.name for f in dataclasses.fields(cls)}
    for key in list(raw):
        owner = next((s.task for s in _SCHEMAS.values() if s.section == key), None)
        if owner is None or key in own:
            continue
        if other_sections == "drop":
            del raw[key]
            continue
        section = raw[key] if isinstance(raw[key], dict) and raw[key] else {"": raw[key]}
        name, value = next(iter(section.items()))
        where = f"{key}.{name}" if name else key
        # The same setting under this task's keys (rl.learning_rate -> train.learning_rate).
        close = difflib.get_close_matches(str(name), [k.rsplit(".", 1)[-1] for k in
                                                      valid_keys(cls)], n=1, cutoff=0.8)
        hint = next((f"Did you mean `{k}`? " for k in valid_keys(cls)
                     if close and k.rsplit(".", 1)[-1] == close[0]), "")
        raise user_error(f"Config key `{where}` belongs to another task", f"keys of "
                         f"task={task} (`python -m tfsuite.run config EXPERIMENT` lists them)",
                         f"{where}={shown(value)} for task={task}; the `{key}` section "
                         "is "
                         f"task={owner}'s", f"{hint}Remove it, or train an experiment of "
                         f"task {owner}.")
    return build(cls, raw)


def config_from_dict(raw, check_files=True, other_sections="drop"):
    """Builds and validates a config from a plain dict (e.g. a run's config.yaml).

    Sections of other tasks (run folders of older tfsuite versions hold them all)
    are dropped, or with `other_sections="error"` refused.
    """
    if not isinstance(raw, dict):
        raise user_error("A config must be a mapping", "`key: value` pairs", repr(raw)[:200])
    return validate(_build_experiment(copy.deepcopy(raw), other_sections=other_sections),
                    check_files=check_files)


def resolve(config, overrides=()):
    """A config object made ready to train, as `load_config` makes one: overrides applied,
    validated (files included), paths absolute, ignored keys warned about."""
    raw = apply_overrides(config.to_dict(), overrides or ())
    config = validate(_absolute_paths(_build_experiment(raw)))
    _warn_ignored(config)
    return config


def with_overrides(config, overrides, section=None):
    """A new validated config with `a.b=value` overrides applied.

    Args:
        config: an `ExperimentConfig`.
        overrides: `a.b=value` strings.
        section: when given, only keys of this section (e.g. "export") may be set.
    """
    raw = config.to_dict()
    for text in overrides:
        parsed = parse_override(text)
        if section and list(parsed) != [section]:
            raise user_error(f"Only `{section}.*` keys can be set here", f"{section}.KEY=VALUE",
                             f"--set {text!r}")
        merge(raw, parsed)
    return config_from_dict(raw, check_files=False, other_sections="error")


def write_config(config, path):
    """Writes the resolved config as YAML (the run directory's config.yaml), atomically: a
    process killed while writing leaves the old file whole, never an empty one."""
    from tfsuite.io import write_text

    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def read_run_config(run_dir):
    """Loads `RUN_DIR/config.yaml`, with a clear error when it is not a run directory."""
    path = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise user_error("Not a tfsuite run directory", "a folder holding config.yaml "
                         "(made by `python -m tfsuite.run train`)", f"run_dir={run_dir!r}")
    return config_from_dict(read_yaml_file(path), check_files=False)
