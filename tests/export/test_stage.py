"""`python -m tfsuite.run export`: every artifact verified, versions never overwritten."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import call_cli, tree_hashes


def _export(work, *args):
    """`export run ARGS` in the work folder, through the CLI's main in this process."""
    return call_cli("export", "run", *args, cwd=work)


def _read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def first_export(default_job):
    """The default job's own export stage (every format, into saved_models/digits/1 of its
    work folder): what `export` writes, made once. Read only."""
    work, run_dir, result = default_job
    assert result.returncode == 0, result.stderr
    return work, run_dir, result.stdout, os.path.join(work, "saved_models", "digits", "1")


def test_every_format_matches_the_keras_model(first_export):
    work, run_dir, stdout, version_dir = first_export
    report = _read(os.path.join(run_dir, "export.json"))
    assert report["version"] == 1 and report["path"] == version_dir
    assert report["reference"]["inputs"] == "test split"
    assert report["reference"]["num_samples"] == 256
    float32_formats = ("saved_model", "onnx", "litert", "keras")
    assert set(float32_formats) <= set(report["formats"])
    for name in float32_formats:
        result = report["formats"][name]
        assert result["max_abs_diff"] <= 1e-4, name
        assert result["top1_agreement"] == 1.0, name
        assert result["verified"] and result["size_bytes"] > 10_000, name
        assert result["latency_ms"] > 0, name
        assert os.path.exists(result["path"]), name
        assert f"{os.path.relpath(result['path'], work)}\n" in stdout  # each path is printed
    assert report["formats"]["onnx"]["dynamic_batch"] and report["formats"]["onnx"]["opset"] == 17
    # The version folder carries the same report, for whoever copies it elsewhere.
    assert _read(os.path.join(version_dir, "export.json"))["formats"] == report["formats"]


def test_tensorrt_is_reported_with_its_trtexec_command(first_export):
    from tfsuite.export.tensorrt import unavailable_reason

    _, run_dir, stdout, version_dir = first_export
    report = _read(os.path.join(run_dir, "export.json"))
    if unavailable_reason() is None:  # a CUDA machine with TensorRT builds the engine
        assert report["formats"]["tensorrt"]["verified"]
        return
    skipped = report["skipped"]["tensorrt"]
    assert skipped["reason"].startswith("TensorRT cannot run here: ")
    onnx_path = os.path.join(version_dir, "model.onnx")
    assert skipped["command"] == (
        f"trtexec --onnx={onnx_path} --saveEngine={os.path.join(version_dir, 'model.engine')} "
        "--fp16 --minShapes=image:1x16x16x1 --optShapes=image:32x16x16x1 "
        "--maxShapes=image:64x16x16x1")
    assert skipped["command"] in stdout
    assert os.path.isfile(onnx_path)  # the engine's source is there


def test_saved_model_serves_the_signature(first_export):
    import tensorflow as tf

    version_dir = first_export[3]
    loaded = tf.saved_model.load(version_dir)
    signature = loaded.signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["image"]
    assert inputs["image"].shape.as_list() == [None, 16, 16, 1]
    assert inputs["image"].dtype == tf.float32
    assert set(signature.structured_outputs) == {"probabilities", "class_id"}
    images = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 1)).astype(np.float32)
    outputs = signature(image=tf.constant(images))
    np.testing.assert_array_equal(outputs["class_id"].numpy(),
                                  outputs["probabilities"].numpy().argmax(1))
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", version_dir, "--tag_set", "serve",
                            "--signature_def", "serving_default"],
                           capture_output=True, text=True, check=True).stdout
    assert "inputs['image']" in shown and "outputs['probabilities']" in shown
    assert "(-1, 16, 16, 1)" in shown


def test_saved_model_graph_has_no_augmentation_or_xla_ops(first_export):
    from tensorflow.core.protobuf import saved_model_pb2

    from tfsuite.export.saved_model import xla_only_ops

    version_dir = first_export[3]
    assert xla_only_ops(version_dir) == []
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    graph = saved.meta_graphs[0].graph_def
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function
                                         for n in f.node_def}
    assert "Conv2D" in ops
    assert not [op for op in ops if "Random" in op or "ImageProjectiveTransform" in op]


def test_tf_serving_files(first_export):
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow_serving.apis import prediction_log_pb2
    from tensorflow_serving.config import model_server_config_pb2

    work, _, stdout, version_dir = first_export
    config_path = os.path.join(work, "saved_models", "digits", "models.config")
    with open(config_path) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert entry.name == "digits" and entry.model_platform == "tensorflow"
    assert entry.base_path == os.path.dirname(version_dir)
    assert "tensorflow_model_server --rest_api_port=8501" in stdout
    # The REST body, decoded the way TF Serving's row format does, runs through the signature.
    body = _read(os.path.join(version_dir, "request.json"))
    assert body["signature_name"] == "serving_default"
    images = np.array([instance["image"] for instance in body["instances"]], np.float32)
    assert images.shape == (2, 16, 16, 1)
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    assert signature(image=tf.constant(images))["probabilities"].shape == (2, 10)
    # Warm-up records TF Serving replays at load time.
    warmup = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    (record,) = list(tf.data.TFRecordDataset(warmup).as_numpy_iterator())
    log = prediction_log_pb2.PredictionLog.FromString(record)
    dims = log.predict_log.request.inputs["image"].tensor_shape.dim
    assert [d.size for d in dims] == [1, 16, 16, 1]


