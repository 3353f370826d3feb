"""Runs killed and started again (issue 21): the resumed run ends as an uninterrupted one
would, and its files say what happened once."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np

from tests.conftest import REPO, assert_user_error, call_cli

EPOCHS = 12
ARGS = ("train", "digits_mlp", "--set", f"train.epochs={EPOCHS}",
        "--set", f"train.early_stopping_patience={EPOCHS}", "--quiet")


def start_and_kill(run_dir, cwd, epochs=2, timeout=240, while_running=None, args=ARGS):
    """Starts `train` in a process and kills it (SIGKILL) once `epochs` epochs are saved
    (after calling `while_running(process)` with the process paused); returns the saved
    state."""
    env = {**os.environ, "PYTHONPATH": REPO}
    process = subprocess.Popen([sys.executable, "-m", "tfsuite.run", *args, "--run-dir",
                                str(run_dir)], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    state_file = run_dir / "checkpoints" / "state.json"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if json.loads(state_file.read_text())["epochs_completed"] >= epochs:
                    if while_running is not None:
                        process.send_signal(signal.SIGSTOP)  # paused, it keeps its lock
                        while_running(process)
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        stderr = process.communicate(timeout=60)[1]
    state = json.loads(state_file.read_text())
    assert epochs <= state["epochs_completed"] < EPOCHS, stderr
    return state


def layer_weights(path):
    """{name: array} of the layer weights in a .weights.h5 file or a .keras archive."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            data = archive.read("model.weights.h5")
        path = path.with_suffix(".weights.h5")
        path.write_bytes(data)
    weights = {}
    with h5py.File(path, "r") as f:
        f["layers"].visititems(lambda name, item: weights.__setitem__(name, item[()])
                               if isinstance(item, h5py.Dataset) else None)
    return weights


def check_refused(run_dir, cwd, process):
    """A second `train` (or `compress`) on a run directory another process is training:
    before, no lock (an h5py traceback, or history.csv rows interleaved)."""
    listing = sorted(os.listdir(run_dir))
    for args in (ARGS, ("compress", run_dir, "--method", "low_rank")):
        result = call_cli(*args, "--run-dir", run_dir, cwd=cwd) if args is ARGS else \
            call_cli(*args, cwd=cwd)
        assert_user_error(result, "in use by another tfsuite process", f"pid {process.pid}")
    assert sorted(os.listdir(run_dir)) == listing


def test_early_stopping_keeps_the_best_epoch_across_a_kill_and_the_history_once(tmp_path):
    """Before, the resumed run saved the weights of the best epoch *it* saw (Keras keeps
    them in memory), and history.csv kept the rows written after the last checkpoint (the
    row of the epoch a NaN stopped, or one a kill cut short): that epoch appeared twice."""
    run_dir = tmp_path / "run"
    state = start_and_kill(run_dir, tmp_path, while_running=lambda process: check_refused(
        run_dir, tmp_path, process))
    # Make the best epoch so far unbeatable, so it must be the one the run ends with.
    best = state["best_epoch"]
    state["history"]["val_accuracy"][best - 1] = state["best"] = 1.0
    (run_dir / "checkpoints" / "state.json").write_text(json.dumps(state))
    # The row a NaN stop leaves for the epoch after the checkpoint.
    history = run_dir / "history.csv"
    rows = list(csv.DictReader(history.open()))
    nan_row = {**rows[-1], "epoch": str(state["epochs_completed"]), "loss": "nan"}
    with history.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0])).writerow(nan_row)

    result = call_cli(*ARGS, "--run-dir", run_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_epoch"] == best and summary["resumed_from_epoch"]
    saved = layer_weights(run_dir / "model.keras")
    kept = layer_weights(run_dir / "checkpoints" / "best.weights.h5")
    assert saved.keys() == kept.keys() and saved
    for name in saved:
        np.testing.assert_array_equal(saved[name], kept[name], err_msg=name)
    rows = list(csv.DictReader(history.open()))
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    assert all(np.isfinite(float(r["loss"])) for r in rows)


def test_an_extension_killed_midway_resumes_with_the_same_command(tmp_path):
    """A finished 2-epoch run extended to 12 and killed at epoch 4 or later: the same command
    finishes the extension, which the summary records once."""
    run_dir = tmp_path / "run"
    short = [a if a != f"train.epochs={EPOCHS}" else "train.epochs=2" for a in ARGS]
    assert call_cli(*short, "--run-dir", str(run_dir), cwd=str(tmp_path)).returncode == 0
    with open(run_dir / "summary.json") as f:
        assert json.load(f)["epochs_completed"] == 2
    start_and_kill(run_dir, tmp_path, epochs=4)
    with open(run_dir / "summary.json") as f:
        assert json.load(f)["status"] == "extending"  # unfinished until the longer run ends
    again = call_cli(*ARGS, "--run-dir", str(run_dir), cwd=str(tmp_path))
    assert again.returncode == 0, again.stderr
    with open(run_dir / "summary.json") as f:
        summary = json.load(f)
    assert summary["status"] == "completed" and summary["epochs_completed"] == EPOCHS
    assert summary["extended_from_epoch"] == 2
    with open(run_dir / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == EPOCHS
