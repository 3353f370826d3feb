"""The export stage: a finished run becomes verified deployment artifacts.

`export_run` loads RUN_DIR/model.keras, rebuilds it in float32, writes each
requested format into a new version OUT/NAME/VERSION/, runs every artifact in
its own runtime on real inputs (test-split images, or observations from the
policy's own episodes), and publishes the version only when all of them match
the Keras model. RUN_DIR/export.json records the outcome. The task says what
the inputs are and what the signature's outputs are called.
"""

import dataclasses
import os
import time

import numpy as np

from tfsuite.errors import VerificationError, disk_full_as_user_error, user_error
from tfsuite.export import layout, verify
from tfsuite.export.formats import FORMATS, QUANTIZED_LITERT, ExportContext, compressed_litert
from tfsuite.export.saved_model import input_name
from tfsuite.io import display_path, read_json, write_json
from tfsuite.packages import has_tensorflow, is_installed
from tfsuite.progress import ProgressBar
from tfsuite.run_dir import CONFIG, EXPORT_REPORT, MODEL, holding, space_needed

def parse_formats(text):
    """`--format` text to format names: case-insensitive, with the common other names."""
    aliases = {alias: f.name for f in FORMATS.values() for alias in f.aliases}
    names = [aliases.get(f.strip().lower(), f.strip().lower())
             for f in text.split(",") if f.strip()]
    if not names:
        raise user_error("--format is empty", "comma-separated formats, e.g. --format "
                         "saved_model,onnx (or leave it out for all)", f"--format {text!r}")
    return names


def export_config_for(run_dir, overrides=(), formats=None, name=None, out=None, opset=None):
    """The `ExportConfig` of an `export` command: the run's, then `--set`, then the flags.

    Flag values are taken literally (not as YAML: a path may hold '#' or ': ').
    Without `--format` (or `--set export.formats=...`), every format this
    machine can produce: the run's own `export.formats` is for the stage
    chained after training.
    """
    from tfsuite.config import read_run_config, validate, with_overrides

    refuse_export_version(run_dir)
    config = with_overrides(read_run_config(run_dir), overrides, section="export")
    export = config.export
    if formats is not None:
        chosen = parse_formats(formats)
    elif any(o.startswith("export.formats=") for o in overrides):
        chosen = export.formats
    else:
        chosen = ["all"]
    export = dataclasses.replace(
        export, formats=chosen, name=export.name if name is None else name,
        out=export.out if out is None else out,
        onnx_opset=export.onnx_opset if opset is None else opset)
    return validate(dataclasses.replace(config, export=export), check_files=False).export


def refuse_export_version(path):
    """An export version passed where a run directory is expected: say where its run is."""
    info = os.path.join(path, EXPORT_REPORT)
    if os.path.isfile(info) and not os.path.isfile(os.path.join(path, CONFIG)):
        raise user_error("tfsuite takes a run directory, not an export version",
                         "a folder made by `train` (holding config.yaml)", f"run_dir={path!r}",
                         f"This version was exported from {read_json(info).get('run_dir')}; "
                         "pass that folder.")


def missing_modules(name):
    return [m for m in FORMATS[name].needs if not is_installed(m)]


def available_formats():
    """Formats this machine can produce and verify."""
    return [f.name for f in FORMATS.values() if not missing_modules(f.name)
            and (f.unavailable is None or f.unavailable() is None)]


