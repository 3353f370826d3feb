import json
import os

import numpy as np
import pytest

from tests.conftest import run_cli, write_messy_folder
from tfsuite.image_classification.evaluation import per_class_report

# The messy folder is decoded by tf.data whatever the backend, so it trains on TensorFlow
# only (a folder run trained on JAX: tests/test_cli.py). The rest also runs with
# KERAS_BACKEND=jax (README).


@pytest.mark.slow
def test_messy_real_world_folder_trains_without_cleaning(tmp_path):
    root, good, bad = write_messy_folder(str(tmp_path / "messy"), per_class=60, seed=1)
    run_dir = str(tmp_path / "run")
    result = run_cli("train", "image_folder", "--set", f"data.path={root}",
                     "--set", "data.image_size=[32,32]", "--set", "model.name=cnn",
                     "--set", "model.width=16", "--set", "train.epochs=12",
                     "--set", "train.batch_size=16", "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert f"{bad} files skipped" in result.stdout
    assert "Skipped" in result.stderr and "truncated.jpg" in result.stderr
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    data = summary["data"]
    assert data["skipped_files"] == bad
    assert data["num_train"] + data["num_val"] + data["num_test"] == good
    assert data["class_names"] == ["discs", "squares"]
    assert summary["metrics"]["test_accuracy"] >= 0.75  # chance is 0.5


@pytest.mark.backend_agnostic
def test_per_class_report():
    # Confusion [[8, 2], [1, 9]] (rows: true class), and a third class never seen.
    labels = np.array([0] * 10 + [1] * 10)
    predicted = np.array([0] * 8 + [1] * 2 + [0] + [1] * 9)
    report = per_class_report(labels, predicted, ["a", "b", "c"])
    assert report[0] == {"class": "a", "precision": pytest.approx(8 / 9), "recall": 0.8,
                         "f1": pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8)), "support": 10}
    assert report[1]["recall"] == 0.9
    assert report[2] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@pytest.mark.backend_agnostic
def test_frozen_base_trains_only_the_head_then_top_layers_unfreeze():
    import keras

    from tfsuite.config import load_config
    from tfsuite.task import get_task

    config = load_config("digits", overrides=["model.freeze_base=true",
                                              "model.fine_tune_layers=2", "model.width=8"])
    task = get_task(config)
    data = task.build_inputs(augment=False)
    model = task.build_model(data)
    model.compile(optimizer="adam", loss=task.loss())
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}
    model.fit(data.train.take(3), epochs=1, verbose=0)
    changed = {w.path for w in model.weights
               if not np.allclose(keras.ops.convert_to_numpy(w), before[w.path])}
    assert changed and all(path.startswith("predictions/") for path in changed)

    task.start_fine_tuning(model)
    trainable = [l.name for l in model.layers if l.trainable and l.weights]
    assert trainable == ["block3_conv", "predictions"]  # top 2 weighted layers, BN stays frozen
