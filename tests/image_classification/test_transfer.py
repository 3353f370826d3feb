"""The transfer-learning experiment: pretrained weights first (or a clear error before any
run folder is written), then the head, then fine-tuning, each phase named."""

import os

from tests.conftest import assert_user_error, call_cli, write_messy_folder


def test_offline_imagenet_weights_fail_before_the_run_folder(tmp_path):
    root, _, _ = write_messy_folder(str(tmp_path / "photos"), per_class=4)
    run_dir = tmp_path / "run"
    # No weights in this Keras cache, and a proxy that refuses: as on an offline machine.
    result = call_cli("train", "image_folder_transfer", "--set", f"data.path={root}",
                      "--run-dir", str(run_dir),
                      env={"KERAS_HOME": str(tmp_path / "keras"),
                           "HTTPS_PROXY": "http://127.0.0.1:9"})
    assert_user_error(result, "not in the Keras cache and could not be downloaded",
                      "--set model.weights=")
    assert not run_dir.exists()


def test_transfer_trains_the_head_then_fine_tunes(tmp_path):
    import keras

    root, _, _ = write_messy_folder(str(tmp_path / "photos"), per_class=12)
    weights = str(tmp_path / "mobilenetv3small.weights.h5")  # stands in for ImageNet's
    keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                        pooling="avg").save_weights(weights)
    run_dir = str(tmp_path / "run")
    result = call_cli("train", "image_folder_transfer", "--set", f"data.path={root}",
                      "--run-dir", run_dir, "--set", "model.name=mobilenetv3small",
                      "--set", f"model.weights={weights}", "--set", "data.image_size=[32,32]",
                      "--set", "train.epochs=1", "--set", "train.fine_tune_epochs=1",
                      "--set", "compress.methods=[]", "--set", "export.formats=[]")
    assert result.returncode == 0, result.stderr
    assert "Epoch 1/2 (head, base frozen) - " in result.stdout
    assert "Epoch 2/2 (fine-tuning) - " in result.stdout and "lr: 1e-05" in result.stdout
    assert os.path.isfile(os.path.join(run_dir, "training_curves.png"))