def test_second_export_is_version_2_and_leaves_version_1_intact(digits_run):
    work, run_dir = digits_run
    assert _export(work, "--out", "served", "--format", "keras").returncode == 0
    version_dir = os.path.join(work, "served", "digits", "1")
    before = tree_hashes(version_dir)
    result = _export(work, "--out", "served", "--format", "onnx,saved_model", "--opset", "13")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(version_dir) == before
    report = _read(os.path.join(run_dir, "export.json"))
    assert report["version"] == 2 and report["formats"]["onnx"]["opset"] == 13
    assert report["previous"][-1]["version"] == 1
    import onnx

    model = onnx.load(os.path.join(work, "served", "digits", "2", "model.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == 13


def test_artifacts_run_at_any_batch_size(first_export):
    from tfsuite.export.litert import LiteRTRunner
    from tfsuite.export.onnx import OnnxRunner

    version_dir = first_export[3]
    for runner in (OnnxRunner(os.path.join(version_dir, "model.onnx")),
                   LiteRTRunner(os.path.join(version_dir, "model.tflite"))):
        for batch in (1, 7, 3):
            images = np.full((batch, 16, 16, 1), 128.0, np.float32)
            assert runner(images).shape == (batch, 10)


def test_every_version_is_servable(digits_run, tmp_path):
    """TF Serving loads the newest numeric folder, so even `--format tflite` brings a SavedModel."""
    work, run_dir = digits_run
    result = _export(work, "--out", str(tmp_path), "--format", "TFLite", "--name", "edge")
    assert result.returncode == 0, result.stderr
    version_dir = tmp_path / "edge" / "1"
    assert (version_dir / "model.tflite").is_file() and (version_dir / "saved_model.pb").is_file()
    report = _read(os.path.join(run_dir, "export.json"))
    # The run was quantized (the default job's compression stage): its int8 file ships too.
    assert set(report["formats"]) == {"saved_model", "litert", "litert_quantized"}
    assert report["formats"]["litert"]["max_abs_diff"] <= 1e-4


def test_predict_accepts_an_exported_saved_model(first_export, tmp_path):
    _, run_dir, _, version_dir = first_export
    from tfsuite.data.sources import write_digits_folder

    write_digits_folder(str(tmp_path / "digit_images"))
    image = str(tmp_path / "digit_images" / "3" / min(os.listdir(tmp_path / "digit_images" / "3")))
    from_export = call_cli("predict", version_dir, "--image", image, "--top-k", "3")
    from_run = call_cli("predict", run_dir, "--image", image, "--top-k", "3")
    assert from_export.returncode == 0, from_export.stderr
    assert from_export.stdout == from_run.stdout
    assert "1. 3 " in from_export.stdout


def test_a_mismatch_is_not_published(digits_run, tmp_path):
    """An impossible tolerance makes every converted format disagree: nothing is served."""
    work, run_dir = digits_run
    before = _read(os.path.join(run_dir, "export.json"))
    result = _export(work, "--out", str(tmp_path), "--format", "onnx",
                     "--set", "export.atol=1e-12")
    assert result.returncode == 3
    assert "Export verification failed: onnx" in result.stderr
    (kept,) = os.listdir(tmp_path / "digits")
    assert kept.startswith("1.rejected-")  # not a version TF Serving would load
    assert _read(os.path.join(run_dir, "export.json")) == before
    again = _export(work, "--out", str(tmp_path), "--format", "keras")
    assert again.returncode == 0, again.stderr
    assert os.path.isdir(tmp_path / "digits" / "2")  # the rejected number stays used


def test_quiet_still_prints_paths_and_the_trtexec_command(digits_run, tmp_path):
    from tfsuite.export.tensorrt import unavailable_reason

    work, _ = digits_run
    result = _export(work, "--out", str(tmp_path), "--format", "onnx,tensorrt", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "exporting" not in result.stdout  # no progress lines
    assert str(tmp_path / "digits" / "1" / "model.onnx") in result.stdout
    if unavailable_reason() is not None:
        assert result.stdout.count("trtexec --onnx=") == 1


def test_odd_output_paths(digits_run, tmp_path):
    """Spaces, '#', quotes and '~' are paths, not YAML or shell syntax."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    work, _ = digits_run
    out = tmp_path / 'my models #2 "q"'
    result = _export(work, "--out", str(out), "--format", "saved_model", "--name", "007")
    assert result.returncode == 0, result.stderr
    assert (out / "007" / "1" / "saved_model.pb").is_file()
    with open(out / "007" / "models.config") as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    assert config.model_config_list.config[0].base_path == str(out / "007")
    assert config.model_config_list.config[0].name == "007"
    home = tmp_path / "home"
    home.mkdir()
    result = call_cli("export", "run", "--out", "~/served", "--format", "keras", cwd=work,
                      env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert (home / "served" / "digits" / "1" / "model.keras").is_file()


def test_a_killed_exports_staging_folder_is_cleaned_up(digits_run, tmp_path):
    work, _ = digits_run
    stale = tmp_path / "digits" / ".staging-1-999999999"  # no such process
    stale.mkdir(parents=True)
    (stale / "model.onnx").write_text("half written")
    result = _export(work, "--out", str(tmp_path), "--format", "keras")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "digits")) == ["1", "models.config"]
