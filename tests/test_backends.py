"""The same experiment on the JAX backend (TensorFlow stays the data engine)."""

import json
import os

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_digits_trains_and_predicts_on_jax(tmp_path):
    import jax  # noqa: F401  a [test] dependency: its absence is a failure, not a skip
    run_dir = str(tmp_path / "jax")
    env = {"KERAS_BACKEND": "jax"}
    # Compression and export after JAX training have tests of their own (the pinned run
    # below, tests/export/test_backends.py).
    result = run_cli("train", "digits", "--run-dir", run_dir, "--set", "train.epochs=3",
                     "--set", "train.warmup_epochs=0", "--set", "compress.methods=[]",
                     "--set", "export.formats=[]", env=env)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["runtime"]["backend"] == "jax"
    assert summary["metrics"]["test_accuracy"] > 0.8
    evaluated = run_cli("evaluate", run_dir, env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    # The runtime.backend key pins the backend for a run whatever the environment says;
    # its LiteRT quantization still runs in a TensorFlow-backend process.
    pinned = run_cli("train", "digits_mlp", "--run-dir", str(tmp_path / "pinned"),
                     "--set", "runtime.backend=jax", "--set", "train.epochs=1",
                     "--set", "compress.methods=[quantize]", "--quiet")
    assert pinned.returncode == 0, pinned.stderr
    with open(tmp_path / "pinned" / "summary.json") as f:
        summary = json.load(f)
    assert summary["runtime"]["backend"] == "jax"
    assert summary["compress"]["quantize"]["file"] == "model.tflite"
