"""Resume after SIGKILL, NaN handling, and the training options, through the real CLI."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tfsuite
from tests.conftest import REPO, call_cli

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

RESUME_ARGS = ["train", "digits_mlp", "--set", "train.epochs=14", "--set", "runtime.seed=5"]


def _summary(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def _completed_epochs(run_dir):
    path = os.path.join(run_dir, "checkpoints", "state.json")
    try:
        with open(path) as f:
            return json.load(f)["epochs_completed"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_unbroken_run(tmp_path):
    broken, unbroken = str(tmp_path / "broken"), str(tmp_path / "unbroken")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, "-m", "tfsuite.run", *RESUME_ARGS,
                                "--run-dir", broken], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _completed_epochs(broken) < 5 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = _completed_epochs(broken)
    assert 5 <= killed_after < 14, killed_after
    assert not os.path.exists(os.path.join(broken, "summary.json"))

    # The same command again (the killed run needed a process; these two do not).
    resumed = call_cli(*RESUME_ARGS, "--run-dir", broken)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Epoch {killed_after + 1}/14" in resumed.stdout
    assert "Epoch 1/14" not in resumed.stdout
    summary = _summary(broken)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 14
    assert summary["resumed_from_epoch"] == killed_after

    # Optimizer state came back: its step counter covers all 14 epochs.
    model = tfsuite.load_model(os.path.join(broken, "model.keras"))
    steps_per_epoch = int(np.ceil(summary["data"]["num_train"] / 32))
    assert int(model.optimizer.iterations) == 14 * steps_per_epoch

    assert call_cli(*RESUME_ARGS, "--run-dir", unbroken).returncode == 0
    reference = _summary(unbroken)["metrics"]["test_accuracy"]
    assert summary["metrics"]["test_accuracy"] >= reference - 0.02
    assert summary["metrics"]["test_accuracy"] > 0.9


def test_nan_loss_stops_with_a_clear_report(tmp_path):
    run_dir = str(tmp_path / "nan")
    result = call_cli("train", "digits_mlp", "--run-dir", run_dir, "--set", "train.epochs=3",
                      "--set", "train.optimizer=sgd", "--set", "train.learning_rate=1e30")
    assert result.returncode == 2
    assert "loss became nan" in result.stderr.lower() and "Traceback" not in result.stderr
    assert "train.learning_rate" in result.stderr and "Received:" in result.stderr
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))
    assert os.path.exists(os.path.join(run_dir, "config.yaml"))

