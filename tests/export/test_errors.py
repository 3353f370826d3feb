"""Bad input to `export`: one clear message, exit code 2, nothing overwritten."""

import os
import shutil

import pytest

from tests.conftest import call_cli


def _listing(folder):
    found = []
    for root, dirs, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, n), folder) for n in dirs + names]
    return sorted(found)


@pytest.fixture()
def served(digits_run, tmp_path):
    """An OUT folder that already holds version 1 of `digits`."""
    work, _ = digits_run
    result = call_cli("export", "run", "--out", str(tmp_path / "out"), "--format", "keras",
                     cwd=work)
    assert result.returncode == 0, result.stderr
    return tmp_path / "out"


def _run_with_model(run_dir, copy, model):
    """A copy of a finished run (without its export report) holding another model.keras."""
    shutil.copytree(run_dir, copy)
    os.remove(copy / "export.json")
    model.save(copy / "model.keras")
    return copy


def _fails_cleanly(result, *phrases):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0]


def test_run_directory_without_a_model(digits_run, served, tmp_path):
    work, run_dir = digits_run
    empty = tmp_path / "unfinished"
    empty.mkdir()
    shutil.copy(os.path.join(run_dir, "config.yaml"), empty)
    before = _listing(served)
    result = call_cli("export", str(empty), "--out", str(served), cwd=work)
    _fails_cleanly(result, "The run has no trained model", "model.keras")
    assert _listing(served) == before and _listing(empty) == ["config.yaml"]


def test_not_a_run_directory(digits_run, tmp_path):
    result = call_cli("export", str(tmp_path / "nowhere"), cwd=digits_run[0])
    _fails_cleanly(result, "Not a tfsuite run directory", "Received: run_dir=")


def test_unknown_format(digits_run, served):
    before = _listing(served)
    result = call_cli("export", "run", "--out", str(served), "--format", "onnx,pytorch",
                     cwd=digits_run[0])
    _fails_cleanly(result, "export.formats", "saved_model", "Received: export.formats=")
    assert _listing(served) == before


def test_output_path_that_is_a_file(digits_run, tmp_path):
    target = tmp_path / "models.txt"
    target.write_text("keep me")
    result = call_cli("export", "run", "--out", str(target), cwd=digits_run[0])
    _fails_cleanly(result, "(out) is a file", "Received: out=")
    assert target.read_text() == "keep me"
    name_file = tmp_path / "out2" / "digits"
    name_file.parent.mkdir()
    name_file.write_text("also keep me")
    result = call_cli("export", "run", "--out", str(name_file.parent), cwd=digits_run[0])
    _fails_cleanly(result, "is a file", "out/name=")
    assert name_file.read_text() == "also keep me"
    result = call_cli("export", "run", "--out", str(target / "a" / "b"), cwd=digits_run[0])
    _fails_cleanly(result, "(a parent of out) is a file")
    assert target.read_text() == "keep me"


def test_model_with_augmentation_layers(digits_run, served, tmp_path):
    import keras

    import tfsuite

    work, run_dir = digits_run
    model = tfsuite.load_model(run_dir)
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = keras.layers.RandomFlip("horizontal", name="flip")(inputs)
    augmented = _run_with_model(run_dir, tmp_path / "augmented_run",
                                keras.Model(inputs, model(x)))
    before = _listing(served)
    result = call_cli("export", str(augmented), "--out", str(served), cwd=work)
    _fails_cleanly(result, "augmentation layers", "flip (RandomFlip)")
    assert _listing(served) == before
    assert "export.json" not in os.listdir(augmented)


def test_export_settings_only(digits_run):
    result = call_cli("export", "run", "--set", "train.epochs=3", cwd=digits_run[0])
    _fails_cleanly(result, "Only `export.*` keys")


def test_an_export_version_is_not_a_run(digits_run, served):
    result = call_cli("export", str(served / "digits" / "1"), cwd=digits_run[0])
    _fails_cleanly(result, "takes a run directory, not an export version", "pass that folder")
    result = call_cli("predict", str(served / "digits"), "--image", "x.png", cwd=digits_run[0])
    _fails_cleanly(result, "an exported SavedModel version")


def test_another_tasks_format(digits_run, served):
    """keras_hub_preset is a language model's format: an image run refuses it up front."""
    before = _listing(served)
    result = call_cli("export", "run", "--out", str(served), "--format", "keras_hub_preset",
                      cwd=digits_run[0])
    _fails_cleanly(result, "does not export in that format", "format=['keras_hub_preset']")
    assert _listing(served) == before


def test_empty_and_misspelled_formats(digits_run, served):
    result = call_cli("export", "run", "--out", str(served), "--format", " ", cwd=digits_run[0])
    _fails_cleanly(result, "--format is empty")
    result = call_cli("export", "run", "--out", str(served), "--format", "onx", cwd=digits_run[0])
    _fails_cleanly(result, "Did you mean 'onnx'?")


def test_unwritable_output_folder(digits_run):
    result = call_cli("export", "run", "--out", "/proc/tfsuite-export", cwd=digits_run[0])
    _fails_cleanly(result, "export folder")  # not writable, or cannot be created (as root)


def test_a_model_with_non_finite_outputs_is_not_exported(digits_run, served, tmp_path):
    import keras
    import numpy as np

    import tfsuite

    work, run_dir = digits_run
    model = tfsuite.load_model(run_dir)
    layer = model.get_layer("predictions")
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    layer.set_weights([np.full_like(kernel, np.nan), bias])
    broken = _run_with_model(run_dir, tmp_path / "diverged_run", model)
    before = _listing(served)
    result = call_cli("export", str(broken), "--out", str(served), cwd=work)
    _fails_cleanly(result, "outputs are not finite", "NaN or infinity on 256 of 256")
    assert _listing(served) == before
