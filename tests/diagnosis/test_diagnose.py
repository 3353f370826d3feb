"""`diagnose`, `lr-find` and `doctor` on runs made to show one problem each (the default
job's healthy verdict is checked in test_cli.py, beside the other readers of that run)."""

import json
import os
import sys

import pytest

from tests.conftest import assert_user_error, call_cli, run_cli

MLP = ("train", "digits_mlp", "--quiet")


def _diagnose(run_dir, *flags):
    result = call_cli("diagnose", run_dir, *flags)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(run_dir, "diagnosis", "diagnose.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert os.path.getsize(os.path.join(run_dir, "diagnosis", "diagnosis.png")) > 5000
    return report, result.stdout, {v["name"]: v for v in report["verdicts"]}


def _check_fixes(verdict, experiment, tmp_path, *overrides):
    """Every fix is a `--set` line that `config` takes for this experiment."""
    assert verdict["fixes"], verdict
    for fix in verdict["fixes"]:
        assert fix.startswith("--set "), fix
        parts = [p.strip() for p in fix.split("--set") if p.strip()]
        args = [a for part in parts for a in ("--set", part)]
        overridden = [a for o in overrides for a in ("--set", o)]
        result = call_cli("config", experiment, *overridden, *args, cwd=tmp_path)
        assert result.returncode == 0, (fix, result.stderr)


def test_overfitting_mlp_on_a_small_split(tmp_path):
    overrides = ["train.epochs=40", "data.test_split=0.5", "data.validation_split=0.4",
                 "model.dropout=0", "train.optimizer=adam", "train.learning_rate=0.003",
                 "train.schedule=constant"]
    run_dir = str(tmp_path / "overfit")
    result = call_cli(*MLP, "--run-dir", run_dir, *[a for o in overrides for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    report, text, verdicts = _diagnose(run_dir)
    overfit = verdicts["overfitting"]
    assert overfit["severity"] == "problem" and report["worst"] == "problem"
    evidence = overfit["evidence"]
    assert evidence["accuracy_gap"] > 0.03 and evidence["train_loss_fall_after_best"] > 0.3
    assert evidence["best_epoch"] < evidence["epochs"]
    assert "healthy" not in verdicts and "PROBLEM  overfitting" in text
    assert any("augment" in fix for fix in overfit["fixes"])
    _check_fixes(overfit, "digits_mlp", tmp_path, *overrides)


def test_divergence_at_100x_the_learning_rate(tmp_path):
    """digits_mlp's rate is 0.05: at 5.0 the loss explodes in the first epoch."""
    run_dir = str(tmp_path / "diverged")
    result = call_cli(*MLP, "--run-dir", run_dir, "--set", "train.learning_rate=5.0",
                      "--set", "train.epochs=4")
    assert result.returncode == 0, result.stderr
    report, text, verdicts = _diagnose(run_dir)
    divergence = verdicts["divergence"]
    assert divergence["severity"] == "problem", divergence
    assert divergence["evidence"]["peak_loss"] > 100 * divergence["evidence"]["first_step_loss"]
    assert divergence["evidence"]["peak_epoch"] == 1
    assert "--set train.learning_rate=0.5" in divergence["fixes"]
    assert "underfitting" not in verdicts  # a diverged model is not called underfitted
    _check_fixes(divergence, "digits_mlp", tmp_path)


def test_nan_replayed_to_its_first_layer(tmp_path):
    """At 1,000x the rate the loss becomes NaN: the trainer records where, and the probe
    replays the epoch to the first layer whose output is not finite."""
    run_dir = str(tmp_path / "nan")
    result = call_cli(*MLP, "--run-dir", run_dir, "--set", "train.learning_rate=50",
                      "--set", "train.epochs=2")
    assert_user_error(result, "the loss became nan")
    report, text, verdicts = _diagnose(run_dir, "--probe")
    assert report["status"] == "diverged"
    evidence = verdicts["divergence"]["evidence"]
    assert evidence["loss"] == "nan" and evidence["epoch"] == 1 and evidence["batch"] >= 1
    assert evidence["replay_reproduced"] and evidence["first_nonfinite_layer"]
    # From the run's initial weights and batch order: the same batch as the run's.
    assert evidence["replay_batch"] == evidence["batch"], evidence
    assert "first layer whose output is not finite" in text


def test_input_bound_image_folder_without_cache(tmp_path):
    """Heavy augmentation on PNG files decoded every epoch, feeding a small MLP."""
    folder = tmp_path / "digits"
    assert call_cli("write-digits", str(folder)).returncode == 0
    run_dir = str(tmp_path / "folder")
    # Processes of their own: tf.data decoding files next to the other tests' models in
    # one process crashed the worker.
    result = run_cli("train", "image_folder", "--quiet", "--run-dir", run_dir,
                      *[a for o in (f"data.path={folder}", "data.cache=false",
                                    "model.name=mlp", "train.epochs=1",
                                    "data.image_size=[32,32]", "data.color_mode=grayscale",
                                    "data.augment.rotation_range=30",
                                    "data.augment.shear_range=10", "data.augment.zoom_range=0.3",
                                    "data.augment.brightness_range=[0.7,1.3]",
                                    "data.augment.channel_shift_range=20")
                        for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    probed = run_cli("diagnose", run_dir, "--probe")
    if probed.returncode < 0:  # killed by a signal: TensorFlow's native threads crashed
        # once in ~60 probes of this folder (SIGSEGV, not reproduced under faulthandler):
        # a known flake, tried again once, not hidden (README, Known limits).
        probed = run_cli("diagnose", run_dir, "--probe")
    assert probed.returncode == 0, probed.stderr
    with open(os.path.join(run_dir, "diagnosis", "diagnose.json"), encoding="utf-8") as f:
        verdicts = {v["name"]: v for v in json.load(f)["verdicts"]}
    bound = verdicts["input_bound"]
    assert bound["severity"] in ("warning", "problem"), bound
    evidence = bound["evidence"]
    assert evidence["data_share"] >= 0.3
    assert evidence["input_batches_per_second"] < evidence["compute_batches_per_second"]
    assert "--set data.cache=true" in bound["fixes"]
    assert "--set data.augment_on=device" in bound["fixes"]


def test_lr_find_suggests_and_applies(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("train:\n  epochs: 3\n")
    result = call_cli("lr-find", "digits_mlp", "--steps", "60", "--apply", str(config),
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "runs" / "digits_mlp-lr-find" / "lr_find.json") as f:
        found = json.load(f)
    assert 1e-5 < found["suggestion"] < 10 and len(found["losses"]) >= 20
    assert min(found["smoothed_losses"]) < found["smoothed_losses"][0]
    assert "suggested learning rate" in result.stdout
    written = config.read_text()
    assert "epochs: 3" in written and "learning_rate:" in written
    shown = call_cli("config", "digits_mlp", "--config", str(config), cwd=tmp_path)
    rate = float(f"{found['suggestion']:.3g}")
    assert f"learning_rate: {rate}" in shown.stdout
    # A DQN run's rate is not found this way: one clear error, nothing written.
    refused = call_cli("lr-find", "cartpole_dqn", "--out", str(tmp_path / "dqn"))
    assert_user_error(refused, "lr-find trains")
    assert not (tmp_path / "dqn").exists()


def test_doctor_lists_every_component():
    result = call_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("python", "tfsuite", "tensorflow", "keras", "onnxruntime", "tf-keras",
                 "jax", "tensorflow devices", "xla", "onnxruntime providers", "litert",
                 "gymnasium rendering", "tensorrt"):
        assert f" {name} " in result.stdout, name
    assert "Everything the default job needs works" in result.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="hides a package through PYTHONPATH")
def test_doctor_names_a_broken_package(tmp_path):
    hidden = tmp_path / "hidden" / "tensorflow_serving"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    result = run_cli("doctor", env={"PYTHONPATH": str(tmp_path / "hidden")}, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(l for l in result.stdout.splitlines() if " tensorflow-serving-api " in l)
    assert "PROBLEM" in line and "hidden by the test" in line
    assert 'fix: pip install --force-reinstall "tensorflow-serving-api==2.21.*"' in result.stdout
    assert "Broken: tensorflow-serving-api" in result.stdout
