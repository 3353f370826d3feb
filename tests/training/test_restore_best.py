"""`train.restore_best`: which epoch's weights model.keras holds, said in summary.json and on
the curves."""

import os

import numpy as np

from tests.conftest import call_cli


def test_restore_best_saves_the_best_epoch_not_the_last(tmp_path):
    import keras

    run_dir = str(tmp_path / "run")
    # Top-5 accuracy reaches 1.0 within a few epochs and stays: the first epoch there is
    # the best (a tie is no improvement), so the best epoch comes before the last.
    result = call_cli("train", "digits", "--run-dir", run_dir, "--set", "train.epochs=6",
                      "--set", "train.monitor=val_top5_accuracy", "--set",
                      "train.restore_best=true", "--set", "compress.methods=[]", "--set",
                      "export.formats=[]", "--quiet")
    assert result.returncode == 0, result.stderr
    from tfsuite.io import read_json

    summary = read_json(os.path.join(run_dir, "summary.json"))
    best = summary["best_epoch"]
    assert summary["restore_best"] is True and summary["model_epoch"] == best < 6

    saved = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    reference = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    reference.load_weights(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
    for a, b in zip(saved.weights, reference.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    reference.load_weights(os.path.join(run_dir, "checkpoints", "epoch-0006.weights.h5"))
    assert any(not np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
               for a, b in zip(saved.weights, reference.weights))
    assert len(summary.get("metrics", {})) and "final_learning_rate" not in summary["metrics"]
