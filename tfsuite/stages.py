"""The one run skeleton, and the stages that work on a finished run.

`train` is the same for every task: resolve the run directory, set up the
runtime, build the data (nothing written yet), write config.yaml, fit, save
model.keras, plot, evaluate, write summary.json, then compress and export when
the experiment asks. The task's hooks (`tfsuite.task.Task`) do the task's part
of each step. `evaluate`, `compress` and `export` work on any finished run
directory without retraining.
"""

import os
import time

from tfsuite.config import write_config
from tfsuite.errors import UserError
from tfsuite.io import read_json, write_json
from tfsuite.models.saving import save_model
from tfsuite.run_dir import (CONFIG, CURVES, EVALUATION, EXPORT_REPORT, MODEL, SUMMARY,
                             resolve_run_dir, start_run_dir)
from tfsuite.task import get_task


def train(config, run_dir=None, quiet=False):
    """Trains an experiment end to end; returns the summary dict.

    Writes config.yaml first, then checkpoints every epoch, and at the end
    model.keras, summary.json, training_curves.png and evaluation/.
    """
    from tfsuite.training.runtime import select_backend

    select_backend(config.runtime)
    task = get_task(config)
    started = time.perf_counter()
    run_dir, resuming = resolve_run_dir(config, run_dir, task.run_files)
    runtime = task.setup_runtime()
    # Bad data fails here, before the run directory is touched.
    data = task.prepare(runtime, run_dir, resuming)
    if not runtime.cluster.is_chief:
        return _train_as_worker(config, run_dir, runtime, task, data, quiet)
    start_run_dir(run_dir, resuming)
    write_config(config, os.path.join(run_dir, CONFIG))
    task.write_run_files(run_dir, data, resuming)
    if not quiet:
        task.print_start(run_dir, runtime, data, resuming)
    fitted = task.fit(run_dir, runtime, data, quiet)
    model = fitted.model
    save_model(task.model_to_save(model, data), os.path.join(run_dir, MODEL))
    task.plot_training(fitted, data, os.path.join(run_dir, CURVES))
    metrics = task.evaluate_model(model, data, os.path.join(run_dir, EVALUATION))
    summary = {
        "experiment": config.name,
        "task": config.task,
        "status": "completed",
        "run_dir": os.path.abspath(run_dir),
        **fitted.info,
        # This process plus the training time of earlier, interrupted processes.
        "wall_seconds": round(fitted.earlier_seconds + time.perf_counter() - started, 2),
        "metrics": {**metrics, **fitted.metrics},
        **task.summary(fitted, data, runtime),
        "model": {"name": task.model_name(), "num_params": int(model.count_params()),
                  "path": os.path.join(run_dir, MODEL), **task.model_summary(model, data, run_dir)},
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
    if config.compress.methods:
        summary["compress"] = compress_after_training(run_dir, config, task, quiet)
    if config.export.formats:
        summary["export"] = export_after_training(run_dir, config, task, quiet)
        write_json(os.path.join(run_dir, SUMMARY), summary)
    runtime.end_job()
    return summary


def _train_as_worker(config, run_dir, runtime, task, data, quiet):
    """A worker other than the chief: trains in step with it, resuming from the chief's
    checkpoints, and writes only to a temporary folder (removed at the end). It saves
    and evaluates the model as the chief does, since reading distributed variables can
    take every worker."""
    import shutil
    import tempfile

    from tfsuite.training.trainer import Trainer

    cluster = runtime.cluster
    work_dir = tempfile.mkdtemp(prefix=f"tfsuite-worker{cluster.index}-")
    try:
        if not quiet:
            print(f"tfsuite: worker {cluster.index} of {cluster.num_workers} for "
                  f"{run_dir} (the chief writes it; this worker writes {work_dir})", flush=True)
        model = Trainer(config, work_dir, runtime, quiet=True, resume_from=run_dir).fit(
            task, data)
        save_model(model, os.path.join(work_dir, MODEL))
        metrics = task.evaluate_model(model, data, os.path.join(work_dir, EVALUATION))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    runtime.end_job()
    return {"experiment": config.name, "task": config.task, "status": "completed",
            "worker": cluster.index, "num_workers": cluster.num_workers, "run_dir": run_dir,
            "metrics": metrics}


def compress_after_training(run_dir, config, task, quiet):
    """The compression methods of `compress.methods`, in order, each on the last Keras
    model the chain produced (quantize to LiteRT ends a branch: its output is a .tflite)."""
    from tfsuite.compression.stage import compress_run, summary_record

    records, source = {}, None
    for method in config.compress.methods:
        try:
            task.check_compression(method, run_dir)
            report = compress_run(run_dir, config, method, task, source=source, quiet=quiet)
        except UserError as e:
            raise type(e)(f"Training finished and {os.path.join(run_dir, MODEL)} is saved, "
                          f"but compression ({method}) failed: {e} Retry with `python -m "
                          f"tfsuite.run compress {run_dir} --method {method}`.") from e
        records[method] = summary_record(report)
        if method != "quantize":  # quantized models are not compressed further
            source = method
    return records


def export_after_training(run_dir, config, task, quiet):
    """The export stage chained after training (experiments with `export.formats`)."""
    from tfsuite.packages import require_tensorflow

    try:
        require_tensorflow("Export")
        from tfsuite.export.stage import export_run

        report = export_run(run_dir, config.export, task, quiet=quiet)
    except UserError as e:
        # The trained model is saved; keep the error's type (and so the exit code).
        raise type(e)(f"Training finished and {os.path.join(run_dir, MODEL)} is saved, but the "
                      f"export failed: {e} Retry with `python -m tfsuite.run export "
                      f"{run_dir}`.") from e
    return {"name": report["name"], "version": report["version"], "path": report["path"],
            "report": os.path.join(run_dir, EXPORT_REPORT)}


def format_after_training(summary, task):
    """The compression and export tables of a finished run, for `train` to print."""
    from tfsuite.export.report import format_report

    lines = []
    for method, record in summary.get("compress", {}).items():
        lines += [f"Compressed ({method}):", task.format_compression(read_json(record["report"]))]
    if summary.get("export"):
        lines.append(format_report(read_json(summary["export"]["report"])))
    return "\n".join(lines)
