"""Image classification: inputs, model, loss, metrics, evaluation and prediction."""

import csv
import os
import sys

import keras
import numpy as np

from tfsuite.data.pipeline import build_image_data, load_image_file
from tfsuite.errors import UserError
from tfsuite.io import read_json
from tfsuite.models.vision import build_classifier, set_trainable_layers
from tfsuite.plots import plot_confusion_matrix
from tfsuite.training.losses import SparseCategoricalCrossentropy


class ImageClassificationTask:
    """Wires data, model and metrics for one experiment config."""

    def __init__(self, config):
        self.config = config

    def build_inputs(self, augment=True, drop_remainder=False):
        return build_image_data(self.config.data, self.config.train.batch_size,
                                self.config.runtime.seed, augment=augment,
                                drop_remainder=drop_remainder)

    def build_model(self, data):
        model = build_classifier(self.config.model, self.config.data.augment, data.image_shape,
                                 data.num_classes, data.feature_mean, data.feature_variance)
        if self.config.model.freeze_base:
            set_trainable_layers(model, 0)
        return model

    def start_fine_tuning(self, model):
        """Unfreezes the top `model.fine_tune_layers` layers for the fine-tuning phase."""
        set_trainable_layers(model, self.config.model.fine_tune_layers or None)

    def loss(self):
        return SparseCategoricalCrossentropy(label_smoothing=self.config.train.label_smoothing)

    def metrics(self, num_classes):
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if num_classes > 5:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
        return metrics

    def evaluate(self, model, data, out_dir):
        """Test-set metrics, a confusion matrix PNG and a per-class report in `out_dir`."""
        os.makedirs(out_dir, exist_ok=True)
        dataset = data.test if data.test is not None else data.val
        labels, probabilities = [], []
        # On one JAX device, the compiled predict function: an eager call of a ResNet-50
        # compiles each of its ops on its own, minutes on a GPU before the first batch.
        # Under a strategy or a device mesh, predict_on_batch would treat each worker's
        # batch as its share of a global one; the eager call scores what it is given.
        compiled = (keras.backend.backend() == "jax"
                    and keras.distribution.distribution() is None)
        for images, batch_labels in dataset:
            outputs = (model.predict_on_batch(keras.ops.convert_to_tensor(images)) if compiled
                       else model(images, training=False))
            probabilities.append(keras.ops.convert_to_numpy(outputs))
            labels.append(np.asarray(batch_labels))
        labels = np.concatenate(labels).astype(int)
        probabilities = np.concatenate(probabilities).astype(np.float32)
        predicted = probabilities.argmax(axis=1)
        k = data.num_classes
        matrix = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
        metrics = {"test_accuracy": float((predicted == labels).mean()),
                   "num_evaluated": int(len(labels))}
        if k > 5:
            top5 = np.argsort(-probabilities, axis=1)[:, :5]
            metrics["test_top5_accuracy"] = float((top5 == labels[:, None]).any(axis=1).mean())
        per_class = per_class_report(matrix, data.class_names)
        write_per_class_csv(per_class, os.path.join(out_dir, "per_class.csv"))
        plot_confusion_matrix(matrix, data.class_names, os.path.join(out_dir,
                              "confusion_matrix.png"),
                              title=f"Test accuracy {metrics['test_accuracy']:.2%}")
        write_confusion_csv(matrix, data.class_names,
                            os.path.join(out_dir, "confusion_matrix.csv"))
        return metrics, per_class

    def export_spec(self, run_dir, model, count):
        """What the export stage verifies artifacts on, and how their interface reads.

        The inputs are up to `count` test-split images (validation if there is
        no test split). When the run's data is gone (a model copied to another
        machine), random pixels stand in and the report says so.
        """
        summary = os.path.join(run_dir, "summary.json")
        class_names = read_json(summary)["data"]["class_names"] if os.path.isfile(
            summary) else None
        spec = {"outputs": ("probabilities", "class_id"),
                "input": {"color_mode": self.config.data.color_mode,
                          "description": "raw pixels 0..255 at the configured size; the "
                                         "model preprocesses them itself"}}
        try:
            data = self.build_inputs(augment=False)
        except (UserError, ImportError) as e:  # ImportError: no TensorFlow for tf.data
            rng = np.random.default_rng(0)
            shape = (min(count, 64), *model.input_shape[1:])
            print(f"warning: the run's data is not available ({e}); verifying on random "
                  "images.", file=sys.stderr)
            return {**spec, "inputs": rng.uniform(0, 255, shape).astype(np.float32),
                    "source": "random pixels", "labels": {"class_names": class_names}}
        dataset, split = ((data.test, "test") if data.test is not None
                          else (data.val, "validation"))
        batches, total = [], 0
        for images, _ in dataset:
            batches.append(np.asarray(images, np.float32))
            total += len(batches[-1])
            if total >= count:
                break
        return {**spec, "inputs": np.concatenate(batches)[:count], "source": f"{split} split",
                "labels": {"class_names": class_names or data.class_names}}

    def predict_files(self, model, class_names, paths, top_k=5):
        """Top-k (class name, probability) for each image file."""
        images = np.stack([load_image_file(p, self.config.data) for p in paths])
        probabilities = keras.ops.convert_to_numpy(model.predict(images.astype(np.float32),
                                                                 verbose=0))
        return rank_top_k(paths, probabilities, class_names, top_k)


def rank_top_k(paths, probabilities, class_names, top_k):
    """[(path, [(class name, probability), ...]), ...] with the top `top_k` classes each."""
    results = []
    for path, row in zip(paths, probabilities):
        best = np.argsort(-row)[:top_k]
        results.append((path, [(class_names[i], float(row[i])) for i in best]))
    return results


def per_class_report(matrix, class_names):
    """Precision, recall, F1 and support per class from a confusion matrix."""
    report = []
    for i, name in enumerate(class_names):
        true_positive = matrix[i, i]
        support = matrix[i].sum()
        predicted = matrix[:, i].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report.append({"class": name, "precision": float(precision), "recall": float(recall),
                       "f1": float(f1), "support": int(support)})
    return report


def write_confusion_csv(matrix, class_names, path):
    """Rows: true class; columns: predicted class; both labelled."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, matrix):
            writer.writerow([name, *(int(v) for v in row)])


def write_per_class_csv(report, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["class", "precision", "recall", "f1", "support"])
        writer.writeheader()
        writer.writerows(report)
