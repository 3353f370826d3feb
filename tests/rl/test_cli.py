"""`train cartpole_dqn`, `evaluate --episodes`, `render --out` and `export` as a user
runs them, and the bad inputs they refuse."""

import csv
import json
import os

import pytest
from PIL import Image

from tests.conftest import assert_user_error, call_cli, run_cli, trained_run

# Tests marked backend_agnostic run again with KERAS_BACKEND=jax (README): those that train
# or play the agent. Refusals and Ctrl-C handling do not depend on the backend.


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory):
    """A short cartpole_dqn run with its export: the run directory and what it printed."""
    import keras

    cwd, result = trained_run(tmp_path_factory, f"dqn_{keras.backend.backend()}", "train",
                              "cartpole_dqn", "--set", "rl.total_steps=3000",
                              "--set", "export.formats=[saved_model,keras]")
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd, os.path.join(cwd, "runs", "cartpole_dqn"), result.stdout


@pytest.mark.backend_agnostic
def test_train_writes_a_complete_run(dqn_run):
    cwd, run_dir, printed = dqn_run
    assert "step 3,000/3,000" in printed and "greedy return" in printed
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    metrics = summary["metrics"]
    assert metrics["env_steps"] == 3000 and metrics["eval_episodes"] == 20
    assert metrics["eval_mean_return"] > 60  # a random policy averages about 22
    assert summary["wall_seconds"] > summary["training_seconds"] > 0
    assert summary["env_steps_per_second"] == pytest.approx(
        3000 / summary["training_seconds"], rel=0.01)
    assert summary["env"]["reward_threshold"] == 475.0 and summary["env"]["num_actions"] == 2
    # Shorter than rl.eval_interval: the final weights are scored, and kept.
    assert [e["env_step"] for e in summary["training_evaluations"]] == [3000]
    assert metrics["policy_from_env_step"] == 3000
    with open(os.path.join(run_dir, "history.csv")) as f:
        episodes = list(csv.DictReader(f))
    assert len(episodes) == metrics["episodes"] > 10
    assert sum(float(e["return"]) for e in episodes) <= 3000  # one reward per step
    for name in ("model.keras", "training_curves.png", "config.yaml",
                 os.path.join("evaluation", "returns.png")):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert os.listdir(os.path.join(run_dir, "logs", "train"))  # TensorBoard events
    # The exported policy: observations in, q_values and the greedy action out.
    with open(os.path.join(summary["export"]["path"], "export.json")) as f:
        export = json.load(f)
    assert export["outputs"] == {"q_values": [None, 2], "action": [None]}
    assert export["input"]["shape"] == [None, 4] and export["env_id"] == "CartPole-v1"
    assert all(r["verified"] for r in export["formats"].values())
    assert set(export["formats"]) == {"saved_model", "keras"}


