"""The compression stage (Keras is imported only once the backend is chosen): a finished run's model, compressed by one method and measured.

`compress_run` loads RUN_DIR/model.keras (or the output of an earlier method),
runs the method, measures the baseline and the compressed deployable file the
same way (test accuracy, weights, non-zero weights, gzip size, CPU latency),
and writes RUN_DIR/compress/<method>/: the model, report.json and
comparison.png. The folder is built aside and swapped in only when everything
succeeded, so a failed run leaves an earlier result (and the run) untouched.
"""

import os
import re
import shutil
import time

from tfsuite.config import COMPRESS_METHODS
from tfsuite.errors import disk_full_as_user_error, user_error
from tfsuite.io import display_path, process_alive, read_json, remove_stale, write_json
from tfsuite.run_dir import COMPRESS_DIR, MODEL, SUMMARY
from tfsuite.run_dir import COMPRESS_REPORT as REPORT
from tfsuite.run_dir import compress_dir as output_dir
from tfsuite.run_dir import holding, space_needed

PLOT = "comparison.png"


def check_method(method, flag="--method"):
    if method not in COMPRESS_METHODS:
        import difflib

        close = difflib.get_close_matches(str(method), COMPRESS_METHODS, n=1)
        raise user_error("Unknown compression method", f"one of {list(COMPRESS_METHODS)}",
                         f"{flag} {method!r}", f"Did you mean '{close[0]}'?" if close
                         else None)


def compress_config_for(run_dir, task, method, overrides=()):
    """The run's config with `compress.*` overrides applied and validated; `method` must
    be one that the run's `task` supports (`Task.check_compression`)."""
    from tfsuite.config import with_overrides

    check_method(method)
    task.check_compression(method, run_dir)
    return with_overrides(task.config, overrides, section="compress")


def source_model_path(run_dir, source=None):
    """RUN_DIR/model.keras, or the `.keras` output of an earlier method (`source`)."""
    if source is None:
        return os.path.join(run_dir, MODEL)
    check_method(source, flag="--from")
    if source == "quantize":
        raise user_error("A quantized model cannot be compressed further", "--from prune, "
                         "low_rank or distill (float models)", "--from 'quantize'",
                         "Quantize last: e.g. --method quantize --from prune.")
    path = os.path.join(output_dir(run_dir, source), "model.keras")
    if not os.path.isfile(path):
        raise user_error(f"--from {source}: the run has no compressed Keras model from "
                         f"'{source}'", f"{display_path(path)} (written by `compress "
                         f"{run_dir} --method {source}`)", f"--from {source!r}",
                         "Run that method first, or leave out --from.")
    return path


def _load(path, run_dir):
    from tfsuite.models.saving import load_model_file, load_run_model

    if path == os.path.join(run_dir, MODEL):
        return load_run_model(run_dir)
    return load_model_file(path, compile=False)


@holding
def compress_run(run_dir, config, method, task, source=None, quiet=False):
    """Compresses a finished run's model with one method; returns the report dict.

    Args:
        run_dir: a run directory with model.keras.
        config: the run's `ExperimentConfig` (see `compress_config_for`).
        method: "prune", "quantize", "low_rank" or "distill".
        task: the run's task; one with a compression of its own does the work
            (`Task.compress`), else the task gives the data the models are scored on.
        source: compress the output of this earlier method instead of the run's
            model (e.g. quantize the pruned model). Defaults to `None`.
        quiet: no progress lines. Defaults to `False`.
    """
    with disk_full_as_user_error(run_dir, lambda: space_needed(run_dir, times=4)):
        return _compress_run(run_dir, config, method, task, source, quiet)


def _compress_run(run_dir, config, method, task, source, quiet):
    import keras

    from tfsuite.compression import measure
    from tfsuite.compression.methods import METHODS, CompressContext
    from tfsuite.export.model import check_exportable, float32_copy

    check_method(method)
    _clean_after_kills(os.path.join(run_dir, COMPRESS_DIR))
    own = task.compress(run_dir, config, method, quiet)
    if own is not None:
        return own
    path = source_model_path(run_dir, source)
    if keras.backend.backend() != "tensorflow" and needs_tensorflow(config.compress, method):
        return _compress_in_tensorflow_process(run_dir, config, method, source, quiet)
    started = time.perf_counter()
    model, _ = float32_copy(_load(path, run_dir))
    check_exportable(model, path)  # no augmentation layers: compressed files are deployed
    data = task.build_inputs()
    keras.utils.set_random_seed(config.runtime.seed)
    parent = os.path.join(run_dir, COMPRESS_DIR)
    created_parent = not os.path.isdir(parent)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{method}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        if not quiet:
            print(f"tfsuite: compress {display_path(path)} with '{method}'")
        test = measure.test_arrays(data)
        batch = config.compress.latency_batch_size
        context = CompressContext(config, model, path, data, task, staging, test, quiet)
        baseline_model, _ = float32_copy(model)  # before the method changes `model`
        result = METHODS[method](context)
        baseline_path = result.get("baseline") or measure.save_deployable(
            baseline_model, os.path.join(staging, "baseline.keras"))
        report = _report(run_dir, method, path, result, {
            "baseline": measure.measure(baseline_path, test, baseline_model, batch),
            "compressed": measure.measure(result["path"], test, result["model"], batch),
            **{name: measure.measure(p, test, m, batch)
               for name, (p, m) in result.get("others", {}).items()}})
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        _plot(report, os.path.join(staging, PLOT))
        final = output_dir(run_dir, method)
        report["path"] = final
        write_json(os.path.join(staging, REPORT), report)
        publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent and not os.listdir(parent):  # a failed first run leaves nothing
            os.rmdir(parent)
    record_in_summary(run_dir, method, report)
    return report