def resolve_formats(requested):
    """The formats to export, in registration order; 'all' means all this machine can
    produce.

    A format that cannot be built here but whose modules are installed (TensorRT
    without a GPU) stays in the list: the stage then prints why and the command
    that builds it elsewhere. Each format brings the ones it is converted from.
    The SavedModel is always included where TensorFlow is installed.
    """
    if not requested or "all" in requested:
        wanted = {f.name for f in FORMATS.values() if not missing_modules(f.name)}
    else:
        wanted = set(requested)
        other = sorted(wanted - set(FORMATS))
        if other:  # another task's own format (e.g. keras_hub_preset for language models)
            raise user_error("This model does not export in that format",
                             f"formats from {['all', *FORMATS]}", f"format={other}",
                             "Pick formats this task writes (see `export --help`).")
    for name in wanted:
        if missing_modules(name) and FORMATS[name].unavailable is None:
            raise user_error(f"The {name} export needs {', '.join(missing_modules(name))}",
                             "the packages installed", f"format={name!r}",
                             FORMATS[name].install + ".")
    pending = list(wanted)
    while pending:
        for source in FORMATS[pending.pop()].built_from:
            if source not in wanted and not missing_modules(source):
                wanted.add(source)
                pending.append(source)
    if not missing_modules("saved_model"):
        # OUT/NAME/VERSION is TF Serving's layout: every version there must be servable.
        wanted.add("saved_model")
    return [f for f in FORMATS if f in wanted]


@holding
def export_run(run_dir, export_config, task, quiet=False):
    """Exports a run's model in every format of `export_config.formats`; returns the report.

    Args:
        run_dir: a finished run.
        export_config: its `ExportConfig` (see `export_config_for`).
        task: the run's task (`tfsuite.task.get_task`): it brings the inputs the
            artifacts are checked on (`export_spec`), or its own serving module
            (`serving_formats`, `serving_export`).
        quiet: no progress lines.

    Formats that need TensorFlow are written by a TensorFlow-backend subprocess
    when this process runs Keras on another backend (the `.keras` file loads on
    any backend).
    """
    with disk_full_as_user_error(export_config.out, lambda: space_needed(run_dir, times=6)):
        return _export_run(run_dir, export_config, task, quiet)


def _export_run(run_dir, export_config, task, quiet):
    own = task.serving_formats(export_config.formats)
    formats = own if own is not None else resolve_formats(export_config.formats)
    import keras

    # A task's own format (not in FORMATS, e.g. keras_hub_preset) is written on any backend.
    if (keras.backend.backend() != "tensorflow"
            and any(FORMATS[f].needs for f in formats if f in FORMATS) and has_tensorflow()):
        return export_in_tensorflow_process(run_dir, export_config, formats, quiet)
    if own is not None:
        serving = task.serving_export(run_dir, export_config)
    else:
        serving = KerasExport(run_dir, export_config, task)
        if "litert" in formats and compressed_litert(run_dir):
            formats = [*formats, QUANTIZED_LITERT.name]  # compress --method quantize made one
    return export_version(run_dir, task.config, export_config, formats, serving.write, quiet)


def export_version(run_dir, config, export_config, formats, write, quiet=False):
    """The one export flow: a new version OUT/NAME/VERSION is staged, written and checked
    by `write(staging, final, formats, quiet)` (which returns the report's task-specific
    entries and None, or a failure: a message, or (message, how to fix)), and published
    only when everything passed. Returns the report (also OUT/NAME/VERSION/export.json and
    RUN_DIR/export.json).
    """
    name = export_config.name or config.name
    folder = layout.model_dir(export_config.out, name)
    version = layout.next_version(folder)
    staging, created = layout.start_version(folder, version)
    final = os.path.join(folder, str(version))
    _say(quiet, f"tfsuite: exporting {display_path(run_dir)} as {name} version {version} "
                f"({', '.join(formats)})")
    try:
        entries, failure = write(staging, final, formats, quiet)
        serving = None
        if os.path.isfile(os.path.join(staging, "request.json")):
            serving = serving_record(name, folder, final)
        report = {"run_dir": os.path.abspath(run_dir), "experiment": config.name,
                  "name": name, "version": version, "path": final, "task": config.task,
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entries,
                  "serving": serving}
        write_json(os.path.join(staging, EXPORT_REPORT), report)
    except BaseException:
        layout.discard(staging, created)
        raise
    if failure:
        message, fix = failure if isinstance(failure, tuple) else (failure, None)
        rejected = layout.reject(staging, folder, version)
        raise VerificationError(f"{message} The version was not published; its files are "
                                f"kept in {rejected} for inspection." + (f" {fix}" if fix
                                                                         else ""))
    layout.publish(staging, folder, version)
    if report["serving"]:
        write_models_config(report["serving"], name)
    write_run_report(run_dir, report)
    return report


