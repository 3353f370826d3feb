"""Files a run depends on, damaged or hostile (issue 21): one clear error, exit 2, no
traceback, no hang, and nothing the user has is lost."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, assert_user_error, call_cli
from tfsuite.config import load_config, read_run_config, write_config

# Rewrites a run's config.yaml as fast as it can, as a resumed run does at its start.
REWRITER = """
import sys
from tfsuite.config import load_config, write_config
config = load_config("digits_mlp")
print("ready", flush=True)
while True:
    write_config(config, sys.argv[1])
"""


# "Billion laughs": ten levels of ten aliases, 10^9 values inside a known key's value.
LAUGHS = ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
          + "".join(f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]\n"
                    for p, c in zip("abcdefgh", "bcdefghi"))
          + "data:\n  image_size: *i\n")


def test_a_kill_while_config_yaml_is_written_never_leaves_it_empty(tmp_path):
    """kill -9 at random moments of the rewrite: the file is always a whole config."""
    path = tmp_path / "config.yaml"
    write_config(load_config("digits_mlp"), str(path))
    env = {**os.environ, "PYTHONPATH": REPO}
    rng = random.Random(0)
    for _ in range(4):
        process = subprocess.Popen([sys.executable, "-c", REWRITER, str(path)], env=env,
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.01, 0.2))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert read_run_config(str(tmp_path)) == load_config("digits_mlp")


def test_a_damaged_state_json_is_one_clear_error_and_nothing_is_touched(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    write_config(load_config("digits_mlp"), str(run_dir / "config.yaml"))
    state = run_dir / "checkpoints" / "state.json"
    for text in ("", '{"epochs_completed": 3, "wei', "[1, 2]"):
        state.write_text(text)
        result = call_cli("train", "digits_mlp", "--run-dir", run_dir, cwd=tmp_path)
        assert_user_error(result, "training state is damaged", "state.json")
        assert state.read_text() == text  # left as it was, for the user to restore
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "config.yaml"]


@pytest.mark.parametrize("content, fragment", [
    ("name: x\n".encode("utf-16"), "not UTF-8 text"),
    (bytes(range(256)) * 8, "not UTF-8 text"),
    (("train:\n  epochs: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
     "nested too deeply"),
    (LAUGHS.encode(), "too many values"),
], ids=["utf-16", "binary", "nested-brackets", "billion-laughs"])
def test_hostile_config_files_are_refused_quickly(tmp_path, content, fragment):
    """UTF-16 and binary files, 100k nested brackets, and a "billion laughs" of YAML aliases
    inside a known key's value (10^9 values): refused in seconds, with a short message."""
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    started = time.perf_counter()
    result = call_cli("config", "digits", "--config", path, cwd=tmp_path)
    assert time.perf_counter() - started < 20
    assert_user_error(result, fragment)
    assert len(result.stderr) < 2000


def test_hostile_overrides_are_refused(tmp_path):
    deep = call_cli("config", "digits", "--set", "data.image_size=" + "[" * 100_000,
                    cwd=tmp_path)
    assert deep.returncode == 2 and "Traceback" not in deep.stderr
    huge = call_cli("config", "digits", "--set", "name=" + "x" * 2_000_000, cwd=tmp_path)
    assert_user_error(huge, "too large")


@pytest.mark.parametrize("override, fragment", [
    ("train.epochs=100000000000000000000", "below 2**31"),
    ("train.epochs=1000000", "at most 100000"),
    ("data.image_size=[100000,100000]", "each <= 8192"),
])
def test_numbers_without_a_sane_bound_are_refused_before_the_run_folder(tmp_path, override,
                                                                         fragment):
    """Before, 10^20 epochs failed with a TypeError after the run folder was made, and a
    100000x100000 image size ran out of memory after two minutes."""
    result = call_cli("train", "digits", "--set", override, "--run-dir", tmp_path / "run",
                      cwd=tmp_path)
    assert_user_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_run_dirs_that_cannot_be_folders_are_one_clear_error(tmp_path):
    """A dangling symlink, a symlink loop, a path under a file, a path under /proc."""
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    (tmp_path / "a_file").write_text("mine")
    cases = {tmp_path / "dangling": "broken symbolic link",
             tmp_path / "loop_a": "broken symbolic link",
             tmp_path / "a_file" / "run": "inside a file",
             "/proc/tfsuite-run": "cannot be created"}
    for run_dir, fragment in cases.items():
        result = call_cli("train", "digits_mlp", "--set", "train.epochs=1", "--run-dir",
                          run_dir, cwd=tmp_path)
        assert_user_error(result, fragment)
    assert (tmp_path / "a_file").read_text() == "mine"


def test_what_killed_compressions_left_is_cleaned_and_a_swapped_out_result_restored(tmp_path):
    """Before, `.prune.staging-PID` folders of killed compressions stayed for ever; a kill
    between the two renames of `publish` would have left the earlier result only as
    `NAME.old-PID`."""
    from tfsuite.compression.stage import _clean_after_kills

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    parent = tmp_path / "compress"
    for name in (f".prune.staging-{dead}", f"quantize.staging-{dead}", f"low_rank.old-{dead}",
                 f"distill.old-{dead}", "distill", f".prune.staging-{os.getpid()}"):
        (parent / name).mkdir(parents=True)
        (parent / name / "report.json").write_text(name)
    _clean_after_kills(str(parent))
    assert sorted(os.listdir(parent)) == [f".prune.staging-{os.getpid()}", "distill",
                                          "low_rank"]
    assert (parent / "low_rank" / "report.json").read_text() == f"low_rank.old-{dead}"
    assert (parent / "distill" / "report.json").read_text() == "distill"


HOSTILE_ACTIVATIONS = {
    "os.system": {"module": "os", "class_name": "function", "config": "system",
                  "registered_name": "function"},
    "builtins.exec": {"module": "builtins", "class_name": "function", "config": "exec",
                      "registered_name": "function"},
    "subprocess.Popen": {"module": "subprocess", "class_name": "Popen",
                         "config": {"args": ["touch", "PWNED"]}, "registered_name": None},
    "keras get_file": {"module": "keras.utils", "class_name": "function",
                       "config": "get_file", "registered_name": "function"},
}


@pytest.mark.parametrize("name", HOSTILE_ACTIVATIONS)
def test_model_files_with_exploit_style_configs_are_refused_and_run_nothing(tmp_path,
                                                                            monkeypatch,
                                                                            name):
    """Before, a TypeError traceback (Keras' safe mode had refused them: nothing ran)."""
    import json
    import zipfile

    import keras

    import tfsuite

    monkeypatch.chdir(tmp_path)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    model.save("base.keras")
    with zipfile.ZipFile("base.keras") as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][-1]["config"]["activation"] = HOSTILE_ACTIVATIONS[name]
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile("hostile.keras", "w") as archive:
        for n, data in files.items():
            archive.writestr(n, data)
    with pytest.raises(tfsuite.UserError, match="cannot be loaded.*Nothing in it was run"):
        tfsuite.load_model("hostile.keras")
    assert sorted(os.listdir(tmp_path)) == ["base.keras", "hostile.keras"]
