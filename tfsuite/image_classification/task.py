"""The image classification task: image data into a classifier, scored on a test split."""

import logging
import os
import sys

from tfsuite.config import IMAGE_SOURCES, LANGUAGE_MODEL_ONLY, TaskSchema
from tfsuite.errors import UserError
from tfsuite.io import read_json
from tfsuite.run_dir import EVALUATION, SUMMARY
from tfsuite.task import ExportSpec, Task, check_full_batches, model_line, register_task

logger = logging.getLogger("tfsuite")


@register_task
class ImageClassificationTask(Task):
    """Images (bundled digits, folders, .npz, TFDS, synthetic) into a CNN, ResNet or
    keras.applications model; accuracy, top-5, a confusion matrix and a per-class report."""

    name = "image_classification"
    label = "image classification"
    noun = "image classifiers"
    schema = TaskSchema(task=name, data_sources=IMAGE_SOURCES,
                        unused={"model.lora_rank": "LoRA fine-tunes decoder language models "
                                "(task language_model)", **LANGUAGE_MODEL_ONLY})
    unit = "images"
    multi_worker = True
    compression_methods = ("prune", "quantize", "low_rank", "distill")
    commands = {"predict": "classify image files with a run's model or an exported "
                           "SavedModel"}
    evaluate_options = {
        "--data": {"metavar": "FOLDER", "help": "image classification runs: score another "
                   "class folder (its classes matched by name) into RUN_DIR/evaluation_NAME/ "
                   "instead of the run's test split"}}

    # ---------------------------------------------------------------- data and model

    def build_inputs(self, augment=True, drop_remainder=False, in_model=False):
        from tfsuite.data.pipeline import build_image_data

        return build_image_data(self.config.data, self.config.train.batch_size,
                                self.config.runtime.seed, augment=augment,
                                drop_remainder=drop_remainder, in_model=in_model)

    def build_model(self, data):
        from tfsuite.models.vision import build_classifier, set_trainable_layers

        model = build_classifier(self.config.model, self.config.data.augment, data.image_shape,
                                 data.num_classes, data.feature_mean, data.feature_variance,
                                 augment_in_model=data.augment_in_model,
                                 seed=self.config.runtime.seed)
        if self.config.model.freeze_base:
            set_trainable_layers(model, 0)
        return model

    def start_fine_tuning(self, model):
        """Unfreezes the top `model.fine_tune_layers` layers for the fine-tuning phase."""
        from tfsuite.models.vision import set_trainable_layers

        set_trainable_layers(model, self.config.model.fine_tune_layers or None)

    def loss(self):
        from tfsuite.training.losses import SparseCategoricalCrossentropy

        return SparseCategoricalCrossentropy(label_smoothing=self.config.train.label_smoothing)

    def metrics(self, num_classes):
        import keras

        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if num_classes > 5:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
        return metrics

    # ---------------------------------------------------------------- diagnosis

    def task_verdicts(self, run):
        from tfsuite.image_classification.diagnosis import data_verdict

        return [data_verdict(self.config)], ["data"]

    def chance_loss(self, run):
        from tfsuite.image_classification.diagnosis import chance_loss

        return chance_loss(run)

    def diagnosis_fixes(self, name, run):
        from tfsuite.image_classification.diagnosis import fixes

        return fixes(name, self.config)

    # ---------------------------------------------------------------- the run

    def prepare(self, runtime, run_dir, resuming):
        import dataclasses

        from tfsuite.models.vision import resolve_weights

        # Pretrained weights come first: into the Keras cache (downloaded where the network
        # allows), or a clear error before anything is written.
        resolve_weights(self.config.model.name, self.config.model.weights)
        data = self.build_inputs(drop_remainder=runtime.needs_full_batches, in_model=True)
        data = dataclasses.replace(data, train=runtime.shard_dataset(data.train),
                                   val=runtime.shard_dataset(data.val))
        check_full_batches(self.config, data, runtime)
        if runtime.cluster.is_chief:
            _warn_about_small_data(self.config, data, runtime)
        return data

    def print_start(self, run_dir, runtime, data, resuming):
        super().print_start(run_dir, runtime, data, resuming)
        config = self.config
        where = _augmented_on(config, data)
        print(f"  data: {config.data.source}, {data.num_classes} classes, "
              f"{data.num_train} train / {data.num_val} val / {data.num_test} test images "
              f"{tuple(data.image_shape)}" + (f", {len(data.skipped)} files skipped"
                                              if data.skipped else "")
              + (f", augmented on the {where}" if where else ""))
        print(model_line(config.model.name, runtime), flush=True)

    def model_to_save(self, model, data):
        from tfsuite.data.augment.in_model import without_training_augmentation

        return without_training_augmentation(model)

    def evaluate_model(self, model, data, out_dir):
        from tfsuite.image_classification.evaluation import evaluate

        return evaluate(model, data, out_dir)[0]

    def summary(self, fitted, data, runtime):
        batch = self.config.train.batch_size
        trainer_info = fitted.trainer.info()
        return {"data": _data_report(self.config, data),
                "runtime": {**runtime.report(),
                            "per_replica_batch_size": runtime.per_replica_batch_size(batch)},
                "images_per_second": _round(fitted.throughput),
                "epoch_images_per_second": trainer_info["epoch_images_per_second"],
                "scaling": scaling_report(runtime, batch, fitted.throughput)}

    def format_summary(self, summary):
        metrics = summary["metrics"]
        line = f"test accuracy {metrics['test_accuracy']:.2%}"
        if "test_top5_accuracy" in metrics:
            line += f", top-5 {metrics['test_top5_accuracy']:.2%}"
        resumed = summary["resumed_from_epoch"]
        epochs = summary["epochs_completed"]
        lines = [f"Done: {summary['experiment']} - {line} - {epochs} epoch{'s' * (epochs != 1)}"
                 + (f" (extended from epoch {summary['extended_from_epoch']})"
                    if summary.get("extended_from_epoch")
                    else f" (resumed after epoch {resumed})" if resumed else "")
                 + f" - {summary['wall_seconds']:.0f}s - "
                 f"{summary['images_per_second'] or 0:.0f} img/s"]
        scaling = summary.get("scaling")
        if scaling and scaling["strategy"] != "none":
            workers = scaling["num_workers"]
            lines.append(f"  scaling: {scaling['strategy']}, "
                         + (f"{workers} workers, " if workers > 1 else "")
                         + f"{scaling['num_replicas']} replicas x "
                         f"{scaling['per_replica_batch_size']} images (global batch "
                         f"{scaling['global_batch_size']}) - "
                         f"{scaling['images_per_second'] or 0:.0f} img/s, "
                         f"{scaling['images_per_second_per_replica'] or 0:.0f} per replica")
        run_dir = os.path.dirname(summary["model"]["path"])
        lines += [f"  model: {summary['model']['path']}",
                  f"  summary: {os.path.join(run_dir, SUMMARY)}"]
        return "\n".join(lines)

    def format_worker_summary(self, summary):
        return (f"Done: worker {summary['worker']} of {summary['num_workers']} - test accuracy "
                f"{summary['metrics']['test_accuracy']:.2%} (the chief writes "
                f"{summary['run_dir']})")

    # ---------------------------------------------------------------- finished runs

    def evaluate_run(self, run_dir, options):
        """Test-split metrics (of another folder with `options["data"]`, written to
        evaluation_NAME/), the per-class table (`options["quiet"]` leaves it out) and the
        paths of what was written."""
        from tfsuite.image_classification.evaluation import evaluate
        from tfsuite.io import write_json

        model = self.load_model(run_dir)
        if options.get("data"):
            from tfsuite.data.pipeline import build_evaluation_data

            class_names = read_json(os.path.join(run_dir, SUMMARY))["data"]["class_names"]
            data = build_evaluation_data(self.config.data, self.config.train.batch_size,
                                         options["data"], class_names)
            name = os.path.basename(os.path.normpath(os.path.abspath(options["data"])))
            out_dir = os.path.join(run_dir, f"{EVALUATION}_{name}")
        else:
            data = self.build_inputs(augment=False)
            out_dir = os.path.join(run_dir, EVALUATION)
        try:
            metrics, per_class = evaluate(model, data, out_dir)
        finally:
            data.close()
        source = ""
        if options.get("data"):
            metrics.update(data=os.path.abspath(options["data"]), skipped_files=len(data.skipped))
            source = f" of {options['data']} ({len(data.skipped)} files skipped)"
        write_json(os.path.join(out_dir, "metrics.json"), {"metrics": metrics,
                                                           "per_class": per_class})
        top5 = metrics.get("test_top5_accuracy")
        lines = [f"test accuracy {metrics['test_accuracy']:.2%} on {metrics['num_evaluated']} "
                 f"images{source}" + (f", top-5 {top5:.2%}" if top5 is not None else "")]
        if not options.get("quiet"):
            lines.append(f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}"
                         f"{'support':>9}")
            lines += [f"{row['class'][:15]:<16}{row['precision']:>10.3f}"
                      f"{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>9d}"
                      for row in per_class]
        lines += [f"  confusion matrix: {os.path.join(out_dir, 'confusion_matrix.png')}",
                  f"  per-class report: {os.path.join(out_dir, 'per_class.csv')}"]
        return metrics, "\n".join(lines)

    def export_spec(self, run_dir, model, count):
        """Up to `count` test-split images (validation if there is no test split). When
        the run's data is gone (a model copied to another machine), random pixels stand
        in and the report says so."""
        import numpy as np

        summary = os.path.join(run_dir, SUMMARY)
        class_names = read_json(summary)["data"]["class_names"] if os.path.isfile(
            summary) else None
        spec = {"outputs": ("probabilities", "class_id"),
                "input": {"color_mode": self.config.data.color_mode,
                          "description": "raw pixels 0..255 at the configured size; the "
                                         "model preprocesses them itself"}}
        try:
            data = self.build_inputs(augment=False)
        except (UserError, ImportError) as e:  # ImportError: no TensorFlow for tf.data
            shape = (min(count, 64), *model.input_shape[1:])
            print(f"warning: the run's data is not available ({e}); verifying on random "
                  "images.", file=sys.stderr)
            return ExportSpec(inputs=np.random.default_rng(0).uniform(0, 255, shape).astype(
                np.float32), source="random pixels", labels={"class_names": class_names},
                **spec)
        dataset, split = ((data.test, "test") if data.test is not None
                          else (data.val, "validation"))
        batches, total = [], 0
        for images, _ in dataset:
            batches.append(np.asarray(images, np.float32))
            total += len(batches[-1])
            if total >= count:
                break
        return ExportSpec(inputs=np.concatenate(batches)[:count], source=f"{split} split",
                          labels={"class_names": class_names or data.class_names}, **spec)

    def predict(self, run_dir, inputs, top_k=5):
        """Image files: [(path, [(class name, probability), ...])] with the top `top_k`
        classes each; an array of images: the probabilities."""
        if isinstance(inputs, str):
            inputs = [inputs]
        if len(inputs) and all(isinstance(p, (str, os.PathLike)) for p in inputs):
            from tfsuite.image_classification.predict import predict

            return predict(self, run_dir, [os.fspath(p) for p in inputs], top_k)
        return super().predict(run_dir, inputs)

    @classmethod
    def add_command(cls, name, parser):
        from tfsuite.image_classification.predict import add_predict_command

        return add_predict_command(parser)