class KerasExport:
    """A Keras model exported in the generic formats (SavedModel, ONNX, LiteRT, TensorRT,
    .keras), each checked against the float32 Keras model on the task's inputs."""

    def __init__(self, run_dir, export_config, task):
        from tfsuite.export.model import check_exportable, float32_copy

        self.run_dir, self.export_config = run_dir, export_config
        self.model = task.load_model(run_dir)
        check_exportable(self.model, os.path.join(run_dir, MODEL))
        self.model32, self.was_mixed = float32_copy(self.model)
        self.spec = task.export_spec(run_dir, self.model, export_config.verify_samples)
        self.reference = _reference(self.model, self.model32, self.was_mixed,
                                    self.spec.inputs, export_config, run_dir, self.spec.source)

    def write(self, staging, final, formats, quiet):
        spec, model = self.spec, self.model32
        context = ExportContext(model, self.export_config, staging, final, spec.inputs,
                                input_name(model), run_dir=self.run_dir, outputs=spec.outputs)
        results, skipped = _export_formats(context, formats, self.reference["probabilities"],
                                           quiet)
        if "saved_model" in results:
            from tfsuite.export.saved_model import write_rest_request

            write_rest_request(os.path.join(staging, "request.json"), spec.inputs[:2],
                               context.input_name)
        scores, argmax = spec.outputs
        entries = {
            "input": {"name": context.input_name, "shape": [None, *model.input_shape[1:]],
                      "dtype": "float32", **spec.input},
            "outputs": {scores: [None, model.output_shape[-1]], argmax: [None]},
            **spec.labels,
            "reference": {k: v for k, v in self.reference.items() if k != "probabilities"},
            "tolerance": {"atol": self.export_config.atol},
            "formats": results, "skipped": skipped}
        failed = [f for f, r in results.items() if not r["verified"]]
        return entries, (_mismatch_message(failed, results, self.export_config)
                         if failed else None)


def _say(quiet, text):
    if not quiet:
        print(text, flush=True)


# ---------------------------------------------------------------- reference


def _reference(model, model32, was_mixed, images, export_config, run_dir, source):
    """The float32 Keras model's outputs on the verification images, and its latency."""
    from tfsuite.export.model import predict_in_batches

    batch = min(export_config.batch_size, len(images))  # the batch latency is timed on
    probabilities = predict_in_batches(model32, images, batch)
    broken = int((~np.isfinite(probabilities).all(axis=1)).sum())
    if broken:
        raise user_error("The model's own outputs are not finite, so there is nothing sound to "
                         "export", "finite outputs", f"NaN or infinity on {broken} of "
                         f"{len(images)} inputs ({source}) from {run_dir}/model.keras",
                         "The training diverged or the weights are damaged: check summary.json "
                         "and training_curves.png, and retrain (e.g. a lower "
                         "train.learning_rate).")
    reference = {"probabilities": probabilities,
                 "model": os.path.abspath(os.path.join(run_dir, MODEL)),
                 "rebuilt_in_float32": was_mixed, "inputs": source,
                 "num_samples": len(images), "batch_size": batch,
                 "latency_ms": round(verify.latency_ms(model32.predict_on_batch,
                                                       images[:batch]), 3)}
    if was_mixed:
        mixed = predict_in_batches(model, images, batch)
        reference["max_abs_diff_vs_mixed_precision"] = float(np.abs(mixed - probabilities).max())
    return reference


# ---------------------------------------------------------------- formats


