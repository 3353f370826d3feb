"""The one run skeleton, and the stages that work on a finished run.

`train` is the same for every task: resolve the run directory, set up the
runtime, build the data (nothing written yet), write config.yaml, fit, save
model.keras, plot, evaluate, write summary.json, then compress and export when
the experiment asks. The task's hooks (`tfsuite.task.Task`) do the task's part
of each step. `evaluate`, `compress` and `export` work on any finished run
directory without retraining.
"""

import contextlib
import logging
import os
import time

from tfsuite.config import write_config
from tfsuite.errors import UserError, disk_full_as_user_error
from tfsuite.io import read_json, write_json
from tfsuite.models.saving import save_model
from tfsuite.run_dir import (CONFIG, CURVES, EVALUATION, EXPORT_REPORT, EXTEND, EXTENDING,
                             FINISH_STAGES, MODEL, SUMMARY, RunDirInUse, hold, make_run_dir,
                             pending_stages, resolve_run_dir, space_needed, start_run_dir)
from tfsuite.task import get_task

logger = logging.getLogger("tfsuite")


def train(config, run_dir=None, quiet=False):
    """Trains an experiment end to end; returns the summary dict.

    Writes config.yaml first, then checkpoints every epoch, and at the end
    model.keras, summary.json, training_curves.png and evaluation/, then runs the
    compression and export stages the experiment asks for. The same command after
    an interruption finishes what did not finish: training resumes from its last
    checkpoint, and a run whose training finished runs only its pending stages.
    The run directory is locked while this process writes it.
    """
    from tfsuite.training.cluster import current_cluster
    from tfsuite.training.runtime import select_backend

    backend = select_backend(config.runtime)
    task = get_task(config)
    started = time.perf_counter()
    requested = run_dir
    # The other workers of a multi-worker job use the folder their chief holds.
    worker = not current_cluster(backend).is_chief
    run_dir, resuming = resolve_run_dir(config, requested, task.run_files, held_ok=worker)
    runtime = task.setup_runtime()
    # Bad data fails here, before the run directory is touched.
    data = None if resuming == FINISH_STAGES else task.prepare(runtime, run_dir, resuming)
    if not runtime.cluster.is_chief:
        if resuming == FINISH_STAGES:  # the chief alone compresses and exports
            runtime.end_job()
            return read_json(os.path.join(run_dir, SUMMARY))
        return _train_as_worker(config, run_dir, runtime, task, data, quiet)
    with contextlib.ExitStack() as lock:
        run_dir, resuming, data = _claim(lock, config, requested, run_dir, resuming, task,
                                         runtime, data)
        close_data = getattr(data, "close", None)  # data loaders' worker processes
        if close_data:
            lock.callback(close_data)
        lock.enter_context(disk_full_as_user_error(run_dir, lambda: space_needed(run_dir)))
        if resuming == FINISH_STAGES:
            summary = read_json(os.path.join(run_dir, SUMMARY))
            if not quiet:
                print(f"tfsuite: {run_dir}: training finished earlier; finishing "
                      f"{', '.join(pending_stages(config, run_dir))}", flush=True)
        else:
            summary = _fit_and_save(config, run_dir, resuming, task, runtime, data, started,
                                    quiet)
            if close_data:  # before compression and export start their own
                close_data()
        skipped = stages_needing_tensorflow(config, run_dir)
        if config.compress.methods:
            summary["compress"] = compress_after_training(run_dir, config, task, quiet,
                                                          skip=skipped)
        if config.export.formats and "export" not in skipped:
            summary["export"] = export_after_training(run_dir, config, task, quiet)
        if skipped:
            summary["skipped_stages"] = {stage: "needs TensorFlow (or starts from the model "
                                                "of a method that does)" for stage in skipped}
            _warn_skipped(run_dir, config, skipped)
        elif summary.pop("skipped_stages", None):  # finished here, where TensorFlow is
            skipped = True
        if summary.pop("failed_stage", None) or config.export.formats or skipped:
            write_json(os.path.join(run_dir, SUMMARY), summary)
    runtime.end_job()
    return summary


def _claim(lock, config, requested, run_dir, resuming, task, runtime, data):
    """Locks the chosen run directory (entered on `lock`, an ExitStack) and checks the choice
    again under the lock: another process may have taken, advanced or finished it while
    this one prepared its data. Without --run-dir, a folder another process holds is
    stepped over. Returns (run_dir, resuming, data)."""
    for _ in range(100):
        make_run_dir(run_dir)
        try:
            lock.enter_context(hold(run_dir))
        except RunDirInUse:
            if requested is not None:
                raise
        else:
            chosen = resolve_run_dir(config, requested, task.run_files)
            if chosen == (run_dir, resuming):
                return run_dir, resuming, data
            lock.close()
        previous = run_dir, resuming
        run_dir, resuming = resolve_run_dir(config, requested, task.run_files)
        if (run_dir, resuming) != previous and resuming != FINISH_STAGES:
            data = task.prepare(runtime, run_dir, resuming)
    raise UserError(f"Could not claim a run directory: other processes kept taking them. "
                    f"Expected a free one. Received: last tried {run_dir!r}. Pass --run-dir.")


