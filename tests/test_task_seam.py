"""Adding a task is local: a toy task (tabular regression on scikit-learn's diabetes data),
registered here in the test alone, trains, evaluates and exports through the CLI and the
Python API without a line of tfsuite changed."""

import dataclasses
import json
import os

import numpy as np
import pytest

import tfsuite
from tfsuite.config import TaskSchema
from tfsuite.errors import UserError
from tfsuite.task import ExportSpec, Task, register_task

from .conftest import call_cli

EXPERIMENT = """\
name: diabetes
task: tabular_regression
data: {source: diabetes, validation_split: 0.1, test_split: 0.2}
train: {epochs: 4, batch_size: 32, learning_rate: 0.01, monitor: val_loss}
export: {formats: [saved_model]}
"""


@dataclasses.dataclass
class Tables:
    train: object
    val: object
    num_train: int
    num_val: int
    num_classes: int
    x_test: np.ndarray
    y_test: np.ndarray


def _split(seed):
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)  # shipped with scikit-learn: no download
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype(np.float32) * 10, y[order].astype(np.float32) / 100
    return (x[:310], y[:310]), (x[310:354], y[310:354]), (x[354:], y[354:])


@register_task
class TabularRegression(Task):
    name = "tabular_regression"
    label = "tabular regression"
    schema = TaskSchema(task=name, data_sources=("diabetes",))
    unit = "rows"
    compression_methods = ()

    def prepare(self, runtime, run_dir, resuming):
        import tensorflow as tf

        (x, y), (xv, yv), (xt, yt) = _split(self.config.runtime.seed)
        batch = self.config.train.batch_size
        return Tables(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512, seed=0)
                      .batch(batch), tf.data.Dataset.from_tensor_slices((xv, yv)).batch(batch),
                      len(x), len(xv), 1, xt, yt)

    def build_model(self, data):
        import keras

        return keras.Sequential([keras.Input((10,)), keras.layers.Dense(32, "relu"),
                                 keras.layers.Dense(1)])

    def loss(self):
        return "mse"

    def metrics(self, num_classes):
        import keras

        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def evaluate_model(self, model, data, out_dir):
        predicted = model.predict(data.x_test, verbose=0)[:, 0]
        metrics = {"test_mae": float(np.abs(predicted - data.y_test).mean()),
                   "baseline_mae": float(np.abs(data.y_test.mean() - data.y_test).mean())}
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f)
        return metrics

    def format_summary(self, summary):
        return f"Done: {summary['experiment']} - test MAE {summary['metrics']['test_mae']:.3f}"

    def evaluate_run(self, run_dir, options):
        _, _, (xt, yt) = _split(self.config.runtime.seed)
        data = Tables(None, None, 0, 0, 1, xt, yt)
        metrics = self.evaluate_model(self.load_model(run_dir), data,
                                      os.path.join(run_dir, "evaluation"))
        return metrics, f"test MAE {metrics['test_mae']:.3f}"

    def export_spec(self, run_dir, model, count):
        _, _, (xt, _) = _split(self.config.runtime.seed)
        return ExportSpec(inputs=xt[:count], source="test split", outputs=("value", "index"),
                          input={"description": "ten standardized features"}, labels={})


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "diabetes.yaml"
    path.write_text(EXPERIMENT)
    return path


