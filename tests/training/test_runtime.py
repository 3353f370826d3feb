"""Strategies and precision through real training runs (fresh processes: TensorFlow's
device setup can only happen once per process)."""

import json
import os

import pytest

from tests.conftest import call_cli, run_cli


def _summary(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_auto_strategy_picks_mirrored_with_two_devices_and_mixed_bfloat16(tmp_path):
    # MirroredStrategy over two CPUs matching one device, step for step, is
    # tests/training/test_distributed.py's; a mixed-precision export is tests/export's.
    run_dir = str(tmp_path / "auto")
    result = run_cli("train", "digits_mlp", "--run-dir", run_dir, "--set", "train.epochs=2",
                     "--set", "runtime.cpu_devices=2",
                     "--set", "runtime.precision=mixed_bfloat16", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = _summary(run_dir)
    assert summary["runtime"]["strategy"] == "mirrored"
    assert summary["runtime"]["precision"] == "mixed_bfloat16"
    assert summary["metrics"]["test_accuracy"] > 0.5  # two epochs; chance is 0.1
    assert "Epoch" not in result.stdout  # --quiet


def test_training_options_run_together(tmp_path):
    run_dir = str(tmp_path / "options")
    result = run_cli(
        "train", "digits_mlp", "--run-dir", run_dir, "--set", "train.epochs=3",
        "--set", "train.optimizer=adamw", "--set", "train.weight_decay=1e-4",
        "--set", "train.schedule=step", "--set", "train.step_epochs=1",
        "--set", "train.label_smoothing=0.1", "--set", "train.clipnorm=1.0",
        "--set", "train.gradient_accumulation_steps=2", "--set", "train.ema=true",
        "--set", "train.early_stopping_patience=5", "--set", "model.l2=1e-4",
        "--set", "runtime.deterministic=true", "--set", "runtime.strategy=none")
    assert result.returncode == 0, result.stderr
    summary = _summary(run_dir)
    assert summary["epochs_completed"] == 3 and summary["metrics"]["test_accuracy"] > 0.5
    lines = [l for l in result.stdout.splitlines() if l.startswith("Epoch ")]
    assert [l.split(" - ")[0] for l in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    # digits_mlp starts at 0.05; the step schedule divides it by 10 after every epoch.
    assert lines[0].endswith("lr: 0.005") and lines[1].endswith("lr: 0.0005")


def test_transfer_learning_phases(tmp_path):
    run_dir = str(tmp_path / "finetune")
    result = call_cli("train", "digits", "--run-dir", run_dir, "--set", "train.epochs=2",
                      "--set", "compress.methods=[]", "--set", "export.formats=[]",
                      "--set", "model.freeze_base=true", "--set", "model.fine_tune_layers=2",
                      "--set", "train.fine_tune_epochs=2", "--set", "data.augment.rotation_range=0")
    assert result.returncode == 0, result.stderr
    assert "Epoch 4/4" in result.stdout
    assert _summary(run_dir)["epochs_completed"] == 4

