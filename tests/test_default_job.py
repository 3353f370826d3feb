"""The README's first command: `python -m tfsuite.run` trains the default experiment."""

import json
import os

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_default_job_reaches_97_percent(tmp_path):
    result = run_cli(cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Epoch 30/30" in result.stdout and "Done: digits" in result.stdout
    with open(os.path.join(tmp_path, "runs", "digits", "summary.json")) as f:
        summary = json.load(f)
    assert summary["metrics"]["test_accuracy"] >= 0.97
    assert summary["status"] == "completed" and summary["epochs_completed"] == 30
