"""Other kinds of runs (JAX, mixed precision, other models) export through the same checks."""

import json
import os

from tests.conftest import run_cli


def _report(work, run_dir):
    with open(os.path.join(work, run_dir, "export.json")) as f:
        return json.load(f)


def test_jax_trained_run_is_quantized_and_exported_after_training(tmp_path):
    """`runtime.backend=jax` pins the run's backend whatever the environment says (none
    here); the train stage then hands LiteRT quantization and the TensorFlow formats to a
    TensorFlow-backend process."""
    import jax  # noqa: F401  a [test] dependency: its absence is a failure, not a skip
    result = run_cli("train", "digits_mlp", "--run-dir", "jax_run", "--set", "train.epochs=1",
                     "--set", "runtime.backend=jax", "--set", "compress.methods=[quantize]",
                     "--set", "export.formats=[saved_model,onnx,keras]", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "TensorFlow-backend process" in result.stdout
    assert result.stdout.count("Exported digits_mlp version 1") == 1
    report = _report(tmp_path, "jax_run")
    assert set(report["formats"]) == {"saved_model", "onnx", "keras"}
    assert all(r["max_abs_diff"] <= 1e-4 for r in report["formats"].values())
    with open(tmp_path / "jax_run" / "summary.json") as f:
        summary = json.load(f)
    assert summary["runtime"]["backend"] == "jax"
    assert summary["compress"]["quantize"]["file"] == "model.tflite"
    assert summary["export"]["path"] == str(tmp_path / "saved_models" / "digits_mlp" / "1")


def test_mixed_precision_run_is_exported_in_float32(tmp_path):
    result = run_cli("train", "digits_mlp", "--run-dir", "mixed", "--set", "train.epochs=1",
                     "--set", "runtime.precision=mixed_bfloat16",
                     "--set", "export.formats=[saved_model,litert]", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = _report(tmp_path, "mixed")
    assert report["reference"]["rebuilt_in_float32"]
    assert report["reference"]["max_abs_diff_vs_mixed_precision"] > 0
    assert all(r["max_abs_diff"] <= 1e-4 and r["top1_agreement"] == 1.0
               for r in report["formats"].values())
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(tmp_path / "saved_models" / "digits_mlp" / "1" / "saved_model.pb", "rb") as f:
        saved.ParseFromString(f.read())
    graph = str(saved.meta_graphs[0].graph_def)
    assert "DT_FLOAT" in graph and "DT_BFLOAT16" not in graph


def test_resnet_with_featurewise_normalization_exports(tmp_path):
    """The Normalization layer's statistics must stay constants, not become ONNX inputs."""
    result = run_cli("train", "image_folder", "--run-dir", "resnet", "--set",
                     "data.source=synthetic", "--set", "data.num_examples=64", "--set",
                     "data.image_size=[32,32]", "--set", "train.epochs=1", "--set",
                     "data.augment.featurewise_center=true", "--set",
                     "data.augment.featurewise_std_normalization=true", "--set",
                     "export.formats=[all]", "--quiet", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = _report(tmp_path, "resnet")
    assert {"saved_model", "onnx", "litert", "keras"} <= set(report["formats"])
    assert all(r["max_abs_diff"] <= 1e-4 for r in report["formats"].values())
    import onnxruntime

    session = onnxruntime.InferenceSession(report["formats"]["onnx"]["path"])
    assert [i.name for i in session.get_inputs()] == ["image"]
