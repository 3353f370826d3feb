"""Experiment configuration: nested dataclasses, YAML, strict dotted overrides.

Order of precedence (each step strict, unknown keys are errors that list the
valid ones): dataclass defaults -> experiment YAML -> `--config FILE` ->
`--set a.b=v` -> type checks -> `validate()` -> frozen `ExperimentConfig`.
"""

import copy
import dataclasses
import difflib
import os
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import List, Optional, Union

import yaml

from tfsuite.errors import UserError, user_error

EXPERIMENTS_PACKAGE = "tfsuite.experiments"
RUN_CONFIG = "config.yaml"  # a run's resolved config (see tfsuite.run_dir for the rest)


class _Loader(yaml.SafeLoader):
    """YAML without YAML 1.1's base-60 numbers, which read `2:4` as the int 124."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if not (tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
                    and ":" in regexp.pattern)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# The int and float patterns above hold the base-60 forms as alternatives; keep the others.
for _tag, _pattern in (
        ("tag:yaml.org,2002:int", r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"""
                                  r"""|[-+]?0x[0-9a-fA-F_]+)$"""),
        ("tag:yaml.org,2002:float", r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"""
                                    r"""|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)"""
                                    r"""|\.(?:nan|NaN|NAN))$""")):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern, re.X), list("-+0123456789."))


def _yaml(text):
    return yaml.load(text, Loader=_Loader)
PATH = {"path": True}  # field metadata: a path made absolute, so config.yaml works anywhere
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass(frozen=True)
class AugmentConfig:
    """ImageDataGenerator-style augmentation; keys and units as in Keras 2."""

    rotation_range: float = 0.0  # degrees, uniform in [-r, r]
    width_shift_range: float = 0.0  # fraction of width (< 1) or pixels (>= 1)
    height_shift_range: float = 0.0  # fraction of height (< 1) or pixels (>= 1)
    shear_range: float = 0.0  # shear angle in degrees, counter-clockwise
    zoom_range: Union[float, List[float]] = 0.0  # z -> [1 - z, 1 + z], or [lo, hi]
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: str = "nearest"  # nearest, reflect, wrap, constant
    cval: float = 0.0  # fill value for fill_mode=constant
    interpolation: str = "bilinear"  # bilinear (legacy default) or nearest (faster)
    brightness_range: Optional[List[float]] = None  # [lo, hi] multiplicative factor
    channel_shift_range: float = 0.0  # intensity added to all channels, in [-r, r]
    rescale: Optional[float] = None  # multiply inputs by this (inside the model)
    featurewise_center: bool = False  # subtract the training-set mean (inside the model)
    featurewise_std_normalization: bool = False  # divide by the training-set std


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are split and batched."""

    source: str = "digits"  # digits, folder, npz, tfds, synthetic; translation: numbers,
    # parallel (a TSV, or paired files with translation.target_path)
    path: Optional[str] = field(default=None, metadata=PATH)  # image folder, .npz file, or
    # parallel corpus
    tfds_name: Optional[str] = None  # TFDS dataset name, e.g. "mnist"
    data_dir: Optional[str] = None  # TFDS data_dir (prepared locally)
    image_size: List[int] = field(default_factory=lambda: [32, 32])  # [height, width]
    color_mode: str = "rgb"  # grayscale, rgb, rgba
    validation_split: float = 0.1
    test_split: float = 0.2
    cache: bool = True  # cache decoded images in memory
    on_device: Optional[bool] = None  # JAX: array data kept on the accelerator; null = synthetic
    # data on a GPU/TPU when it fills under a quarter of its memory
    num_classes: int = 10  # synthetic data only
    num_examples: int = 512  # synthetic data only
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build; preprocessing is added to match it."""

    name: str = "cnn"  # mlp, cnn, resnet, resnet50
    weights: Optional[str] = None  # None, "imagenet" or a local .h5/.weights.h5 file
    width: int = 32  # base number of filters (cnn, resnet)
    dropout: float = 0.0
    l2: float = 0.0  # L2 penalty on kernels
    freeze_base: bool = False  # train only the head first (transfer learning)
    fine_tune_layers: int = 0  # after train.epochs, unfreeze the top N base layers


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, regularization and run control."""

    epochs: int = 10
    batch_size: int = 64  # global batch size, split over replicas
    optimizer: str = "adam"  # sgd, momentum, nesterov, adam, adamw, rmsprop, lion
    learning_rate: float = 1e-3
    momentum: float = 0.9  # sgd/momentum/nesterov/rmsprop
    weight_decay: float = 0.0  # decoupled weight decay (adamw, lion, sgd, ...)
    schedule: str = "constant"  # constant, step, cosine, warmup_cosine
    warmup_epochs: float = 0.0  # linear warm-up of warmup_cosine; fractions of an epoch allowed
    step_epochs: int = 10  # step schedule: decay every N epochs
    step_gamma: float = 0.1  # step schedule: multiply the rate by this
    label_smoothing: float = 0.0
    clipnorm: Optional[float] = None  # global gradient-norm clipping
    gradient_accumulation_steps: Optional[int] = None
    ema: bool = False  # keep an exponential moving average of the weights
    ema_momentum: float = 0.99
    early_stopping_patience: int = 0  # 0 disables early stopping
    monitor: str = "val_accuracy"
    fine_tune_epochs: int = 0  # epochs after unfreezing model.fine_tune_layers
    fine_tune_learning_rate: float = 1e-5
    steps_per_execution: int = 1
    jit_compile: Optional[bool] = None  # XLA; null = on for JAX and TF GPUs, off for TF on CPU


