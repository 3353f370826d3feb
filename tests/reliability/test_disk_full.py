"""A disk that fills up (issue 21): one clear error saying how much space is needed and
where, exit 2, the last checkpoint intact, and the same command resumes once there is room.
Before, `train` printed OSError tracebacks and then crashed (exit 139); `export` printed a
traceback. The disk is a small tmpfs; where this machine cannot mount one, the tests skip."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REPO, assert_user_error, call_cli, run_cli


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk, leave=0):
    """Fills the disk but for `leave` bytes."""
    with open(disk / "filler", "wb") as f:
        try:
            while shutil.disk_usage(disk).free > leave:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_disk_that_fills_before_or_during_train_and_export_is_one_clear_error(small_disk,
                                                                              tmp_path):
    run_dir = small_disk / "run"
    args = ("train", "digits_mlp", "--set", "train.epochs=8", "--run-dir", run_dir)
    fill(small_disk, leave=2 ** 21)  # too little for the run's checkpoints: refused first
    refused = run_cli(*args, cwd=tmp_path)
    assert_user_error(refused, "Not enough free disk space", "MB free")
    (small_disk / "filler").unlink()

    process = subprocess.Popen([sys.executable, "-m", "tfsuite.run", *map(str, args)],
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": REPO},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = run_dir / "checkpoints" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    fill(small_disk)
    stdout, stderr = process.communicate(timeout=300)
    result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    assert_user_error(result, "The disk is full", "MB free on the file system of",
                      str(run_dir))
    saved = json.loads(state.read_text())  # the last checkpoint is whole
    assert saved["epochs_completed"] >= 1

    (small_disk / "filler").unlink()
    resumed = call_cli(*args, "--quiet", cwd=tmp_path)  # in this process: it has room
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from_epoch"]

    fill(small_disk)
    export = run_cli("export", run_dir, "--format", "saved_model", "--out",
                     small_disk / "exports", cwd=tmp_path)
    assert_user_error(export, "disk is full")
    assert not (run_dir / "export.json").exists()
    assert not list((small_disk / "exports").glob("*/[0-9]*"))  # nothing published