def scaling_report(runtime, batch_size, images_per_second):
    """Replicas, batch per replica and throughput overall and per replica."""
    replicas = runtime.num_replicas
    return {"strategy": runtime.strategy_name, "num_workers": runtime.cluster.num_workers,
            "num_replicas": replicas, "global_batch_size": batch_size,
            "per_replica_batch_size": runtime.per_replica_batch_size(batch_size),
            "images_per_second": _round(images_per_second),
            "images_per_second_per_replica": _round(images_per_second / replicas
                                                    if images_per_second else None)}


def _round(value):
    return None if value is None else round(float(value), 1)


def _augmented_on(config, data):
    """Where the training images are augmented: "device", "host", or None (no augmentation)."""
    from tfsuite.data.augment import augments

    if data.augment_in_model:
        return "device"
    return "host" if augments(config.data.augment) else None


def _data_report(config, data):
    return {"source": config.data.source, "augmented_on": _augmented_on(config, data),
            "num_classes": data.num_classes,
            "class_names": data.class_names, "num_train": data.num_train,
            "num_val": data.num_val, "num_test": data.num_test,
            "skipped_files": len(data.skipped), "image_shape": list(data.image_shape),
            "skipped": [{"path": p, "reason": r} for p, r in data.skipped[:100]]}


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
