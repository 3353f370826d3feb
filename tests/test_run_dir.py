"""Run-directory policy: where runs go, what resumes, and what is never overwritten."""

import os

import pytest

from tfsuite.config import load_config, write_config
from tfsuite.errors import UserError
from tfsuite.io import write_json
from tfsuite.run_dir import FINISH_STAGES, resolve_run_dir, start_run_dir

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def _unfinished_run(path, config, epochs_done=2):
    os.makedirs(os.path.join(path, "checkpoints"))
    write_config(config, os.path.join(path, "config.yaml"))
    weights = f"epoch-{epochs_done:04d}.weights.h5"
    open(os.path.join(path, "checkpoints", weights), "wb").close()
    write_json(os.path.join(path, "checkpoints", "state.json"),
               {"epochs_completed": epochs_done, "weights": weights, "history": {}})


def test_default_dirs_skip_completed_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("digits")
    assert resolve_run_dir(config) == (os.path.join("runs", "digits"), False)
    os.makedirs("runs/digits")
    write_json("runs/digits/summary.json", {"status": "completed"})
    assert resolve_run_dir(config) == (os.path.join("runs", "digits-2"), False)


def test_default_dir_steps_over_an_unfinished_run_with_other_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _unfinished_run(os.path.join("runs", "digits"), load_config("digits"))
    lower = load_config("digits", overrides=["train.learning_rate=1e-4"])
    assert resolve_run_dir(lower) == (os.path.join("runs", "digits-2"), False)
    assert resolve_run_dir(load_config("digits")) == (os.path.join("runs", "digits"), True)


def test_unfinished_run_resumes_only_with_the_same_config(tmp_path):
    config = load_config("digits")
    run = str(tmp_path / "run")
    _unfinished_run(run, config)
    assert resolve_run_dir(config, run) == (run, True)
    changed = load_config("digits", overrides=["train.epochs=9"])
    with pytest.raises(UserError, match="train.epochs: 30 -> 9"):
        resolve_run_dir(changed, run)


def test_run_that_never_finished_an_epoch_starts_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_config(load_config("digits", overrides=["train.epochs=9"]), str(run / "config.yaml"))
    (run / "checkpoints").mkdir()
    (run / "history.csv").write_text("epoch,loss\n")
    assert resolve_run_dir(load_config("digits"), str(run)) == (str(run), False)
    start_run_dir(str(run), resuming=False)
    assert not (run / "history.csv").exists()


def test_a_users_own_config_yaml_is_never_taken_for_a_run(tmp_path):
    project = tmp_path / "myproj"
    project.mkdir()
    (project / "config.yaml").write_text("a: 1\n")
    (project / "seven.png").write_bytes(b"")
    with pytest.raises(UserError, match="not a tfsuite run"):
        resolve_run_dir(load_config("digits"), str(project))
    only_config = tmp_path / "only"
    only_config.mkdir()
    (only_config / "config.yaml").write_text("a: 1\n")
    with pytest.raises(UserError, match="not a tfsuite run"):
        resolve_run_dir(load_config("digits"), str(only_config))


def test_folders_that_are_not_runs_are_left_alone(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a tfsuite run"):
        resolve_run_dir(load_config("digits"), str(tmp_path / "mine"))
    done = tmp_path / "done"
    done.mkdir()
    write_config(load_config("digits"), str(done / "config.yaml"))
    # Training finished, its compression and export did not (killed): the same command
    # finishes them; once recorded as done, the run is complete and left alone.
    write_json(str(done / "summary.json"), {"status": "completed", "compress": {"prune": {}}})
    assert resolve_run_dir(load_config("digits"), str(done)) == (str(done), FINISH_STAGES)
    write_json(str(done / "summary.json"), {"status": "completed",
                                            "compress": {"prune": {}, "quantize": {}}})
    write_json(str(done / "export.json"), {"version": 1})
    with pytest.raises(UserError, match="completed run"):
        resolve_run_dir(load_config("digits"), str(done))
    other = load_config("digits", overrides=["train.epochs=2"])
    os.remove(done / "export.json")
    write_json(str(done / "summary.json"), {"status": "completed"})
    with pytest.raises(UserError, match="completed run"):
        resolve_run_dir(other, str(done))


HOLDER = """
import sys, time
from tfsuite.run_dir import hold
with hold(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_run_directory_another_process_holds_is_refused_or_stepped_over(tmp_path,
                                                                           monkeypatch):
    """An explicit run directory held by another process is one error naming its pid;
    without one, the run goes to the next free folder."""
    import subprocess
    import sys

    from tests.conftest import REPO
    from tfsuite.run_dir import hold

    monkeypatch.chdir(tmp_path)
    held = tmp_path / "runs" / "digits"
    held.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(held)], text=True,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert holder.stdout.readline().strip() == "holding"
        config = load_config("digits")
        with pytest.raises(UserError, match=f"held by pid {holder.pid}"):
            resolve_run_dir(config, str(held))
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            with hold(str(held)):
                pass
        assert resolve_run_dir(config) == (os.path.join("runs", "digits-2"), False)
    finally:
        holder.kill()
        holder.wait()
    with hold(str(held)), hold(str(held)):  # free again; one process may nest holds
        assert resolve_run_dir(config, str(held)) == (str(held), False)


CHILD_HOLD = """
import sys
from tfsuite.run_dir import hold
with hold(sys.argv[1]):
    print("held", flush=True)
"""


def test_locks_pass_to_a_child_and_leave_other_tools_files_alone(tmp_path, monkeypatch):
    """A TensorFlow-backend child writes under its parent's lock, whatever characters the
    path holds (':' split the list before); another tool's `.lock` in a folder is the
    user's: the folder is not a run, and the file is left as it was."""
    import subprocess
    import sys

    from tests.conftest import REPO
    from tfsuite.run_dir import HELD_ENV, hold, held_run_dirs

    run = tmp_path / "exp-2024-05-01T10:30"
    run.mkdir()
    with hold(str(run)):
        env = {**os.environ, "PYTHONPATH": REPO, HELD_ENV: held_run_dirs()}
        child = subprocess.run([sys.executable, "-c", CHILD_HOLD, str(run)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert child.stdout.strip() == "held", child.stderr
    assert os.listdir(run) == []  # the lock file goes with the lock
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / ".lock").write_text("another tool")
    with pytest.raises(UserError, match="not a tfsuite run"):
        resolve_run_dir(load_config("digits"), str(theirs))
    assert (theirs / ".lock").read_text() == "another tool"


def test_a_stage_that_failed_is_retried_with_run_dir_not_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("digits")
    done = tmp_path / "runs" / "digits"
    done.mkdir(parents=True)
    write_config(config, str(done / "config.yaml"))
    write_json(str(done / "summary.json"), {"status": "completed", "failed_stage": "prune"})
    assert resolve_run_dir(config, str(done)) == (str(done), FINISH_STAGES)
    assert resolve_run_dir(config) == (os.path.join("runs", "digits-2"), False)