@pytest.mark.backend_agnostic
def test_evaluate_plays_the_greedy_policy(dqn_run):
    cwd, run_dir, _ = dqn_run
    result = call_cli("evaluate", run_dir, "--episodes", "3", cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    assert "over 3 episodes" in result.stdout
    with open(os.path.join(run_dir, "evaluation", "metrics.json")) as f:
        evaluation = json.load(f)
    assert len(evaluation["returns"]) == 3
    assert_user_error(call_cli("evaluate", run_dir, "--episodes", "0"), "--episodes")


@pytest.mark.backend_agnostic
def test_render_writes_a_gif_and_never_overwrites(dqn_run):
    cwd, run_dir, _ = dqn_run
    out = os.path.join(cwd, "episode.gif")
    # A real process: pygame's display warnings would go to the process's own stderr.
    result = run_cli("render", run_dir, "--out", out, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    assert "XDG_RUNTIME_DIR" not in result.stderr  # frames drawn off-screen, no display
    with Image.open(out) as gif:
        assert gif.size == (300, 200) and gif.n_frames >= 10
    before = os.path.getmtime(out)
    assert_user_error(call_cli("render", run_dir, "--out", out), "already exists")
    assert os.path.getmtime(out) == before
    assert_user_error(call_cli("render", run_dir, "--out", "x.png"), "GIF")


@pytest.mark.parametrize("args, fragments", [
    (["--set", "rl.env_id=NoSuchEnv-v0"], ["Unknown Gymnasium environment"]),
    (["--set", "rl.env_id=Pendulum-v1"], ["DQN needs discrete actions", "Box"]),
    (["--set", "rl.buffer_size=-100"], ["rl.buffer_size", "Received: rl.buffer_size=-100"]),
    (["--set", "rl.hidden_units=[]"], ["rl.hidden_units"]),
    (["--set", "runtime.strategy=mirrored"], ["runtime.strategy", "one device"]),
])
def test_bad_dqn_settings_exit_2_and_leave_nothing(tmp_path, args, fragments):
    assert_user_error(call_cli("train", "cartpole_dqn", *args, cwd=str(tmp_path)), *fragments)
    assert not os.path.exists(tmp_path / "runs")


def test_image_commands_refuse_a_dqn_run(dqn_run):
    cwd, run_dir, _ = dqn_run
    assert_user_error(call_cli("predict", run_dir, "--image", "x.png"), "classifies images",
                      "render")
    assert_user_error(call_cli("compress", run_dir, "--method", "prune"), "image classifiers")


def test_ctrl_c_keeps_the_q_network_and_the_same_command_starts_again(tmp_path):
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    run_dir = str(tmp_path / "run")
    command = [sys.executable, "-m", "tfsuite.run", "train", "cartpole_dqn", "--run-dir",
               run_dir, "--set", "rl.total_steps=20000", "--set", "rl.learning_starts=200"]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    for line in process.stdout:  # wait for the first progress line: updates have begun
        if line.startswith("  step "):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    assert "interrupted at environment step" in out and "Traceback" not in err
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "interrupted.keras"))
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))
    # The same command may start again in the same folder (a short run here).
    again = call_cli("train", "cartpole_dqn", "--run-dir", run_dir, "--set",
                     "rl.total_steps=600", "--set", "export.formats=[]", "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr


def _verdicts(run_dir):
    with open(os.path.join(run_dir, "diagnosis", "diagnose.json"), encoding="utf-8") as f:
        return {v["name"]: v for v in json.load(f)["verdicts"]}


def test_diagnose_reads_returns_and_q_values(dqn_run):
    """The short run learns: returns rose as epsilon fell, and the mean Q(s, a) of its
    updates (history.csv's q_mean) stayed within the returns CartPole paid."""
    cwd, run_dir, _ = dqn_run
    result = call_cli("diagnose", run_dir, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    assert "episode(s)): healthy" in result.stdout and "--probe" not in result.stdout
    verdicts = _verdicts(run_dir)
    assert verdicts["q_value_growth"]["severity"] == "info"
    evidence = verdicts["q_value_growth"]["evidence"]
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    q = [float(r["q_mean"]) for r in rows if r["q_mean"]]
    assert q and evidence["q_mean_first"] == pytest.approx(q[0], abs=1e-3)
    assert 0 < evidence["q_mean_last"] < evidence["largest_return"]
    assert evidence["largest_return"] == max(float(r["return"]) for r in rows)
    assert os.path.getsize(os.path.join(run_dir, "diagnosis", "diagnosis.png")) > 5000
    assert_user_error(call_cli("diagnose", run_dir, "--probe"), "--probe", "DQN")


def test_diagnose_names_q_values_running_away(tmp_path):
    """No double DQN, a high rate, a discount near 1 and the target copied every 4 steps:
    the targets bootstrap from overestimates and the mean Q(s, a) runs past any return."""
    run_dir = str(tmp_path / "runaway")
    overrides = ["rl.total_steps=1500", "rl.learning_starts=200", "rl.learning_rate=0.05",
                 "rl.double_dqn=false", "rl.gamma=0.999", "rl.max_grad_norm=1000",
                 "rl.n_step=1", "rl.train_frequency=4", "rl.gradient_steps=4",
                 "rl.target_update_interval=4", "rl.eval_episodes=2", "export.formats=[]"]
    result = call_cli("train", "cartpole_dqn", "--quiet", "--run-dir", run_dir,
                      *[a for o in overrides for a in ("--set", o)], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    result = call_cli("diagnose", run_dir, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    grown = _verdicts(run_dir)["q_value_growth"]
    assert grown["severity"] == "problem" and "PROBLEM  q_value_growth" in result.stdout
    evidence = grown["evidence"]
    assert not evidence["q_mean_last"] < 1.5 * evidence["largest_return"]  # NaN counts too
    assert "--set rl.double_dqn=true" in grown["fixes"]
    assert "--set rl.target_update_interval=16" in grown["fixes"]