def _export_formats(context, formats, reference, quiet):
    """Writes and checks each format; returns ({format: result}, {format: why skipped})."""
    results, skipped = {}, {}
    bar = ProgressBar(len(formats), "Exporting", "formats", enabled=not quiet, interval=0)
    for done, name in enumerate(formats):
        started = time.perf_counter()
        bar.update(done, f"writing and checking {name}")
        fmt = QUANTIZED_LITERT if name == QUANTIZED_LITERT.name else FORMATS[name]
        outcome = fmt.write(context)
        if "skipped" in outcome:  # the final report prints why, and the trtexec command
            skipped[name] = outcome["skipped"]
            bar.close()  # for the format's line
            _say(quiet, f"  {name:<16} skipped (see below)")
            continue
        runner = outcome.pop("runner")
        expected = outcome.pop("reference", reference)  # a quantized file: its own source
        check = verify.compare(runner, context.images, expected, context.export.batch_size)
        check["latency_ms"] = round(verify.latency_ms(
            runner, context.images[:context.export.batch_size]), 3)
        check["verified"] = verify.passes(check, context.export.atol,
                                          outcome.get("precision", "fp32"))
        path = outcome.pop("path")
        bar.close()
        results[name] = {"path": path.replace(context.staging, context.final),
                         "size_bytes": outcome.pop("size_bytes", None)
                         or layout.folder_size(path), **check, **outcome,
                         "export_seconds": round(time.perf_counter() - started, 2)}
        _say(quiet, f"  {name:<16} written and checked in {results[name]['export_seconds']:.1f}s"
                    + ("" if check["verified"] else
                       f"  MISMATCH: max |diff| {check['max_abs_diff']:.2e}"))
    return results, skipped



# ---------------------------------------------------------------- serving files and report


def serving_record(name, folder, final):
    """The report's `serving` entry of a version at `final` (its request.json is there)."""
    from tfsuite.export.saved_model import check_models_config, models_config_text

    return {"rest_request": os.path.join(final, "request.json"),
            "rest_url": f"http://localhost:8501/v1/models/{name}:predict",
            "models_config": os.path.join(folder, "models.config"),
            # Checked with TF Serving's proto before anything is published.
            "models_config_checked": check_models_config(models_config_text(name, folder))}


def write_models_config(serving, name):
    """OUT/NAME/models.config for `tensorflow_model_server --model_config_file`.

    Written once; a file already there (perhaps edited by hand) is kept.
    """
    from tfsuite.export.saved_model import models_config_text

    path = serving["models_config"]
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(models_config_text(name, os.path.dirname(path)))


def write_run_report(run_dir, report):
    """RUN_DIR/export.json: the latest export, with earlier ones listed under `previous`."""
    path = os.path.join(run_dir, EXPORT_REPORT)
    previous = []
    if os.path.isfile(path):
        earlier = read_json(path)
        previous = earlier.get("previous", []) + [
            {k: earlier.get(k) for k in ("name", "version", "path", "created")}]
    write_json(path, {**report, "previous": previous})


def _mismatch_message(failed, results, export_config):
    details = "; ".join(f"{f}: max |diff| {results[f]['max_abs_diff']:.3g}, top-1 agreement "
                        f"{results[f]['top1_agreement']:.2%}" for f in failed)
    return (f"Export verification failed: {details} (tolerance {export_config.atol:g}).",
            "If the difference is acceptable, raise the tolerance with --set "
            "export.atol=VALUE.")


def export_in_tensorflow_process(run_dir, export_config, formats, quiet):
    """Runs `python -m tfsuite.run export` with KERAS_BACKEND=tensorflow; returns its report."""
    from tfsuite.tensorflow_process import overrides, run_tensorflow_process

    run_tensorflow_process(
        ["export", os.path.abspath(run_dir), "--format", ",".join(formats),
         "--out", os.path.abspath(os.path.expanduser(export_config.out)),
         *(["--name", export_config.name] if export_config.name else []),
         *overrides("export", export_config, skip=("formats", "out", "name"))],
        "export", quiet)
    return read_json(os.path.join(run_dir, EXPORT_REPORT))
