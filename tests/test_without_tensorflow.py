"""tfsuite on JAX where TensorFlow is not installed (as on GPU machines that ship only
PyTorch and JAX): training, evaluation and the refusals, in a Python that cannot import it.

The subprocess runs with `-S` (no site-packages) and a PYTHONPATH of links to every
installed package except TensorFlow and the packages built on it, so `import tensorflow`
fails exactly as on a machine without it.
"""

import json
import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from tests.conftest import REPO, assert_user_error, tree_hashes, write_messy_folder

# TensorFlow, and the packages that import it when they are imported.
TENSORFLOW_PACKAGES = ("tensorflow", "tf_keras", "tensorboard", "tf2onnx", "keras_hub",
                       "tensorflow_text", "tensorflow_datasets", "tensorflow_serving",
                       "tensorflow_model_optimization", "tensorflow_metadata")


@pytest.fixture(scope="module")
def python_without_tensorflow(tmp_path_factory):
    """run(args, cwd) -> CompletedProcess of `python -S args` with no TensorFlow importable."""
    site = tmp_path_factory.mktemp("site_without_tensorflow")
    packages = sysconfig.get_paths()["purelib"]
    for name in os.listdir(packages):
        if name.endswith(".pth") or name == "__pycache__" or name.startswith(
                TENSORFLOW_PACKAGES) or name.startswith("__editable__"):
            continue
        os.symlink(os.path.join(packages, name), site / name)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}", "KERAS_BACKEND": "jax"}

    def run(args, cwd, keras_backend="jax"):
        return subprocess.run([sys.executable, "-S", *args], cwd=cwd,
                              env={**env, "KERAS_BACKEND": keras_backend},
                              capture_output=True, text=True, timeout=600)

    assert run(["-c", "import tensorflow"], REPO).returncode == 1  # the premise
    return run