@dataclass(frozen=True)
class RuntimeConfig:
    """Backend, devices, distribution, precision and reproducibility."""

    backend: str = "auto"  # auto (KERAS_BACKEND or tensorflow), tensorflow, jax, torch
    strategy: str = "auto"  # auto, none, mirrored, multi_worker (TensorFlow);
    # data_parallel, model_parallel (JAX keras.distribution)
    cpu_devices: int = 0  # > 1 splits the CPU into logical devices (TF) / host devices (JAX)
    mesh_shape: Optional[List[int]] = None  # model_parallel: [batch, model]; null: [1, devices]
    model_parallel_layers: List[str] = field(default_factory=list)  # names or regexes of the
    # layers whose kernels are sharded; empty: every Dense, EinsumDense and Embedding layer
    model_parallel_min_params: int = 4096  # smaller kernels stay replicated
    precision: str = "float32"  # float32, mixed_float16, mixed_bfloat16
    seed: int = 42
    deterministic: bool = False  # op determinism, at some speed cost
    gpu_memory_growth: bool = True


@dataclass(frozen=True)
class ExportConfig:
    """Deployment artifacts written by the export stage, each verified against the model."""

    formats: List[str] = field(default_factory=list)  # exported after training; "all" = every
    # format this machine can produce: saved_model, onnx, litert, tensorrt, keras
    name: Optional[str] = None  # model name under `out` (default: the experiment name)
    out: str = "saved_models"  # TF Serving base folder: OUT/NAME/VERSION/
    onnx_opset: int = 17
    tensorrt_precision: str = "fp16"  # fp32, fp16, int8 (engine built from the ONNX file)
    max_batch_size: int = 64  # largest batch of the TensorRT optimization profile
    verify_samples: int = 256  # test-split images each artifact is checked on
    batch_size: int = 32  # batch size for the latency measurement
    atol: float = 1e-4  # largest |difference| from the Keras model a float32 artifact may show