def test_the_toy_task_trains_evaluates_and_exports_through_the_cli(experiment, tmp_path):
    run_dir = tmp_path / "run"
    result = call_cli("train", str(experiment), "--run-dir", str(run_dir), "--set",
                      f"export.out={tmp_path / 'served'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Done: diabetes - test MAE" in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["task"] == "tabular_regression" and summary["epochs_completed"] == 4
    # It learned: better than always predicting the mean.
    assert summary["metrics"]["test_mae"] < summary["metrics"]["baseline_mae"]
    report = json.loads((run_dir / "export.json").read_text())
    assert report["formats"]["saved_model"]["verified"]
    assert (tmp_path / "served" / "diabetes" / "1" / "saved_model.pb").is_file()
    # The task-specific config is the core alone: no other task's section.
    config = call_cli("config", str(experiment), cwd=tmp_path)
    assert "task: tabular_regression" in config.stdout and "rl:" not in config.stdout
    evaluated = call_cli("evaluate", str(run_dir), cwd=tmp_path)
    assert evaluated.returncode == 0 and "test MAE" in evaluated.stdout
    # Task commands of other tasks refuse it with the usual message.
    refused = call_cli("translate", str(run_dir), "hello", cwd=tmp_path)
    assert refused.returncode == 2 and "task=tabular_regression" in refused.stderr


def test_the_toy_task_through_the_python_api(experiment, tmp_path):
    with pytest.raises(UserError, match="Expected an int >= 1. Received: train.epochs=0"):
        tfsuite.train(str(experiment), overrides={"train.epochs": 0})
    # Worded for Python: the fix names `overrides`, not the CLI's --set.
    with pytest.raises(UserError, match=r"overrides=\{'data.image_size': \[32, 32\]\}") as e:
        tfsuite.train(str(experiment), overrides={"data.image_size": 32})
    assert "--set" not in str(e.value)
    with pytest.raises(UserError, match="belongs to another task"):
        tfsuite.train(str(experiment), overrides={"rl.total_steps": 10})
    run = tfsuite.train(str(experiment), overrides={"train.epochs": 2, "export.formats": []},
                        run_dir=str(tmp_path / "api"), quiet=True)
    assert run.config.train.epochs == 2 and run.summary["status"] == "completed"
    assert len(run.history["loss"]) == 2
    assert run.evaluate()["test_mae"] == pytest.approx(run.metrics["test_mae"], rel=1e-5)
    predictions = run.predict(np.zeros((3, 10), np.float32))
    assert predictions.shape == (3, 1)
    report = run.export(["saved_model"], out=str(tmp_path / "served"), quiet=True)
    assert report["version"] == 1 and report["formats"]["saved_model"]["verified"]
    again = tfsuite.load_run(str(tmp_path / "api"))
    assert again.metrics == run.metrics


@pytest.fixture
def weights_format():
    """An export format of the test's own (Keras weights + the architecture as JSON, run
    by rebuilding the model), registered for one test and removed after it."""
    from tfsuite import config
    from tfsuite.export import formats

    def write(context):
        import keras

        path = os.path.join(context.staging, "weights")
        os.makedirs(path)
        with open(os.path.join(path, "model.json"), "w") as f:
            f.write(context.model.to_json())
        context.model.save_weights(os.path.join(path, "model.weights.h5"))

        def runner(inputs):
            with open(os.path.join(path, "model.json")) as f:
                model = keras.models.model_from_json(f.read())
            model.load_weights(os.path.join(path, "model.weights.h5"))
            return keras.ops.convert_to_numpy(model(inputs))

        return {"path": path, "runner": runner}

    formats.register_format(formats.Format("weights_json", write, aliases=("wj",)))
    yield "weights_json"
    del formats.FORMATS["weights_json"]
    config.EXPORT_FORMATS.remove("weights_json")


def test_a_new_export_format_is_one_registry_entry(experiment, tmp_path, weights_format):
    run = tfsuite.train(str(experiment), overrides={"train.epochs": 1, "export.formats": []},
                        run_dir=str(tmp_path / "run"), quiet=True)
    report = run.export(["wj"], out=str(tmp_path / "served"), quiet=True)  # by its alias
    assert report["formats"][weights_format]["verified"]
    assert report["formats"][weights_format]["max_abs_diff"] < 1e-5
    assert os.path.isfile(tmp_path / "served" / "diabetes" / "1" / "weights" / "model.json")
    # The config accepts it too, and says which formats exist when a name is wrong.
    assert tfsuite.load_config(str(experiment), overrides={"export.formats": [
        weights_format]}).export.formats == [weights_format]
    with pytest.raises(UserError, match="weights_json"):
        tfsuite.load_config(str(experiment), overrides={"export.formats": ["weights_jsn"]})