def test_an_image_folder_trains_and_predicts_without_tensorflow(python_without_tensorflow,
                                                                 tmp_path):
    """Grain decodes the folder (broken files skipped and counted), the model augments on
    the device, and `predict` reads image files with PIL (as the TensorFlow test,
    tests/image_classification/test_image_classification.py)."""
    root, good, bad = write_messy_folder(str(tmp_path / "messy"), per_class=60, seed=1)
    run = python_without_tensorflow
    result = run(["-m", "tfsuite.run", "train", "image_folder", "--run-dir", "run",
                  "--set", f"data.path={root}", "--set", "data.image_size=[32,32]",
                  "--set", "model.width=16", "--set", "train.epochs=10",
                  "--set", "train.batch_size=8", "--set", "data.workers=1",
                  "--set", "export.formats=[]"], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{bad} files skipped, augmented on the device" in result.stdout
    assert "leaked" not in result.stderr  # Grain's shared memory is given back
    with open(tmp_path / "run" / "summary.json") as f:
        summary = json.load(f)
    assert summary["data"]["num_train"] + summary["data"]["num_val"] + \
        summary["data"]["num_test"] == good
    assert summary["metrics"]["test_accuracy"] >= 0.75  # chance is 0.5
    path = next(os.path.join(folder, name) for folder, _, names in os.walk(root)
                for name in sorted(names) if name.startswith("alpha_"))
    result = run(["-m", "tfsuite.run", "predict", "run", "--image", path], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "discs" in result.stdout and "squares" in result.stdout


def test_trainer_fits_a_user_pydataset_and_npz_arrays_without_tensorflow(
        python_without_tensorflow, tmp_path):
    """The Python API: the trainer on a user's own `keras.utils.PyDataset` of NumPy arrays,
    and the default digits job (resized, augmented) from an .npz file of arrays."""
    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        from tfsuite import stages
        from tfsuite.config import load_config

        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (300, 8, 8, 1)).astype(np.uint8)
        y = (x.mean(axis=(1, 2, 3)) > 127).astype(np.int32)
        np.savez("digits.npz", x=x, y=y)
        config = load_config("digits", overrides=["data.source=npz", "data.path=digits.npz",
                             "train.epochs=2", "compress.methods=[]", "export.formats=[]"])
        summary = stages.train(config, "npz_run", quiet=True)
        assert "tensorflow" not in sys.modules

        import keras
        from tfsuite.data.pipeline import ImageData
        from tfsuite.task import get_task
        from tfsuite.training.runtime import setup_runtime
        from tfsuite.training.trainer import Trainer

        class Batches(keras.utils.PyDataset):  # what a user writes
            def __len__(self):
                return 10
            def __getitem__(self, i):
                return x[i * 30:(i + 1) * 30].astype(np.float32), y[i * 30:(i + 1) * 30]

        config = load_config("digits_mlp", overrides=["train.epochs=2"])
        data = ImageData(train=Batches(), val=None, test=None, class_names=["dark", "bright"],
                         num_train=300, num_val=0, num_test=0, image_shape=(8, 8, 1))
        trainer = Trainer(config, "pydataset_run", setup_runtime(config.runtime), quiet=True)
        model = trainer.fit(get_task(config), data)
        print(json.dumps({"npz": summary["metrics"]["test_accuracy"],
                          "pydataset_epochs": trainer.info()["epochs_completed"],
                          "backend": keras.backend.backend(),
                          "tensorflow_loaded": "tensorflow" in sys.modules}))
    """)
    result = python_without_tensorflow(["-c", script], str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax" and not report["tensorflow_loaded"]
    assert report["pydataset_epochs"] == 2
    assert 0.0 <= report["npz"] <= 1.0
    assert (tmp_path / "npz_run" / "model.keras").is_file()
    assert (tmp_path / "pydataset_run" / "checkpoints" / "state.json").is_file()


def test_the_default_job_trains_and_leaves_what_needs_tensorflow(python_without_tensorflow,
                                                                  tmp_path):
    """`python -m tfsuite.run`'s job (shortened, on synthetic images): it trains on JAX (the
    default backend when TensorFlow is missing) and prunes; the int8 LiteRT quantization
    and the export need TensorFlow, so they are skipped with one warning that says how to
    finish them, and the job succeeds. `evaluate` works; what needs TensorFlow is refused."""
    run = python_without_tensorflow
    result = run(["-m", "tfsuite.run", "train", "digits", "--set", "data.source=synthetic",
                  "--set", "data.num_examples=400", "--set", "data.num_classes=2",
                  "--set", "train.epochs=3", "--set", "compress.fine_tune_epochs=1"],
                 str(tmp_path), keras_backend="")
    assert result.returncode == 0, result.stderr
    assert "backend jax" in result.stdout
    assert "compression (quantize), export need TensorFlow, which is not installed here: " \
           "skipped" in result.stderr
    run_dir = tmp_path / "runs" / "digits"
    with open(run_dir / "summary.json") as f:
        summary = json.load(f)
    assert summary["status"] == "completed" and summary["data"]["source"] == "synthetic"
    # The class decides the brightness: the CNN learns it in three epochs (its training
    # accuracy; 30 steps are too few for batch norm's moving statistics to settle, so the
    # test split is not the measure here).
    assert summary["metrics"]["final_accuracy"] > 0.9, summary["metrics"]
    assert 0 <= summary["metrics"]["test_accuracy"] <= 1
    assert list(summary["skipped_stages"]) == ["quantize", "export"]
    assert summary["skipped_stages"]["export"].startswith("needs TensorFlow")
    assert list(summary["compress"]) == ["prune"] and "failed_stage" not in summary
    assert (run_dir / "compress" / "prune" / "model.keras").is_file()
    assert not (tmp_path / "saved_models").exists()
    assert not (run_dir / "logs").exists()  # TensorBoard needs tf.summary

    result = run(["-m", "tfsuite.run", "evaluate", "runs/digits"], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (run_dir / "evaluation" / "metrics.json").is_file()

    # Asked for explicitly, what needs TensorFlow is one clear error, and nothing changes.
    before = tree_hashes(str(run_dir))
    assert_user_error(run(["-m", "tfsuite.run", "compress", "runs/digits", "--method",
                           "quantize"], str(tmp_path)), "needs tensorflow")
    assert_user_error(run(["-m", "tfsuite.run", "export", "runs/digits"], str(tmp_path)),
                      "Export needs tensorflow", "pip install tensorflow")
    assert_user_error(run(["-m", "tfsuite.run", "train", "image_folder", "--set",
                           "data.source=tfds", "--set", "data.tfds_name=mnist"], str(tmp_path)),
                      "data.source='tfds' needs TensorFlow", "data.source=npz")
    assert tree_hashes(str(run_dir)) == before