@dataclass(frozen=True)
class CompressConfig:
    """Model compression: pruning, quantization, low-rank factorization, distillation."""

    methods: List[str] = field(default_factory=list)  # run after training, in order, each on
    # the previous one's model: prune, quantize, low_rank, distill
    fine_tune_epochs: int = 12  # training after pruning / factorizing, and for QAT
    learning_rate: Optional[float] = None  # fine-tuning rate; null: train.learning_rate / 10
    # pruning (schedule semantics as TFMOT's PolynomialDecay / ConstantSparsity)
    pruning_backend: str = "native"  # native (Keras 3, any backend) or tfmot (tf_keras bridge)
    sparsity: float = 0.8  # final fraction of zeros in each pruned kernel
    initial_sparsity: float = 0.0  # polynomial_decay: sparsity at begin_step
    pruning_schedule: str = "polynomial_decay"  # polynomial_decay or constant
    begin_step: int = 0  # fine-tuning step at which pruning starts
    end_step: Optional[int] = None  # step of the final sparsity; null: half of fine-tuning
    pruning_frequency: Optional[int] = None  # steps between mask updates; null: 10 updates
    pruning_power: float = 3.0  # exponent of polynomial_decay
    pruning_structure: str = "unstructured"  # unstructured or 2:4 (2 zeros in 4 inputs)
    pruning_layers: List[str] = field(default_factory=list)  # names or regexes; empty:
    # every Conv2D, DepthwiseConv2D and Dense kernel
    # quantization
    quantization: str = "int8"  # int8 (LiteRT full integer), dynamic_range, float16, qat,
    # keras_int8, keras_float8, keras_int4 (Keras' model.quantize: Dense/Embedding only)
    int8_io: bool = False  # int8: the .tflite takes and returns int8 instead of float32
    representative_samples: int = 256  # training images that calibrate int8 ranges
    # low-rank factorization (truncated SVD); the first of these that is set is used
    rank: Optional[int] = None  # one rank for every factorized layer
    energy: Optional[float] = None  # keep this fraction of each kernel's squared singular values
    param_reduction: float = 0.5  # fewer parameters in each factorized layer by this fraction
    low_rank_layers: List[str] = field(default_factory=list)  # names or regexes; empty: every
    # Conv2D / Dense layer with at least low_rank_min_params weights
    low_rank_min_params: int = 4096
    # distillation: the run's model teaches a smaller student
    student: ModelConfig = field(default_factory=lambda: ModelConfig(name="cnn", width=8))
    temperature: float = 4.0  # softens teacher and student probabilities
    alpha: float = 0.1  # weight of the hard-label loss; 1 - alpha weighs the teacher's
    distill_epochs: Optional[int] = None  # null: train.epochs
    latency_batch_size: int = 32  # images per call when timing the models


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
        _check_types(self)
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
                _merge(raw[key], value)
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


def register_export_format(name):
    """Makes `name` a valid `export.formats` value (each export format registers itself)."""
    if name not in EXPORT_FORMATS:
        EXPORT_FORMATS.append(name)


def unused_image_keys(section):
    """`TaskSchema.unused` of a task that reads no images and sets its model in `section.*`."""
    unused = {key: "an image setting" for key in ("data.image_size", "data.color_mode",
                                                  "data.cache", "data.on_device",
                                                  "data.augment")}
    return {**unused, "model": f"an image model's setting; this task's model is set in "
                               f"`{section}.*`"}


def register_schema(schema):
    """Adds a task's part of the schema (called by the task's package when it registers)."""
    _SCHEMAS[schema.task] = schema
    _config_classes.pop(schema.task, None)


def task_names():
    return tuple(_SCHEMAS)


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
IMAGE_SOURCES = ("digits", "folder", "npz", "tfds", "synthetic")
FILL_MODES = ("nearest", "reflect", "wrap", "constant")
INTERPOLATIONS = ("nearest", "bilinear")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "lion")
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine")
EXPORT_FORMATS = []  # filled by `register_export_format` (tfsuite.export.formats)
TENSORRT_PRECISIONS = ("fp32", "fp16", "int8")
COMPRESS_METHODS = ("prune", "quantize", "low_rank", "distill")
STRATEGIES = ("auto", "none", "mirrored", "multi_worker", "data_parallel", "model_parallel")
QUANTIZATIONS = ("int8", "dynamic_range", "float16", "qat", "keras_int8", "keras_float8",
                 "keras_int4")

