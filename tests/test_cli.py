"""The command line as a user drives it: commands, outputs, exit codes, errors."""

import importlib.util
import json
import os

import pytest
from PIL import Image

from tests.conftest import assert_user_error, call_cli, copy_run, run_cli

# These run on TensorFlow only: an image run's commands on JAX (train, evaluate, predict on
# an image folder and on the digits, the refusals) are tested by test_without_tensorflow.py,
# whose Python has no TensorFlow at all, and a JAX run's compression and export by
# export/test_backends.py. Parsing, validation and run-folder policy do not depend on the
# backend.


@pytest.fixture(scope="module")
def digits_run(default_job):
    """(work, run dir, CompletedProcess): the default job (shared, tests/conftest.py)."""
    return default_job


def test_list_and_config():
    listing = run_cli("list")  # a real process: the module entry point and its exit code
    assert listing.returncode == 0
    for name in ("digits", "digits_mlp", "image_folder", "resnet50"):
        assert name in listing.stdout
    assert "(default)" in listing.stdout
    shown = call_cli("config", "digits", "--set", "train.epochs=3")
    assert shown.returncode == 0 and "epochs: 3" in shown.stdout


@pytest.mark.parametrize("args, fragments", [
    (["train", "nope"], ["Unknown experiment", "Received: experiment='nope'"]),
    (["train", "digits", "--set", "train.epochz=3"], ["Unknown config key", "train.epochs"]),
    (["train", "digits", "--set", "train.epochs=many"], ["Expected int"]),
    (["train", "image_folder"], ["data.path"]),
    (["train", "image_folder", "--set", "data.path=/no/such/folder"], ["Image folder not found"]),
    (["train", "digits", "--config", "/no/such.yaml"], ["Config file not found"]),
    (["evaluate", "/no/such/run"], ["Not a tfsuite run directory"]),
    (["predict", "/no/such/run", "--image", "x.png"], ["Nothing to predict with here"]),
])
def test_user_errors_exit_2_with_one_message(tmp_path, args, fragments):
    assert_user_error(call_cli(*args, cwd=str(tmp_path)), *fragments)
    assert not os.path.exists(tmp_path / "runs")  # a failed start leaves nothing behind


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_a_backend_that_is_not_installed(tmp_path):
    result = call_cli("train", "digits", "--set", "runtime.backend=torch", cwd=str(tmp_path))
    assert_user_error(result, "The torch backend is not installed", 'pip install -e ".[torch]"')


def test_run_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("keep me")
    assert_user_error(call_cli("train", "digits", "--run-dir", str(path)), "is a file")
    assert path.read_text() == "keep me"


def test_flags_before_the_command_apply():
    result = call_cli("--quiet", "config", "digits")
    assert result.returncode == 0 and "epochs: 30" in result.stdout


def test_argparse_errors_exit_2():
    assert run_cli("predict").returncode == 2  # a real process: argparse exits 2 itself


