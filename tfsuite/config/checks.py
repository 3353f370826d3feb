"""Value ranges and cross-field rules of the core sections; `require` is the one way a
check fails (the standard what / expected / received message)."""

import difflib
import os
import re

from tfsuite.config.parsing import shown
from tfsuite.config.sections import (APPLICATION_MODELS, COMPRESS_METHODS, EXPORT_FORMATS,
                                     MONITORS, NAME)
from tfsuite.errors import user_error


def require(condition, key, expected, value, fix=None):
    """Raises the standard `UserError` for config key `key` unless `condition` holds."""
    if not condition:
        raise user_error(f"Invalid value for `{key}`", expected, f"{key}={shown(value)}", fix)


def _validate_data(data):
    aug = data.augment
    require(len(data.image_size) == 2 and all(s >= 8 for s in data.image_size),
             "data.image_size", "[height, width], each >= 8", list(data.image_size))
    require(max(data.image_size) <= 8192, "data.image_size", "[height, width], each <= 8192 "
            "(one 8192x8192 RGB image is 800 MB as float32, a batch of them more than any "
            "device holds)", list(data.image_size))
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
    require(data.workers is None or data.workers >= 0, "data.workers",
            "null (one per core) or a number of processes >= 0", data.workers)
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
    if model.name in APPLICATION_MODELS:
        require(min(data.image_size) >= 32, "data.image_size", "[height, width], each >= 32 "
                 f"for {model.name}", list(data.image_size))
    if check_files and model.weights not in (None, "imagenet"):
        require(os.path.isfile(model.weights), "model.weights",
                 "null, 'imagenet' or an existing weights file", model.weights)


def _validate_train(train):
    require(train.epochs >= 1, "train.epochs", "an int >= 1", train.epochs)
    require(train.epochs <= 100_000, "train.epochs", "at most 100000 (every epoch writes a "
            "checkpoint: for more, put more data in an epoch)", train.epochs)
    require(train.batch_size >= 1, "train.batch_size", "an int >= 1", train.batch_size)
    for key in ("learning_rate", "fine_tune_learning_rate", "step_gamma"):
        value = getattr(train, key)
        require(0 < value < float("inf"), f"train.{key}", "a finite value > 0", value)
    for key in ("weight_decay", "momentum", "warmup_epochs", "early_stopping_patience",
                "fine_tune_epochs", "log_every_steps"):
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
    require(export.name is None or bool(NAME.fullmatch(export.name)), "export.name",
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


def validate_core(config, check_files):
    """The core sections' checks (the task's choices and section are checked by the caller)."""
    require(bool(NAME.fullmatch(config.name)), "name", "letters, digits, '_', '-' or '.' "
            "(it names the run folder)", config.name)
    _validate_data(config.data)
    _validate_model(config.model, config.data, check_files)
    _validate_train(config.train)
    _validate_compress(config.compress)
    _validate_export(config.export)
    _validate_runtime(config.runtime)