CHOICES = {
    "data.color_mode": ("grayscale", "rgb", "rgba"),
    "data.augment.fill_mode": FILL_MODES,
    "data.augment.interpolation": INTERPOLATIONS,
    "model.name": ("mlp", "cnn", "resnet", "resnet50"),
    "train.optimizer": OPTIMIZERS,
    "train.schedule": SCHEDULES,
    "runtime.backend": ("auto", "tensorflow", "jax", "torch"),
    "runtime.strategy": STRATEGIES,
    "runtime.precision": ("float32", "mixed_float16", "mixed_bfloat16"),
    "export.tensorrt_precision": TENSORRT_PRECISIONS,
    "compress.pruning_backend": ("native", "tfmot"),
    "compress.pruning_schedule": ("polynomial_decay", "constant"),
    "compress.pruning_structure": ("unstructured", "2:4"),
    "compress.quantization": QUANTIZATIONS,
    "compress.student.name": ("mlp", "cnn", "resnet"),
}


# ---------------------------------------------------------------- experiments


def list_experiments():
    """Returns {name: description} for the experiments shipped in the package."""
    found = {}
    for entry in sorted(resources.files(EXPERIMENTS_PACKAGE).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            raw = _yaml(entry.read_text()) or {}
            found[entry.name[: -len(".yaml")]] = raw.get("description", "")
    return found


def _experiment_dict(name):
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise user_error("An experiment is a name or a YAML file", "e.g. 'digits' or "
                         "'my_experiment.yaml'", f"experiment={name!r}")
    if name.endswith((".yaml", ".yml")):  # an experiment of one's own
        raw = _read_yaml_file(name)
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
    raw = _yaml(text) or {}
    raw["name"] = name
    return raw


def _read_yaml_file(path):
    if not os.path.isfile(path):
        raise user_error("Config file not found", "an existing YAML file", f"config={path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            raw = _yaml(f) or {}
    except yaml.YAMLError as e:
        raise UserError(f"Config file {path!r} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise user_error("Config file must hold a mapping", "`key: value` pairs",
                         f"config={path!r} (a {type(raw).__name__})")
    return raw


# ---------------------------------------------------------------- merging


def _merge(base, update):
    """Deep-merges `update` into `base` (both dicts), in place."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def parse_override(text):
    """Parses one `a.b.c=value` string into a nested dict; the value is YAML."""
    if "=" not in text:
        raise user_error("Malformed override", "`key=value`, e.g. train.epochs=5",
                         f"--set {text!r}")
    key, _, raw_value = text.partition("=")
    key = key.strip()
    try:
        value = _yaml(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    nested = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


# ---------------------------------------------------------------- typed build


def _valid_keys(cls, prefix=""):
    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
            keys.extend(_valid_keys(f.type, prefix + f.name + "."))
        else:
            keys.append(prefix + f.name)
    return keys


def _check_value(value, hint, key):
    """Checks `value` against a type hint; returns it normalized (ints to floats)."""
    origin = typing.get_origin(hint)
    if origin is Union:
        for option in typing.get_args(hint):
            try:
                return _check_value(value, option, key)
            except UserError:
                pass
        raise _type_error(key, hint, value)
    if hint is type(None):
        if value is None:
            return None
        raise _type_error(key, hint, value)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, hint, value)
        (item_hint,) = typing.get_args(hint)
        return [_check_value(v, item_hint, key) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, hint, value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, hint, value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads "1e-3" (no dot) as a string; users write it that way.
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            return float(value)
        raise _type_error(key, hint, value)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, hint, value)
    raise TypeError(f"Unsupported config type {hint} for {key}")


_HINTS = {}


def _check_types(obj, prefix=""):
    cls = type(obj)
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    for f in dataclasses.fields(obj):
        hint, value, key = _HINTS[cls][f.name], getattr(obj, f.name), prefix + f.name
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise user_error(f"Wrong type for config section `{key}`",
                                 f"a {hint.__name__}", f"{key}={value!r}"[:300],
                                 "Use config.replace(...), which takes a dict of the "
                                 "section's keys.")
            _check_types(value, key + ".")
        else:
            checked = _check_value(value, hint, key)
            if checked is not value and checked != value or type(checked) is not type(value):
                object.__setattr__(obj, f.name, checked)  # frozen: set once, here


def _type_name(hint):
    origin = typing.get_origin(hint)
    if origin is Union:
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if origin in (list, List):
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if hint is type(None):
        return "null"
    return hint.__name__


def _type_error(key, hint, value):
    fix = None
    if "list" in _type_name(hint) and not isinstance(value, list):
        example = f"[{value}]" if isinstance(value, str) else "[32,32]"
        fix = f"Write a list, e.g. --set {key}={example}."
    return user_error(f"Wrong type for config key `{key}`", _type_name(hint),
                      f"{key}={value!r}", fix)


def _build(cls, raw, prefix=""):
    if not isinstance(raw, dict):
        raise user_error(f"Config section `{prefix.rstrip('.') or 'root'}` must be a mapping",
                         "`key: value` pairs", f"{prefix.rstrip('.')}={raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            valid = _valid_keys(cls, prefix)
            close = difflib.get_close_matches(prefix + str(key), valid, n=1)
            hint = f"Did you mean `{close[0]}`? " if close else ""
            raise user_error(f"Unknown config key `{prefix}{key}`",
                             "one of: " + ", ".join(valid), f"{prefix}{key}={raw[key]!r}",
                             hint + "Fix the key name.")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, prefix + name + ".")
        else:
            kwargs[name] = _check_value(value, hint, prefix + name)
    return cls(**kwargs)


# ---------------------------------------------------------------- validation


def require(condition, key, expected, value, fix=None):
    """Raises the standard `UserError` for config key `key` unless `condition` holds."""
    if not condition:
        raise user_error(f"Invalid value for `{key}`", expected, f"{key}={value!r}", fix)


MONITORS = ("val_accuracy", "val_loss", "val_top5_accuracy", "accuracy", "loss",
            "top5_accuracy")


def _validate_data(data):
    aug = data.augment
    require(len(data.image_size) == 2 and all(s >= 8 for s in data.image_size),
             "data.image_size", "[height, width], each >= 8", list(data.image_size))
    require(0 <= data.validation_split < 1, "data.validation_split", "a fraction in [0, 1)",
             data.validation_split)
    require(0 <= data.test_split < 1 and data.validation_split + data.test_split < 1,
             "data.test_split", "a fraction in [0, 1), with validation_split + test_split < 1",
             data.test_split)
    require(data.validation_split + data.test_split > 0, "data.test_split",
             "a validation or test split above 0 (the run is evaluated on it)",
             data.test_split)
    if data.source in ("folder", "npz", "parallel", "ratings"):
        require(bool(data.path), "data.path", f"a path (data.source={data.source})", data.path,
                 "Pass it with --set data.path=/path/to/your/data.")
    if data.source == "tfds":
        require(bool(data.tfds_name), "data.tfds_name", "a TFDS dataset name, e.g. mnist",
                 data.tfds_name)
    require(not data.on_device or data.source in ("digits", "npz", "synthetic"),
             "data.on_device", "null or false for data.source="
             f"{data.source!r} (files are decoded on the host; digits, npz and synthetic "
             "arrays can stay on the accelerator)", data.on_device)
    require(data.num_classes >= 2, "data.num_classes", "an int >= 2", data.num_classes)
    require(data.num_examples >= 10, "data.num_examples", "an int >= 10", data.num_examples)
    for key in ("rotation_range", "width_shift_range", "height_shift_range", "shear_range",
                "channel_shift_range"):
        value = getattr(aug, key)
        require(value >= 0, f"data.augment.{key}", "a value >= 0", value)
    zoom = aug.zoom_range
    require((isinstance(zoom, float) and 0 <= zoom < 1)
             or (isinstance(zoom, list) and len(zoom) == 2 and 0 < zoom[0] <= zoom[1]),
             "data.augment.zoom_range", "a float in [0, 1) or [lo, hi] with 0 < lo <= hi", zoom)
    if aug.brightness_range is not None:
        b = aug.brightness_range
        require(len(b) == 2 and 0 <= b[0] <= b[1], "data.augment.brightness_range",
                 "[lo, hi] with 0 <= lo <= hi", b)
    require(0 <= aug.cval <= 255, "data.augment.cval", "a pixel value in [0, 255]", aug.cval)
    require(aug.rescale is None or aug.rescale != 0, "data.augment.rescale",
             "null or a non-zero factor", aug.rescale)


def _validate_model(model, data, check_files):
    require(model.width >= 1, "model.width", "an int >= 1", model.width)
    require(0 <= model.dropout < 1, "model.dropout", "a rate in [0, 1)", model.dropout)
    require(model.l2 >= 0, "model.l2", "a value >= 0", model.l2)
    require(model.fine_tune_layers >= 0, "model.fine_tune_layers", "an int >= 0",
             model.fine_tune_layers)
    if model.name == "resnet50":
        require(min(data.image_size) >= 32, "data.image_size", "[height, width], each >= 32 "
                 "for ResNet-50", list(data.image_size))
    if check_files and model.weights not in (None, "imagenet"):
        require(os.path.isfile(model.weights), "model.weights",
                 "null, 'imagenet' or an existing weights file", model.weights)


def _validate_train(train):
    require(train.epochs >= 1, "train.epochs", "an int >= 1", train.epochs)
    require(train.batch_size >= 1, "train.batch_size", "an int >= 1", train.batch_size)
    for key in ("learning_rate", "fine_tune_learning_rate", "step_gamma"):
        value = getattr(train, key)
        require(0 < value < float("inf"), f"train.{key}", "a finite value > 0", value)
    for key in ("weight_decay", "momentum", "warmup_epochs", "early_stopping_patience",
                "fine_tune_epochs"):
        value = getattr(train, key)
        require(value >= 0, f"train.{key}", "a value >= 0", value)
    require(0 <= train.label_smoothing < 1, "train.label_smoothing", "a float in [0, 1)",
             train.label_smoothing)
    require(0 <= train.ema_momentum < 1, "train.ema_momentum", "a float in [0, 1)",
             train.ema_momentum)
    require(train.clipnorm is None or train.clipnorm > 0, "train.clipnorm",
             "null or a value > 0", train.clipnorm)
    require(train.gradient_accumulation_steps is None or train.gradient_accumulation_steps >= 2,
             "train.gradient_accumulation_steps", "null or an int >= 2",
             train.gradient_accumulation_steps)
    require(train.step_epochs >= 1, "train.step_epochs", "an int >= 1", train.step_epochs)
    require(train.steps_per_execution >= 1, "train.steps_per_execution", "an int >= 1",
             train.steps_per_execution)
    require(train.monitor in MONITORS, "train.monitor", f"one of {list(MONITORS)}",
             train.monitor)


def _validate_export(export):
    for name in export.formats:
        close = difflib.get_close_matches(str(name), EXPORT_FORMATS, n=1)
        require(name in ("all", *EXPORT_FORMATS), "export.formats",
                 f"a list of formats from {['all', *EXPORT_FORMATS]}", export.formats,
                 f"Did you mean '{close[0]}'?" if close else None)
    require(export.name is None or bool(_NAME.fullmatch(export.name)), "export.name",
             "null or letters, digits, '_', '-' or '.' (it names a folder)", export.name)
    require(bool(export.out), "export.out", "a folder path", export.out)
    require(9 <= export.onnx_opset <= 18, "export.onnx_opset", "an ONNX opset in [9, 18] "
             "(the range tf2onnx converts to)", export.onnx_opset)
    for key in ("max_batch_size", "verify_samples", "batch_size"):
        require(getattr(export, key) >= 1, f"export.{key}", "an int >= 1",
                 getattr(export, key))
    require(export.atol > 0, "export.atol", "a tolerance > 0", export.atol)


def _validate_compress(compress):
    for name in compress.methods:
        close = difflib.get_close_matches(str(name), COMPRESS_METHODS, n=1)
        require(name in COMPRESS_METHODS, "compress.methods",
                 f"a list of methods from {list(COMPRESS_METHODS)}", compress.methods,
                 f"Did you mean '{close[0]}'?" if close else None)
    require(len(set(compress.methods)) == len(compress.methods), "compress.methods",
             "each method at most once", compress.methods)
    require(0 <= compress.sparsity < 1, "compress.sparsity", "a fraction in [0, 1)",
             compress.sparsity, "80% zeros is --set compress.sparsity=0.8.")
    require(0 <= compress.initial_sparsity <= compress.sparsity, "compress.initial_sparsity",
             "a fraction in [0, compress.sparsity]", compress.initial_sparsity)
    require(compress.begin_step >= 0, "compress.begin_step", "an int >= 0",
             compress.begin_step)
    require(compress.end_step is None or compress.end_step > compress.begin_step,
             "compress.end_step", "null or a step > compress.begin_step", compress.end_step)
    require(compress.pruning_frequency is None or compress.pruning_frequency >= 1,
             "compress.pruning_frequency", "null or an int >= 1", compress.pruning_frequency)
    require(compress.pruning_power > 0, "compress.pruning_power", "a value > 0",
             compress.pruning_power)
    for key in ("fine_tune_epochs", "representative_samples", "low_rank_min_params",
                "latency_batch_size"):
        minimum = 0 if key == "fine_tune_epochs" else 1
        require(getattr(compress, key) >= minimum, f"compress.{key}", f"an int >= {minimum}",
                 getattr(compress, key))
    require(compress.learning_rate is None or 0 < compress.learning_rate < float("inf"),
             "compress.learning_rate", "null or a finite value > 0", compress.learning_rate)
    require(compress.rank is None or compress.rank >= 1, "compress.rank", "null or an int >= 1",
             compress.rank)
    require(compress.energy is None or 0 < compress.energy <= 1, "compress.energy",
             "null or a fraction in (0, 1]", compress.energy)
    require(0 < compress.param_reduction < 1, "compress.param_reduction",
             "a fraction in (0, 1)", compress.param_reduction)
    require(compress.temperature > 0, "compress.temperature", "a value > 0",
             compress.temperature)
    require(0 <= compress.alpha <= 1, "compress.alpha", "a weight in [0, 1]", compress.alpha)
    require(compress.distill_epochs is None or compress.distill_epochs >= 1,
             "compress.distill_epochs", "null or an int >= 1", compress.distill_epochs)
    require(compress.student.width >= 1, "compress.student.width", "an int >= 1",
             compress.student.width)
    require(0 <= compress.student.dropout < 1, "compress.student.dropout", "a rate in [0, 1)",
             compress.student.dropout)
    _check_patterns([*compress.pruning_layers, *compress.low_rank_layers])


def _validate_runtime(runtime):
    require(runtime.cpu_devices >= 0, "runtime.cpu_devices", "an int >= 0",
             runtime.cpu_devices)
    require(0 <= runtime.seed < 2 ** 31, "runtime.seed", "an int in [0, 2**31)",
             runtime.seed)
    mesh = runtime.mesh_shape
    require(mesh is None or (len(mesh) == 2 and min(mesh) >= 1), "runtime.mesh_shape",
             "null or [batch, model], each >= 1", mesh)
    require(runtime.model_parallel_min_params >= 0, "runtime.model_parallel_min_params",
             "an int >= 0", runtime.model_parallel_min_params)
    _check_patterns(runtime.model_parallel_layers)


def _check_patterns(patterns):
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            raise user_error("Invalid layer pattern", "a layer name or a regular expression",
                             f"{pattern!r} ({e})") from None


def validate(config, check_files=True):
    """Checks value ranges and cross-field rules; raises `UserError`.

    Args:
        config: an `ExperimentConfig`.
        check_files: also check that files named in the config exist (off when
            reading a finished run, whose weights file may have moved).
    """
    schema = schema_of(config.task)
    flat = _flatten(config.to_dict())
    for key, choices in {**CHOICES, **schema.choices}.items():
        require(flat[key] in choices, key, f"one of {list(choices)}", flat[key])
    require(config.data.source in schema.data_sources, "data.source",
             f"one of {list(schema.data_sources)} for task={config.task}", config.data.source)
    require(bool(_NAME.fullmatch(config.name)), "name", "letters, digits, '_', '-' or '.' "
             "(it names the run folder)", config.name)
    _validate_data(config.data)
    _validate_model(config.model, config.data, check_files)
    _validate_train(config.train)
    _validate_compress(config.compress)
    _validate_export(config.export)
    _validate_runtime(config.runtime)
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


def _flatten(d, prefix=""):
    flat = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


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
        _merge(raw, _read_yaml_file(config_file))
    _apply_overrides(raw, overrides)
    config = validate(_absolute_paths(_build_experiment(raw)))
    _warn_ignored(config)
    return config


# Keys only some data sources and models read: {key: (the values that read it, why)}.
_READ_ONLY_BY = {
    "data.path": ("data.source", ("folder", "npz", "parallel", "ratings"), "the files"),
    "data.tfds_name": ("data.source", ("tfds",), "the TFDS dataset"),
    "data.data_dir": ("data.source", ("tfds",), "the TFDS folder"),
    "data.num_classes": ("data.source", ("synthetic",), "synthetic data's classes"),
    "data.num_examples": ("data.source", ("synthetic",), "synthetic data's size"),
    "model.width": ("model.name", ("cnn", "resnet"), "the width of tfsuite's own CNNs"),
    "model.weights": ("model.name", ("resnet50",), "keras.applications weights"),
}


def ignored_keys(config):
    """[(key, why)] of keys set away from their defaults that this run will not read."""
    flat, default = _flatten(config.to_dict()), _flatten(type(config)().to_dict())
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


def _apply_overrides(raw, overrides):
    """Merges `a.b=value` strings (values read as YAML), or a {"a.b": value} mapping of
    Python values (a string value is read as YAML too, as on the command line)."""
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            if not isinstance(key, str) or not key:
                raise user_error("Malformed override", "a dotted key such as 'train.epochs'",
                                 f"{key!r}")
            if isinstance(value, str):
                _merge(raw, parse_override(f"{key}={value}"))
            else:
                nested = copy.deepcopy(value)  # merging must not change the caller's dicts
                for part in reversed(key.split(".")):
                    nested = {part: nested}
                _merge(raw, nested)
        return raw
    if isinstance(overrides, str):
        raise user_error("Overrides must be a list or a mapping", "e.g. ['train.epochs=3'] "
                         "or {'train.epochs': 3}", f"overrides={overrides!r}")
    for text in overrides:
        _merge(raw, parse_override(text))
    return raw


def _build_experiment(raw, other_sections="error"):
    """The typed config of `raw`'s task: the core keys and that task's section.

    A section of another task is an error, or with `other_sections="drop"` left
    out: run folders written before sections were per task hold all of them.
    """
    if not isinstance(raw, dict):
        raise user_error("A config must be a mapping", "`key: value` pairs", repr(raw)[:200])
    task = raw.get("task", ExperimentConfig.task)
    if not isinstance(task, str):
        raise _type_error("task", str, task)
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
        raise user_error(f"Config key `{where}` belongs to another task", f"keys of "
                         f"task={task} (`python -m tfsuite.run config EXPERIMENT` lists them)",
                         f"{where}={value!r} for task={task}; the `{key}` section is "
                         f"task={owner}'s", f"Remove it, or train an experiment of task {owner}.")
    return _build(cls, raw)


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
    raw = _apply_overrides(config.to_dict(), overrides or ())
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
        _merge(raw, parsed)
    return config_from_dict(raw, check_files=False, other_sections="error")


def write_config(config, path):
    """Writes the resolved config as YAML (the run directory's config.yaml)."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)


def read_run_config(run_dir):
    """Loads `RUN_DIR/config.yaml`, with a clear error when it is not a run directory."""
    path = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise user_error("Not a tfsuite run directory", "a folder holding config.yaml "
                         "(made by `python -m tfsuite.run train`)", f"run_dir={run_dir!r}")
    return config_from_dict(_read_yaml_file(path), check_files=False)