def test_train_writes_a_complete_run_directory(digits_run):
    work, run_dir, result = digits_run
    assert result.returncode == 0, result.stderr
    with open(os.path.join(run_dir, "summary.json")) as f:
        epochs = json.load(f)["epochs_completed"]
    assert "Epoch 1/" in result.stdout and f"Epoch {epochs}/{epochs}" in result.stdout
    assert "test accuracy" in result.stdout
    # Not a terminal (a pipe, as a log file): plain lines, no progress bar or control codes.
    assert "\r" not in result.stdout and "\x1b" not in result.stdout and "ETA" not in result.stdout
    for name in ("config.yaml", "model.keras", "summary.json", "training_curves.png",
                 "history.csv", "checkpoints/best.weights.h5", "evaluation/confusion_matrix.png",
                 "evaluation/per_class.csv"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert os.listdir(os.path.join(run_dir, "logs"))  # TensorBoard
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    for key in ("experiment", "status", "epochs_completed", "resumed_from_epoch",
                "wall_seconds", "images_per_second"):
        assert key in summary
    assert summary["status"] == "completed" and summary["resumed_from_epoch"] is None
    assert summary["metrics"]["test_accuracy"] > 0.85 and "test_top5_accuracy" in summary["metrics"]
    assert summary["data"]["num_classes"] == 10 and summary["data"]["skipped_files"] == 0
    assert {"num_train", "num_val", "num_test", "class_names"} <= set(summary["data"])
    assert {"backend", "strategy", "num_replicas", "precision"} <= set(summary["runtime"])
    # The backend the environment names (the README runs these tests on TF, then on JAX).
    assert summary["runtime"]["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")


def test_evaluate_and_predict(digits_run, tmp_path):
    run_dir = copy_run(digits_run[1], tmp_path / "run")  # evaluate rewrites evaluation/
    evaluated = call_cli("evaluate", run_dir)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "test accuracy" in evaluated.stdout and "precision" in evaluated.stdout
    with open(os.path.join(run_dir, "evaluation", "confusion_matrix.csv")) as f:
        rows = [line.strip().split(",") for line in f]
    assert rows[0][1:] == [str(i) for i in range(10)] and len(rows) == 11
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == 359
    from tfsuite.data.sources import load_digits_arrays

    images, labels, _ = load_digits_arrays()
    paths = []
    for index in (0, 1, 2):
        path = str(tmp_path / f"digit_{labels[index]}.png")
        Image.fromarray(images[index][..., 0]).resize((32, 32), Image.NEAREST).save(path)
        paths.append(path)
    predicted = call_cli("predict", run_dir, *sum((["--image", p] for p in paths), []),
                         "--top-k", "3")
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert sum(l.strip().startswith("1.") for l in lines) == 3
    assert sum(l.strip().startswith("3.") for l in lines) == 3
    correct = 0
    for path, label in zip(paths, labels[:3]):
        first = lines[lines.index(f"{path}:") + 1].split()
        correct += first[1] == str(label)
        assert 0 < float(first[2]) <= 1
    assert correct >= 2
    missing = call_cli("predict", run_dir, "--image", str(tmp_path / "none.png"))
    assert_user_error(missing, "Image file not found")
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    assert_user_error(call_cli("predict", run_dir, "--image", str(junk)), "Cannot read image")


def test_predict_a_folder_agrees_with_evaluate_on_it(digits_run, tmp_path):
    """`predict --image FOLDER --output p.csv` and `evaluate --data FOLDER` on the digits
    written as PNGs: one row per image, the same top-1 accuracy; the run's own evaluation/
    is left as it was."""
    import csv

    run_dir = copy_run(digits_run[1], tmp_path / "run")
    folder = tmp_path / "digits"
    assert call_cli("write-digits", str(folder)).returncode == 0
    with open(os.path.join(run_dir, "evaluation", "per_class.csv")) as f:
        own = f.read()

    predicted = call_cli("predict", run_dir, "--image", str(folder), "--output",
                         str(tmp_path / "p.csv"))
    assert predicted.returncode == 0, predicted.stderr
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1797 and len({row["path"] for row in rows}) == 1797
    assert 0 < float(rows[0]["probability_1"]) <= 1 and "label_5" in rows[0]
    correct = sum(row["label_1"] == os.path.basename(os.path.dirname(row["path"]))
                  for row in rows)

    evaluated = call_cli("evaluate", run_dir, "--data", str(folder))
    assert evaluated.returncode == 0, evaluated.stderr
    with open(os.path.join(run_dir, "evaluation_digits", "metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    assert metrics["num_evaluated"] == 1797 and metrics["skipped_files"] == 0
    assert metrics["test_accuracy"] == pytest.approx(correct / 1797, abs=1e-9)
    with open(os.path.join(run_dir, "evaluation", "per_class.csv")) as f:
        assert f.read() == own

    # A glob and a file together, printed; an existing --output is never replaced.
    printed = call_cli("predict", run_dir, "--image", str(folder / "3" / "*.png"),
                       str(folder / "4" / "0004.png"), "--top-k", "2")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.count(":\n") == len(os.listdir(folder / "3")) + 1
    assert_user_error(call_cli("predict", run_dir, "--image", str(folder), "--output",
                               str(tmp_path / "p.csv")), "--output already exists")
    # A class the model does not have is named.
    os.makedirs(tmp_path / "other" / "cat")
    Image.new("L", (8, 8)).save(tmp_path / "other" / "cat" / "a.png")
    assert_user_error(call_cli("evaluate", run_dir, "--data", str(tmp_path / "other")),
                      "unknown class folders ['cat']")


def test_a_run_folder_of_an_older_version_evaluates_and_exports(default_job, tmp_path):
    """Its config.yaml holds every task's section (as all runs did before sections were
    per task): it still evaluates and exports."""
    import yaml

    from tfsuite.rl.config import DQNConfig
    from tfsuite.translation.config import TranslationConfig

    run_dir = copy_run(default_job[1], tmp_path / "old")
    path = os.path.join(run_dir, "config.yaml")
    with open(path) as f:
        raw = yaml.safe_load(f)
    raw.update(rl=DQNConfig().__dict__, translation=TranslationConfig().__dict__)
    with open(path, "w") as f:
        yaml.safe_dump(raw, f)
    evaluated = call_cli("evaluate", run_dir, "--quiet")
    assert evaluated.returncode == 0 and "test accuracy" in evaluated.stdout, evaluated.stderr
    exported = call_cli("export", run_dir, "--format", "keras", "--out", tmp_path / "served")
    assert exported.returncode == 0, exported.stderr
    assert os.path.isfile(tmp_path / "served" / "digits" / "1" / "model.keras")


def test_finished_runs_are_never_overwritten(default_job, tmp_path):
    work = str(tmp_path)
    run_dir = copy_run(default_job[1], tmp_path / "runs" / "digits")
    before = os.path.getmtime(os.path.join(run_dir, "model.keras"))
    again = call_cli("train", "digits", "--run-dir", run_dir, cwd=work)
    assert_user_error(again, "completed run")
    assert os.path.getmtime(os.path.join(run_dir, "model.keras")) == before
    # Without --run-dir a new run goes next to the finished one.
    fresh = call_cli("train", "digits", "--set", "train.epochs=1", "--set", "compress.methods=[]",
                     "--set", "export.formats=[]", "--quiet", cwd=work)
    assert fresh.returncode == 0, fresh.stderr
    assert os.path.exists(os.path.join(work, "runs", "digits-2", "summary.json"))


def test_a_completed_run_extends_to_more_epochs(tmp_path):
    """3 epochs, then --set train.epochs=6 on the same run: it trains epochs 4-6 from the
    checkpoint and scores as a 6-epoch run does; any other change is refused by name (the
    MLP: what is tested is the run folder, not the model)."""
    quick = ["--set", "compress.methods=[]", "--set", "export.formats=[]", "--quiet"]
    run_dir = str(tmp_path / "extended")
    assert call_cli("train", "digits_mlp", "--run-dir", run_dir, "--set", "train.epochs=3",
                    *quick).returncode == 0
    extended = call_cli("train", "digits_mlp", "--run-dir", run_dir, "--set", "train.epochs=6",
                        *quick)
    assert extended.returncode == 0, extended.stderr
    assert "(extended from epoch 3)" in extended.stdout
    whole = call_cli("train", "digits_mlp", "--run-dir", str(tmp_path / "whole"), "--set",
                     "train.epochs=6", *quick)
    assert whole.returncode == 0, whole.stderr
    summary, reference = (_read(os.path.join(d, "summary.json"))
                          for d in (run_dir, str(tmp_path / "whole")))
    assert summary["extended_from_epoch"] == 3 and summary["epochs_completed"] == 6
    with open(os.path.join(run_dir, "history.csv")) as f:
        assert [row.split(",")[0] for row in f.read().split()[1:]] == [str(e) for e in range(6)]
    assert abs(summary["metrics"]["test_accuracy"]
               - reference["metrics"]["test_accuracy"]) <= 0.01

    model = os.path.join(run_dir, "model.keras")
    before = os.path.getmtime(model)
    for changes, named in ((["train.epochs=9", "train.learning_rate=0.1"],
                            "train.learning_rate: 0.05 -> 0.1"),
                           (["train.epochs=4"], "train.epochs: 6 -> 4")):
        refused = call_cli("train", "digits_mlp", "--run-dir", run_dir,
                           *sum((["--set", c] for c in changes), []), *quick)
        assert_user_error(refused, "completed run", named)
    assert os.path.getmtime(model) == before


def test_unfinished_run_with_another_config_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    assert_user_error(call_cli("train", "digits", "--run-dir", str(run_dir)), "not a tfsuite run")
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_write_digits_then_train_image_folder(tmp_path):
    out = str(tmp_path / "digits_folder")
    written = call_cli("write-digits", out)
    assert written.returncode == 0 and "1797" in written.stdout
    assert len(os.listdir(os.path.join(out, "3"))) > 150
    result = call_cli("train", "image_folder", "--set", f"data.path={out}",
                      "--set", "train.epochs=1", "--set", "data.image_size=[16,16]",
                      "--set", "model.name=cnn", "--set", "export.formats=[]",
                      "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert _read(tmp_path / "run" / "summary.json")["data"]["num_classes"] == 10


def _read(path):
    with open(path) as f:
        return json.load(f)


def test_only_known_noisy_warnings_are_silenced():
    import warnings

    from tfsuite.cli import _configure_logging

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _configure_logging(debug=False)
        warnings.warn("Layer Conv2D does not have a `quantize` method implemented.", UserWarning)
        warnings.warn("A real problem, e.g. a layer that will not be saved.", UserWarning)
    assert [str(w.message) for w in caught] == [
        "A real problem, e.g. a layer that will not be saved."]


def test_diagnose_calls_the_default_job_healthy(digits_run, tmp_path):
    """The README's default job: `diagnose` finds nothing wrong (no false problem)."""
    run_dir = copy_run(digits_run[1], tmp_path / "run")
    result = call_cli("diagnose", run_dir)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(run_dir, "diagnosis", "diagnose.json"), encoding="utf-8") as f:
        report = json.load(f)
    names = {v["name"]: v["severity"] for v in report["verdicts"]}
    assert names.get("healthy") == "info" and report["worst"] == "info", names
    assert "problem" not in names.values() and "warning" not in names.values()
    assert result.stdout.splitlines()[0].endswith(": healthy")
