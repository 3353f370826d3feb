"""Evaluating an image classifier: test metrics, confusion matrix, per-class report."""

import csv
import os

import keras
import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from tfsuite.io import replacing
from tfsuite.plots import plot_confusion_matrix
from tfsuite.progress import ProgressBar


def evaluate(model, data, out_dir):
    """Test-set metrics, a confusion matrix PNG and a per-class report in `out_dir` (with a
    progress bar on a terminal)."""
    os.makedirs(out_dir, exist_ok=True)
    dataset = data.test if data.test is not None else data.val
    labels, probabilities = [], []
    # On one JAX device, the compiled predict function: an eager call of a ResNet-50
    # compiles each of its ops on its own, minutes on a GPU before the first batch.
    # Under a strategy or a device mesh, predict_on_batch would treat each worker's
    # batch as its share of a global one; the eager call scores what it is given.
    compiled = (keras.backend.backend() == "jax"
                and keras.distribution.distribution() is None)
    bar = ProgressBar(data.num_test if data.test is not None else data.num_val, "Evaluating",
                      "img")
    done = 0
    for images, batch_labels in dataset:
        outputs = (model.predict_on_batch(keras.ops.convert_to_tensor(images)) if compiled
                   else model(images, training=False))
        probabilities.append(keras.ops.convert_to_numpy(outputs))
        labels.append(np.asarray(batch_labels))
        done += len(labels[-1])
        bar.update(done)
    bar.close()
    labels = np.concatenate(labels).astype(int)
    probabilities = np.concatenate(probabilities).astype(np.float32)
    predicted = probabilities.argmax(axis=1)
    k = data.num_classes
    matrix = confusion_matrix(labels, predicted, labels=range(k))
    metrics = {"test_accuracy": float((predicted == labels).mean()),
               "num_evaluated": int(len(labels))}
    if k > 5:
        top5 = np.argsort(-probabilities, axis=1)[:, :5]
        metrics["test_top5_accuracy"] = float((top5 == labels[:, None]).any(axis=1).mean())
    per_class = per_class_report(labels, predicted, data.class_names)
    write_per_class_csv(per_class, os.path.join(out_dir, "per_class.csv"))
    plot_confusion_matrix(matrix, data.class_names, os.path.join(out_dir,
                          "confusion_matrix.png"),
                          title=f"Test accuracy {metrics['test_accuracy']:.2%}")
    write_confusion_csv(matrix, data.class_names,
                        os.path.join(out_dir, "confusion_matrix.csv"))
    return metrics, per_class


def rank_top_k(paths, probabilities, class_names, top_k):
    """[(path, [(class name, probability), ...]), ...] with the top `top_k` classes each."""
    results = []
    for path, row in zip(paths, probabilities):
        best = np.argsort(-row)[:top_k]
        results.append((path, [(class_names[i], float(row[i])) for i in best]))
    return results


def per_class_report(labels, predicted, class_names):
    """Precision, recall, F1 and support per class (scikit-learn's classification report;
    a class never predicted, or absent, scores 0 rather than warning)."""
    report = classification_report(labels, predicted, labels=range(len(class_names)),
                                   output_dict=True, zero_division=0)
    return [{"class": name, "precision": float(report[str(i)]["precision"]),
             "recall": float(report[str(i)]["recall"]), "f1": float(report[str(i)]["f1-score"]),
             "support": int(report[str(i)]["support"])} for i, name in enumerate(class_names)]


def write_confusion_csv(matrix, class_names, path):
    """Rows: true class; columns: predicted class; both labelled."""
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, matrix):
            writer.writerow([name, *(int(v) for v in row)])


def write_per_class_csv(report, path):
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["class", "precision", "recall", "f1", "support"])
        writer.writeheader()
        writer.writerows(report)
