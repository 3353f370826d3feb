"""`compress RUN_DIR --method ...` as a user runs it: files, report, bars, bad input."""

import json
import os
import shutil

import pytest

from tests.conftest import call_cli, tree_hashes

REPORT_KEYS = {"test_accuracy", "num_params", "nonzero_params", "size_bytes", "latency_ms"}


def _compress(run_dir, method, *overrides, work=None):
    """`compress RUN_DIR --method METHOD --set ...`, through the CLI's main in this process."""
    sets = [a for o in overrides for a in ("--set", o)]
    return call_cli("compress", run_dir, "--method", method, *sets, cwd=work)


def _compressed(run_dir, method, *overrides, work=None):
    """Runs `compress`, checks it succeeded; returns (result, report)."""
    result = _compress(run_dir, method, *overrides, work=work)
    assert result.returncode == 0, result.stderr
    return result, _report(run_dir, method)


def _report(run_dir, method):
    with open(os.path.join(run_dir, "compress", method, "report.json")) as f:
        return json.load(f)


def test_pruning_to_80_percent_costs_at_most_one_point(default_job):
    """The default job prunes as its compression stage (`compress.methods: [prune,
    quantize]`): its report is the one `compress --method prune` writes, so it is read here
    rather than pruned a second time."""
    _, run_dir, result = default_job
    assert result.returncode == 0, result.stderr
    report = _report(run_dir, "prune")
    assert "non-zero weights" in result.stdout and "comparison.png" in result.stdout
    assert REPORT_KEYS <= set(report["baseline"]) and REPORT_KEYS <= set(report["compressed"])
    assert set(report["pruned_layers"]) == {"block1a_conv", "block1b_conv", "block2a_conv",
                                            "block2b_conv", "block3_conv", "predictions"}
    assert all(abs(s - 0.8) < 0.01 for s in report["pruned_layers"].values())
    # Counted as exact zeros in the saved file, by the report's own measurement.
    assert report["compressed"]["nonzero_params"] < 0.3 * report["baseline"]["nonzero_params"]
    assert report["ratios"]["accuracy_drop_points"] <= 1.0
    assert report["compressed"]["size_bytes"] < 0.5 * report["baseline"]["size_bytes"]
    assert os.path.isfile(os.path.join(run_dir, "compress", "prune", "comparison.png"))
    with open(os.path.join(run_dir, "summary.json")) as f:
        assert json.load(f)["compress"]["prune"]["file"] == "model.keras"


@pytest.mark.slow
def test_full_integer_int8_is_small_and_accurate(cnn_run):
    work, run_dir = cnn_run
    _, report = _compressed(run_dir, "quantize", "compress.int8_io=true", work=work)
    assert report["baseline"]["file"] == "baseline_float32.tflite"
    assert report["compressed"]["file"] == "model.tflite"
    assert report["compressed"]["file_bytes"] <= 0.3 * report["baseline"]["file_bytes"]
    assert report["ratios"]["accuracy_drop_points"] <= 1.0
    from ai_edge_litert import interpreter

    details = interpreter.Interpreter(
        model_path=os.path.join(run_dir, "compress", "quantize", "model.tflite")
    ).get_signature_runner("serving_default").get_input_details()
    assert str(next(iter(details.values()))["dtype"]).endswith("int8'>")


@pytest.mark.slow
def test_low_rank_halves_the_factorized_layers_and_stays_within_two_points(cnn_run):
    work, run_dir = cnn_run
    _, report = _compressed(run_dir, "low_rank", "compress.fine_tune_epochs=4", work=work)
    assert report["settings"]["factorized_param_reduction"] >= 0.49
    assert report["ratios"]["accuracy_drop_points"] <= 2.0
    assert report["compressed"]["num_params"] < report["baseline"]["num_params"]
    assert all(p["params_after"] < p["params_before"]
               for p in report["factorized_layers"].values())


@pytest.mark.slow
def test_distillation_is_reported_against_the_student_alone(cnn_run):
    work, run_dir = cnn_run
    result, report = _compressed(run_dir, "distill", "compress.distill_epochs=6", work=work)
    assert {"baseline", "compressed", "student_alone"} <= set(report)
    assert report["compressed"]["num_params"] < 0.2 * report["baseline"]["num_params"]
    assert report["compressed"]["test_accuracy"] >= 0.8
    assert "student_alone" in result.stdout