def _fit_and_save(config, run_dir, resuming, task, runtime, data, started, quiet):
    """The training part of `train`: fit, save, plot, evaluate; writes summary.json."""
    start_run_dir(run_dir, resuming)
    earlier = read_json(os.path.join(run_dir, SUMMARY)) if resuming and os.path.isfile(
        os.path.join(run_dir, SUMMARY)) else {}
    extended_from = earlier.get("extended_from_epoch")
    if resuming == EXTEND:
        # Until the longer run completes it is an unfinished one: interrupted, or stopped by
        # an error, the same command resumes it.
        extended_from = earlier["epochs_completed"]
        write_json(os.path.join(run_dir, SUMMARY), {**earlier, "status": EXTENDING,
                                                    "extended_from_epoch": extended_from})
    write_config(config, os.path.join(run_dir, CONFIG))
    task.write_run_files(run_dir, data, resuming)
    if not quiet:
        task.print_start(run_dir, runtime, data, resuming)
    fitted = task.fit(run_dir, runtime, data, quiet)
    model = fitted.model
    save_model(task.model_to_save(model, data), os.path.join(run_dir, MODEL))
    task.write_model_files(model, run_dir)
    task.plot_training(fitted, data, os.path.join(run_dir, CURVES))
    metrics = task.evaluate_model(model, data, os.path.join(run_dir, EVALUATION))
    summary = {
        "experiment": config.name,
        "task": config.task,
        "status": "completed",
        "run_dir": os.path.abspath(run_dir),
        **fitted.info,
        **({"extended_from_epoch": extended_from} if extended_from is not None else {}),
        # This process plus the training time of earlier, interrupted processes.
        "wall_seconds": round(fitted.earlier_seconds + time.perf_counter() - started, 2),
        "metrics": {**metrics, **fitted.metrics},
        **task.summary(fitted, data, runtime),
        "model": {"name": task.model_name(), "num_params": int(model.count_params()),
                  "path": os.path.join(run_dir, MODEL), **task.model_summary(model, data, run_dir)},
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
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


def stages_needing_tensorflow(config, run_dir):
    """The chained stages (compression methods, "export") not done yet that need TensorFlow,
    when it is not installed here, and the methods that would start from a skipped one's
    model: `train` skips them with a warning (the trained model is what a machine without
    TensorFlow can make), and the same command finishes them where it is."""
    from tfsuite.compression.stage import needs_tensorflow
    from tfsuite.packages import has_tensorflow

    if has_tensorflow():
        return []
    done = (read_json(os.path.join(run_dir, SUMMARY)) or {}).get("compress", {})
    skipped, blocked = [], False
    for method in config.compress.methods:
        if method in done:
            continue
        if blocked or needs_tensorflow(config.compress, method):
            skipped.append(method)
            blocked = blocked or method != "quantize"  # the chain goes on from a method's model
    return skipped + (["export"] if config.export.formats else [])


def _warn_skipped(run_dir, config, skipped):
    logger.warning(
        "%s need%s TensorFlow, which is not installed here: skipped. The trained model is "
        "saved. Where TensorFlow is installed (pip install tensorflow), the same command "
        "with --run-dir %s finishes them.", ", ".join(
            f"compression ({s})" if s != "export" else "export" for s in skipped),
        "s" if len(skipped) == 1 else "", run_dir)


def compress_after_training(run_dir, config, task, quiet, skip=()):
    """The compression methods of `compress.methods`, in order, each on the last Keras
    model the chain produced (quantize to LiteRT ends a branch: its output is a .tflite).
    Methods summary.json records as done (before an interruption), and those in `skip`,
    are not run."""
    from tfsuite.compression.stage import compress_run, summary_record

    done = read_json(os.path.join(run_dir, SUMMARY)).get("compress", {})
    records, source = {}, None
    for method in config.compress.methods:
        if method in skip and method not in done:
            continue
        if method in done:
            records[method] = done[method]
        else:
            try:
                task.check_compression(method, run_dir)
                report = compress_run(run_dir, config, method, task, source=source,
                                      quiet=quiet)
            except UserError as e:
                _record_failure(run_dir, method)
                raise type(e)(f"Training finished and {os.path.join(run_dir, MODEL)} is saved, "
                              f"but compression ({method}) failed: {e} Run the same command "
                              "again to finish the run's stages (or `python -m tfsuite.run "
                              f"compress {run_dir} --method {method}`).") from e
            records[method] = summary_record(report)  # compress_run recorded it on disk
        if method != "quantize":  # quantized models are not compressed further
            source = method
    return records


def _record_failure(run_dir, stage):
    """Notes in summary.json which chained stage failed with an error (a kill notes
    nothing): without --run-dir, the same command then starts a new run."""
    summary = read_json(os.path.join(run_dir, SUMMARY))
    write_json(os.path.join(run_dir, SUMMARY), {**summary, "failed_stage": stage})


def export_after_training(run_dir, config, task, quiet):
    """The export stage chained after training (experiments with `export.formats`)."""
    from tfsuite.packages import require_tensorflow

    try:
        require_tensorflow("Export")
        from tfsuite.export.stage import export_run

        report = export_run(run_dir, config.export, task, quiet=quiet)
    except UserError as e:
        _record_failure(run_dir, "export")
        # The trained model is saved; keep the error's type (and so the exit code).
        raise type(e)(f"Training finished and {os.path.join(run_dir, MODEL)} is saved, but the "
                      f"export failed: {e} Run the same command again to finish it (or "
                      f"`python -m tfsuite.run export {run_dir}`).") from e
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