def needs_tensorflow(compress, method):
    """LiteRT conversion and TFMOT (QAT, TFMOT pruning) run on Keras' TensorFlow backend."""
    from tfsuite.compression.quantization import KERAS_MODES

    if method == "quantize":
        return compress.quantization not in KERAS_MODES
    return method == "prune" and compress.pruning_backend == "tfmot"


def _compress_in_tensorflow_process(run_dir, config, method, source, quiet):
    from tfsuite.tensorflow_process import overrides, run_tensorflow_process

    run_tensorflow_process(["compress", os.path.abspath(run_dir), "--method", method,
                            *(["--from", source] if source else []),
                            *overrides("compress", config.compress, skip=("methods",))],
                           f"compression ({method})", quiet)
    return read_json(os.path.join(output_dir(run_dir, method), REPORT))


def _report(run_dir, method, source_path, result, entries):
    baseline, compressed = entries["baseline"], entries["compressed"]
    report = {"method": method, "run_dir": os.path.abspath(run_dir),
              "source": os.path.abspath(source_path),
              # Where the export finds the source again after the run folder has moved.
              "source_in_run": os.path.relpath(os.path.abspath(source_path),
                                               os.path.abspath(run_dir)),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **entries,
              "ratios": {
                  "size": round(compressed["size_bytes"] / baseline["size_bytes"], 4),
                  "latency": round(compressed["latency_ms"] / baseline["latency_ms"], 4),
                  "nonzero_params": round(compressed["nonzero_params"]
                                          / max(1, baseline["nonzero_params"]), 4),
                  "accuracy_drop_points": round(100 * (baseline["test_accuracy"]
                                                       - compressed["test_accuracy"]), 2)},
              "settings": result.get("settings", {})}
    for key in ("pruned_layers", "factorized_layers", "note"):
        if result.get(key) is not None:
            report[key] = result[key]
    return report


def _plot(report, path):
    from tfsuite.plots import plot_compression

    labels = {"baseline": "baseline", "compressed": report["method"],
              "student_alone": "student alone"}
    entries = {labels[k]: report[k] for k in labels if k in report}
    plot_compression(entries, path, title=f"{report['method']}: "
                     + os.path.basename(report["run_dir"]),
                     layer_sparsity=report.get("pruned_layers"))


def _clean_after_kills(parent):
    """What killed compressions left in RUN_DIR/compress: staging folders are removed; an
    earlier result killed while being swapped out (`publish`) goes back into place when
    the new one never arrived."""
    for name in os.listdir(parent) if os.path.isdir(parent) else []:
        match = re.fullmatch(r"(\w+)\.old-(\d+)", name)
        if match and not process_alive(int(match.group(2))):
            final = os.path.join(parent, match.group(1))
            if os.path.exists(final):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            else:
                os.replace(os.path.join(parent, name), final)
    remove_stale(parent, r"\.?\w+\.staging-(\d+)")


def publish(staging, final):
    """Swaps the finished folder in; an earlier result is removed only after that."""
    old = None
    if os.path.exists(final):
        old = f"{final}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(staging, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def record_in_summary(run_dir, method, report):
    path = os.path.join(run_dir, SUMMARY)
    if not os.path.isfile(path):
        return
    summary = read_json(path)
    summary.setdefault("compress", {})[method] = summary_record(report)
    write_json(path, summary)


def summary_record(report):
    """What summary.json keeps of a compression report."""
    compressed = report["compressed"]
    return {"path": report["path"], "report": os.path.join(report["path"], REPORT),
            "file": compressed["file"], "size_ratio": report["ratios"]["size"],
            # image classifiers: test accuracy; translation: BLEU and exact match
            **{k: compressed[k] for k in ("test_accuracy", "bleu", "exact_match")
               if k in compressed}}


def format_report(report):
    """The printed table: baseline against the compressed model (and any other entry)."""
    names = [k for k in ("baseline", "compressed", "student_alone") if k in report]
    rows = [("", *names),
            ("file", *(report[n]["file"] for n in names)),
            ("test accuracy", *(f"{report[n]['test_accuracy']:.2%}" for n in names)),
            ("weights", *(f"{report[n]['num_params']:,}" for n in names)),
            ("non-zero weights", *(f"{report[n]['nonzero_params']:,}" for n in names)),
            ("size (gzip)", *(f"{report[n]['size_bytes'] / 1024:.1f} KB" for n in names)),
            ("latency", *(f"{report[n]['latency_ms']:.2f} ms" for n in names))]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    ratios = report["ratios"]
    lines.append(f"  size x{ratios['size']:.2f}, latency x{ratios['latency']:.2f}, accuracy "
                 f"{-ratios['accuracy_drop_points']:+.2f} points")
    if report.get("pruned_layers"):
        lines.append("  sparsity: " + ", ".join(f"{name} {value:.0%}" for name, value
                                                 in report["pruned_layers"].items()))
    if report.get("note"):
        lines.append(f"  note: {report['note']}")
    lines.append(f"  report: {display_path(os.path.join(report['path'], REPORT))}")
    lines.append(f"  plot: {display_path(os.path.join(report['path'], PLOT))}")
    return "\n".join(lines)