@pytest.mark.slow
def test_tfmot_pruning_and_quantization_aware_training_from_the_cli(cnn_run):
    """The TFMOT paths through the bridge: ConstantSparsity with 2:4, then QAT to int8."""
    work, run_dir = cnn_run
    _, report = _compressed(run_dir, "prune", "compress.pruning_backend=tfmot",
                            "compress.pruning_schedule=constant",
                            "compress.pruning_structure=2:4", "compress.fine_tune_epochs=2",
                            work=work)
    assert report["settings"]["backend"] == "tfmot"
    assert report["settings"]["to_tf_keras_max_diff"] <= 1e-5
    assert report["pruned_layers"]["block2a_conv"] == 0.5
    assert report["pruned_layers"]["block1a_conv"] == 0.0  # one input channel: TFMOT pads
    _, report = _compressed(run_dir, "quantize", "compress.quantization=qat",
                            "compress.fine_tune_epochs=1", work=work)
    assert report["settings"]["mode"] == "qat" and "block3_conv" in report["settings"][
        "quantized_layers"]
    assert report["compressed"]["file_bytes"] <= 0.3 * report["baseline"]["file_bytes"]
    assert report["ratios"]["accuracy_drop_points"] <= 2.0


def test_keras_quantize_notes_that_convolutions_stay_float(cnn_run):
    work, run_dir = cnn_run
    result, report = _compressed(run_dir, "quantize", "compress.quantization=keras_int8",
                                 work=work)
    assert "convolutions stay float32" in result.stdout
    assert report["settings"]["quantized_layers"] == ["predictions"]
    assert report["ratios"]["accuracy_drop_points"] <= 1.0


@pytest.mark.parametrize("args, expected", [
    (["--method", "prune", "--set", "compress.sparsity=1.0"],
     ["compress.sparsity", "[0, 1)", "Received: compress.sparsity=1.0"]),
    (["--method", "prune", "--set", "compress.sparsity=-0.1"], ["compress.sparsity"]),
    (["--method", "low_rank", "--set", "compress.rank=1000"],
     ["compress.rank is larger than layer", "Received: compress.rank=1000"]),
    (["--method", "shrink"], ["Unknown compression method", "Received: --method 'shrink'"]),
    (["--method", "prune", "--set", "train.epochs=3"], ["Only `compress.*` keys"]),
    (["--method", "prune", "--set", "compress.pruning_layers=[nope]"], ["selects nothing"]),
    (["--method", "quantize", "--from", "pruning"], ["Unknown compression method",
                                                    "Received: --from 'pruning'",
                                                    "Did you mean 'prune'?"]),
    (["--method", "low_rank", "--from", "quantize"], ["cannot be compressed further"]),
    (["--method", "prune", "--set", "compress.fine_tune_epochs=0"],
     ["No pruning step falls within the fine-tuning"]),
])
def test_bad_input_is_one_clear_error_and_the_run_is_untouched(cnn_run, args, expected):
    work, run_dir = cnn_run
    before = tree_hashes(run_dir)
    result = call_cli("compress", run_dir, *args, cwd=work)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr
    assert tree_hashes(run_dir) == before
    compress_dir = os.path.join(run_dir, "compress")
    leftovers = os.listdir(compress_dir) if os.path.isdir(compress_dir) else []
    assert not [name for name in leftovers if name.startswith(".")]


def test_a_run_without_a_model(tmp_path, cnn_run):
    _, run_dir = cnn_run
    broken = tmp_path / "unfinished"
    broken.mkdir()
    with open(os.path.join(run_dir, "config.yaml")) as f:
        (broken / "config.yaml").write_text(f.read())
    result = call_cli("compress", str(broken), "--method", "prune")
    assert result.returncode == 2 and "The run has no trained model" in result.stderr
    assert os.listdir(broken) == ["config.yaml"]
    # With the model but a bad layer pattern: the error comes after RUN_DIR/compress/ was
    # made for the output, and a failed first compression leaves no trace of it.
    shutil.copyfile(os.path.join(run_dir, "model.keras"), broken / "model.keras")
    result = call_cli("compress", str(broken), "--method", "prune",
                     "--set", "compress.pruning_layers=[nope]")
    assert result.returncode == 2 and "selects nothing" in result.stderr
    assert sorted(os.listdir(broken)) == ["config.yaml", "model.keras"]
