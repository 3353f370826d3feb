"""The stages a user runs: train, evaluate, predict. Each is a plain function of
(config, artifacts of the previous stage), so `evaluate` and `predict` work on
any finished run directory without retraining.
"""

import dataclasses
import logging
import os
import time

import numpy as np

from tfsuite.config import read_run_config, write_config
from tfsuite.errors import user_error
from tfsuite.io import read_json, write_json
from tfsuite.run_dir import MODEL, SUMMARY, resolve_run_dir, start_run_dir

logger = logging.getLogger("tfsuite")


# ---------------------------------------------------------------- train


def train(config, run_dir=None, quiet=False):
    """Trains an experiment end to end; returns the summary dict.

    Writes config.yaml first, then checkpoints every epoch, and at the end
    model.keras, summary.json, training_curves.png and evaluation/.
    """
    from tfsuite.training.runtime import select_backend

    select_backend(config.runtime)
    if config.task == "reinforcement_learning":
        from tfsuite.rl import stage as rl_stage

        return rl_stage.train(config, run_dir, quiet)
    if config.task == "recommendation":
        from tfsuite.recommend import stage as recommend_stage

        return recommend_stage.train(config, run_dir, quiet)
    if config.task == "translation":
        from tfsuite.translation import stage as translation_stage

        return translation_stage.train(config, run_dir, quiet)
    from tfsuite.plots import plot_history
    from tfsuite.tasks import get_task
    from tfsuite.training.runtime import setup_runtime
    from tfsuite.training.trainer import Trainer

    started = time.perf_counter()
    run_dir, resuming = resolve_run_dir(config, run_dir)
    runtime = setup_runtime(config.runtime)
    runtime.check_batch_size(config.train.batch_size)
    task = get_task(config)
    # Bad data fails here, before the run directory is touched.
    data = task.build_inputs(drop_remainder=runtime.needs_full_batches)
    data = dataclasses.replace(data, train=runtime.shard_dataset(data.train),
                               val=runtime.shard_dataset(data.val))
    check_full_batches(config, data, runtime)
    if not runtime.cluster.is_chief:
        return _train_as_worker(config, run_dir, runtime, task, data, quiet)
    _warn_about_small_data(config, data, runtime)
    start_run_dir(run_dir, resuming)
    write_config(config, os.path.join(run_dir, "config.yaml"))
    if not quiet:
        _print_start(config, run_dir, runtime, data, resuming)
    trainer = Trainer(config, run_dir, runtime, quiet=quiet)
    model = trainer.fit(task, data)
    save_model(model, os.path.join(run_dir, MODEL))
    history = trainer.history()
    if history:
        plot_history(history, os.path.join(run_dir, "training_curves.png"), title=config.name)
    metrics, _ = task.evaluate(model, data, os.path.join(run_dir, "evaluation"))
    info = trainer.info()
    summary = {
        "experiment": config.name,
        "status": "completed",
        "epochs_completed": info["epochs_completed"],
        "epochs_planned": trainer.total_epochs,
        "resumed_from_epoch": info["resumed_from_epoch"],
        "early_stopped": info["early_stopped"],
        "best_epoch": info["best_epoch"],
        # This process plus the training time of earlier, interrupted processes.
        "wall_seconds": round(info["earlier_wall_seconds"] + time.perf_counter() - started, 2),
        "metrics": {**metrics, **_final_history(history)},
        "data": _data_report(config, data),
        "runtime": {**runtime.report(),
                    "per_replica_batch_size": runtime.per_replica_batch_size(
                        config.train.batch_size)},
        "images_per_second": _round(info["images_per_second"]),
        "epoch_images_per_second": info["epoch_images_per_second"],
        "scaling": scaling_report(runtime, config.train.batch_size, info["images_per_second"]),
        "model": {"name": config.model.name, "num_params": int(model.count_params()),
                  "path": os.path.join(run_dir, MODEL)},
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
    if config.compress.methods:
        summary["compress"] = compress_after_training(run_dir, config, quiet)
    if config.export.formats:
        summary["export"] = export_after_training(run_dir, config, quiet)
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
        metrics, _ = task.evaluate(model, data, os.path.join(work_dir, "evaluation"))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    runtime.end_job()
    return {"experiment": config.name, "status": "completed", "worker": cluster.index,
            "num_workers": cluster.num_workers, "run_dir": run_dir, "metrics": metrics}


def scaling_report(runtime, batch_size, images_per_second):
    """Replicas, batch per replica and throughput overall and per replica."""
    replicas = runtime.num_replicas
    return {"strategy": runtime.strategy_name, "num_workers": runtime.cluster.num_workers,
            "num_replicas": replicas, "global_batch_size": batch_size,
            "per_replica_batch_size": runtime.per_replica_batch_size(batch_size),
            "images_per_second": _round(images_per_second),
            "images_per_second_per_replica": _round(images_per_second / replicas
                                                    if images_per_second else None)}


def compress_after_training(run_dir, config, quiet):
    """The compression methods of `compress.methods`, in order, each on the last Keras
    model the chain produced (quantize to LiteRT ends a branch: its output is a .tflite)."""
    from tfsuite.compression.stage import compress_run, summary_record
    from tfsuite.errors import UserError

    records, source = {}, None
    for method in config.compress.methods:
        try:
            report = compress_run(run_dir, config, method, source=source, quiet=quiet)
        except UserError as e:
            raise type(e)(f"Training finished and {os.path.join(run_dir, MODEL)} is saved, "
                          f"but compression ({method}) failed: {e} Retry with `python -m "
                          f"tfsuite.run compress {run_dir} --method {method}`.") from e
        records[method] = summary_record(report)
        if method != "quantize":  # quantized models are not compressed further
            source = method
    return records


def export_after_training(run_dir, config, quiet):
    """The export stage chained after training (experiments with `export.formats`)."""
    from tfsuite.errors import UserError
    from tfsuite.packages import require_tensorflow

    try:
        require_tensorflow("Export")
        from tfsuite.export.stage import EXPORT_REPORT, export_run

        report = export_run(run_dir, config.export, quiet=quiet)
    except UserError as e:
        # The trained model is saved; keep the error's type (and so the exit code).
        raise type(e)(f"Training finished and {os.path.join(run_dir, MODEL)} is saved, but the "
                      f"export failed: {e} Retry with `python -m tfsuite.run export "
                      f"{run_dir}`.") from e
    return {"name": report["name"], "version": report["version"], "path": report["path"],
            "report": os.path.join(run_dir, EXPORT_REPORT)}


def _round(value):
    return None if value is None else round(float(value), 1)


def _final_history(history):
    return {f"final_{k}": round(v[-1], 6) for k, v in history.items() if v}


def _data_report(config, data):
    return {"source": config.data.source, "num_classes": data.num_classes,
            "class_names": data.class_names, "num_train": data.num_train,
            "num_val": data.num_val, "num_test": data.num_test,
            "skipped_files": len(data.skipped), "image_shape": list(data.image_shape),
            "skipped": [{"path": p, "reason": r} for p, r in data.skipped[:100]]}


def single_process_runtime(config, what):
    """The runtime of a task that trains in one process (`what`, e.g. "Translation"): a
    `launch` job or a TF_CONFIG cluster is refused, and the batch size checked."""
    from tfsuite.training.runtime import setup_runtime

    runtime = setup_runtime(config.runtime)
    if runtime.cluster.num_workers > 1:
        raise user_error(f"{what} trains in one process", "a single process (no `launch`, "
                         "no TF_CONFIG cluster)", f"worker {runtime.cluster.index} of "
                         f"{runtime.cluster.num_workers}", "Use the devices of one machine "
                         "(runtime.strategy=mirrored or data_parallel) instead.")
    runtime.check_batch_size(config.train.batch_size)
    return runtime


def completed_summary(config, trainer, metrics, started):
    """The first keys of a finished run's summary.json: what ran, for how long, and the
    test `metrics` with the last epoch's training figures."""
    info, history = trainer.info(), trainer.history()
    return {
        "experiment": config.name,
        "task": config.task,
        "status": "completed",
        "epochs_completed": info["epochs_completed"],
        "epochs_planned": trainer.total_epochs,
        "resumed_from_epoch": info["resumed_from_epoch"],
        "best_epoch": info["best_epoch"],
        "wall_seconds": round(info["earlier_wall_seconds"] + time.perf_counter() - started, 2),
        "metrics": {**metrics, **{f"final_{k}": round(v[-1], 6) for k, v in history.items()
                                  if v}},
    }


def save_model(model, path):
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def check_full_batches(config, data, runtime):
    """A JAX mesh takes full batches only: a split smaller than one would be empty."""
    batch = config.train.batch_size
    what = "images" if getattr(data, "unit", "img") == "img" else data.unit
    for split, count in (("training", data.num_train), ("validation", data.num_val)):
        if runtime.needs_full_batches and 0 < count < batch:
            raise user_error(f"The {split} split is smaller than one batch",
                             f"at least train.batch_size={batch} {split} {what} "
                             f"(runtime.strategy={runtime.strategy_name} takes full batches "
                             "only)", f"{count} {split} {what}",
                             "Lower train.batch_size (a multiple of the replicas).")


def _warn_about_small_data(config, data, runtime):
    batch = config.train.batch_size
    left_out = data.num_train % batch
    if runtime.needs_full_batches and left_out:
        logger.warning("runtime.strategy=%s splits only full batches over the devices: %d of "
                       "the %d training images (another draw each epoch) and the validation "
                       "split's last partial batch are left out.", runtime.strategy_name,
                       left_out, data.num_train)
    if config.data.validation_split > 0 and data.num_val == 0:
        logger.warning("The validation split is empty (%d images in all): early stopping "
                       "and the best checkpoint use the training metrics.", data.num_train)
    steps = -(-data.num_train // config.train.batch_size) * config.train.epochs
    if steps < 100 and config.model.name != "mlp":
        logger.warning("Only %d optimizer steps in this run: batch-norm statistics may not "
                       "settle, so validation and test scores can lag the training score. "
                       "Train more epochs or lower train.batch_size.", steps)
    if data.num_test and data.num_test < 2 * data.num_classes:
        logger.warning("Only %d test images for %d classes: the test accuracy is a rough "
                       "estimate.", data.num_test, data.num_classes)


def _print_start(config, run_dir, runtime, data, resuming):
    report = runtime.report()
    print(f"tfsuite: experiment '{config.name}' -> {run_dir}"
          + (" (resuming)" if resuming else ""))
    print(f"  data: {config.data.source}, {data.num_classes} classes, "
          f"{data.num_train} train / {data.num_val} val / {data.num_test} test images "
          f"{tuple(data.image_shape)}" + (f", {len(data.skipped)} files skipped"
                                          if data.skipped else ""))
    print(f"  model: {config.model.name}; runtime: backend {report['backend']}, strategy "
          f"{report['strategy']} ({report['num_replicas']} replica(s)), {report['precision']}")


# ---------------------------------------------------------------- evaluate / predict


def register_custom_objects():
    """Imports the modules whose layers and losses saved models refer to."""
    import tfsuite.data.augment  # noqa: F401
    import tfsuite.models.preprocessing  # noqa: F401
    import tfsuite.training.losses  # noqa: F401


def load_run_model(run_dir):
    import keras

    register_custom_objects()
    path = os.path.join(run_dir, MODEL)
    if not os.path.isfile(path):
        raise user_error("The run has no trained model", f"{path} (written when training "
                         "completes)", f"run_dir={run_dir!r}", "Finish training first: "
                         "run the same train command again to resume it.")
    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, KeyError) as e:  # a truncated zip, a missing weights entry
        raise user_error("The run's model file cannot be loaded", "a complete model.keras "
                         "saved by tfsuite", f"{path} ({type(e).__name__}: {str(e)[:200]})",
                         "The file may be damaged; retrain, or restore it from a copy.") from e


def evaluate(run_dir, quiet=False):
    """Evaluates a run's model on its test split; writes evaluation/ and returns metrics."""
    config = read_run_config(run_dir)
    from tfsuite.training.runtime import select_backend

    select_backend(config.runtime)
    from tfsuite.tasks import get_task

    model = load_run_model(run_dir)
    task = get_task(config)
    data = task.build_inputs(augment=False)
    out_dir = os.path.join(run_dir, "evaluation")
    metrics, per_class = task.evaluate(model, data, out_dir)
    write_json(os.path.join(out_dir, "metrics.json"), {"metrics": metrics,
                                                       "per_class": per_class})
    return metrics, per_class, out_dir


def predict(run_dir, images, top_k=5):
    """Top-k class names and probabilities for image files, from a run's model."""
    config = read_run_config(run_dir)
    from tfsuite.training.runtime import select_backend

    select_backend(config.runtime)
    from tfsuite.tasks import get_task

    _check_image_files(images)
    summary_path = os.path.join(run_dir, SUMMARY)
    model = load_run_model(run_dir)
    class_names = read_json(summary_path)["data"]["class_names"] if os.path.isfile(
        summary_path) else [str(i) for i in range(model.output_shape[-1])]
    top_k = max(1, min(top_k, len(class_names)))
    return get_task(config).predict_files(model, class_names, images, top_k)


def predict_saved_model(path, images, top_k=5):
    """Top-k class names and probabilities from an exported SavedModel (OUT/NAME/VERSION).

    Image size and color mode come from the signature and the version's
    export.json; without that file, classes are shown by index.
    """
    from tfsuite.config import DataConfig
    from tfsuite.data.pipeline import load_image_file
    from tfsuite.export.saved_model import SavedModelRunner
    from tfsuite.tasks.image_classification import rank_top_k

    _check_image_files(images)
    info_path = os.path.join(path, "export.json")
    info = read_json(info_path) if os.path.isfile(info_path) else {}
    runner = SavedModelRunner(path)
    if "probabilities" not in info.get("outputs", {"probabilities": None}) or \
            len(runner.input_spec.shape) != 4:
        raise user_error("This SavedModel does not classify images", "an image classifier's "
                         "export (inputs [batch, height, width, channels], output "
                         "probabilities)", f"{path} with input {runner.input_spec.shape} and "
                         f"outputs {sorted(info.get('outputs', {}))}", "A DQN policy's "
                         "SavedModel takes observations: query it through TF Serving, or use "
                         "`evaluate`/`render` on its run directory.")
    height, width, channels = runner.input_spec.shape[1:]
    color_mode = info.get("input", {}).get("color_mode") or {1: "grayscale", 3: "rgb",
                                                              4: "rgba"}[channels]
    data = DataConfig(image_size=[height, width], color_mode=color_mode)
    batch = np.stack([load_image_file(p, data) for p in images]).astype(np.float32)
    probabilities = runner(batch)
    class_names = info.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
    return rank_top_k(images, probabilities, class_names, max(1, min(top_k, len(class_names))))


def _check_image_files(images):
    for path in images:
        if not os.path.isfile(path):
            what = "is a folder" if os.path.isdir(path) else "not found"
            raise user_error(f"Image file {what}", "an existing image file",
                             f"image={path!r}")
