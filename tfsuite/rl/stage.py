"""Reinforcement-learning runs: train a DQN agent into a run directory, evaluate its
greedy policy, render one episode as a GIF.

A run directory holds what an image run holds: config.yaml (written first),
history.csv (one row per episode, written as training goes), logs/
(TensorBoard), model.keras (the Q-network without optimizer state: it loads on
any backend), training_curves.png, evaluation/ and summary.json. The export
stage turns model.keras into a SavedModel whose signature maps observations to
`q_values` and the greedy `action`.
"""

import csv
import dataclasses
import os
import shutil
import time

import numpy as np

from tfsuite.config import read_run_config, write_config
from tfsuite.errors import user_error
from tfsuite.io import display_path, write_json
from tfsuite.packages import has_tensorflow
from tfsuite.run_dir import MODEL, SUMMARY

EVAL_EPISODES = 20
EVAL_SEED = 10_000  # evaluation episodes are seeded apart from training's
HISTORY = "history.csv"


# ---------------------------------------------------------------- train


def train(config, run_dir=None, quiet=False):
    """Trains `config.rl` (a DQN) end to end; returns the summary dict."""
    from tfsuite.rl.dqn import train_dqn
    from tfsuite.rl.envs import describe_env
    from tfsuite.rl.policy import evaluate_policy
    from tfsuite.run_dir import resolve_run_dir, start_run_dir
    from tfsuite.stages import export_after_training, save_model
    from tfsuite.training.runtime import setup_runtime

    started = time.perf_counter()
    _refuse_multi_worker()
    run_dir, _ = resolve_run_dir(config, run_dir)
    # One device: DQN steps one small network a batch of 64 at a time.
    runtime = setup_runtime(dataclasses.replace(config.runtime, strategy="none"))
    env = describe_env(config.rl)  # a bad env id fails before the run directory is touched
    start_run_dir(run_dir, resuming=False)
    # A fresh start: TensorBoard events of an attempt that stopped early (tfsuite's own
    # files, or resolve_run_dir would have refused the folder) would overlap the new ones.
    shutil.rmtree(os.path.join(run_dir, "logs"), ignore_errors=True)
    write_config(config, os.path.join(run_dir, "config.yaml"))
    if not quiet:
        _print_start(config, run_dir, env, runtime)
    progress = Progress(run_dir, config.rl.total_steps, quiet)
    try:
        agent, history = train_dqn(config.rl, config.runtime.seed, log=progress)
        progress.last_line(history)
    finally:
        progress.close()
    model = agent.policy_network()
    if history["interrupted"]:
        _stop_interrupted(run_dir, model, history, config, env)
    save_model(model, os.path.join(run_dir, MODEL))
    from tfsuite.plots import plot_rl_history

    plot_rl_history(history, os.path.join(run_dir, "training_curves.png"), title=config.name,
                    reward_threshold=env["reward_threshold"])
    returns = evaluate_policy(model, config.rl.env_id, EVAL_EPISODES, EVAL_SEED)
    _write_evaluation(run_dir, returns, env, EVAL_SEED)
    summary = _summary(config, run_dir, runtime, env, history, returns, model,
                       time.perf_counter() - started)
    write_json(os.path.join(run_dir, SUMMARY), summary)
    if config.export.formats:
        summary["export"] = export_after_training(run_dir, config, quiet)
        write_json(os.path.join(run_dir, SUMMARY), summary)
    return summary


def _refuse_multi_worker():
    import keras

    from tfsuite.training.cluster import current_cluster

    cluster = current_cluster(keras.backend.backend())
    if cluster.num_workers > 1:
        raise user_error("DQN trains in one process", "a single process (no `launch`, no "
                         "TF_CONFIG cluster)", f"worker {cluster.index} of "
                         f"{cluster.num_workers}", "Run `python -m tfsuite.run train "
                         "EXPERIMENT` on its own; start several seeds as separate runs.")


def _summary(config, run_dir, runtime, env, history, returns, model, wall_seconds):
    training = history["wall_seconds"]
    recent = history["episode_returns"][-20:]
    return {
        "experiment": config.name,
        "task": config.task,
        "status": "completed",
        "wall_seconds": round(wall_seconds, 2),
        "training_seconds": round(training, 2),
        "env_steps_per_second": round(history["env_steps"] / training, 1),
        "metrics": {**_return_stats(returns, env),
                    "env_steps": history["env_steps"],
                    "episodes": len(history["episode_returns"]),
                    "gradient_steps": len(history["losses"]),
                    "train_mean_return_last_20": round(float(np.mean(recent)), 2)
                    if recent else None,
                    "policy_from_env_step": history["best_env_step"] or history["env_steps"]},
        "training_evaluations": history["evaluations"],
        "env": env,
        "runtime": runtime.report(),
        "model": {"name": "q_network", "num_params": int(model.count_params()),
                  "path": os.path.join(run_dir, MODEL)},
    }


def _return_stats(returns, env):
    mean = float(np.mean(returns))
    threshold = env["reward_threshold"]
    return {"eval_mean_return": round(mean, 2), "eval_std_return": round(float(np.std(returns)), 2),
            "eval_min_return": float(np.min(returns)), "eval_max_return": float(np.max(returns)),
            "eval_episodes": len(returns),
            "solved": None if threshold is None else bool(mean >= threshold)}


def _stop_interrupted(run_dir, model, history, config, env):
    """Ctrl-C: keep the Q-network and curves so far in checkpoints/, say so, exit 130."""
    from tfsuite.plots import plot_rl_history
    from tfsuite.stages import save_model

    folder = os.path.join(run_dir, "checkpoints")
    save_model(model, os.path.join(folder, "interrupted.keras"))
    if history["episode_returns"]:
        plot_rl_history(history, os.path.join(folder, "interrupted_curves.png"),
                        title=f"{config.name} (interrupted)",
                        reward_threshold=env["reward_threshold"])
    print(f"interrupted at environment step {history['env_steps']:,} of "
          f"{config.rl.total_steps:,}. The Q-network so far is in "
          f"{display_path(os.path.join(folder, 'interrupted.keras'))}. DQN runs do not resume "
          "(the replay buffer is not kept): the same command trains again from the start.",
          flush=True)
    raise SystemExit(130)


class Progress:
    """Called after every episode: a history.csv row, TensorBoard scalars, and a progress
    line each tenth of the run (return of the last 20 episodes, epsilon, loss, speed)."""

    def __init__(self, run_dir, total_steps, quiet):
        self.total_steps = total_steps
        self.quiet = quiet
        self.interval = max(1, total_steps // 10)
        self.next_line = self.interval
        self.printed_step = 0
        self.started = time.perf_counter()
        self.losses_seen = 0
        self.evaluations_seen = 0
        self.file = open(os.path.join(run_dir, HISTORY), "w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.file)
        self.csv.writerow(["episode", "env_step", "return", "epsilon", "wall_seconds"])
        self.writer = _tensorboard_writer(os.path.join(run_dir, "logs"))

    def __call__(self, step, history):
        episode = len(history["episode_returns"])
        wall = time.perf_counter() - self.started
        self.csv.writerow([episode, step, history["episode_returns"][-1],
                           round(history["epsilons"][-1], 4), round(wall, 2)])
        new_losses = history["losses"][self.losses_seen:]
        self.losses_seen = len(history["losses"])
        if self.writer is not None:
            self._scalars(step, history, new_losses)
        self._evaluations(history)
        if step >= self.next_line:
            self.next_line += self.interval
            self.file.flush()
            self._line(step, history)

    def _evaluations(self, history):
        """A line (and a TensorBoard scalar) for each greedy evaluation since the last call."""
        for record in history["evaluations"][self.evaluations_seen:]:
            best = max(e["mean_return"] for e in history["evaluations"])
            if self.writer is not None:
                import tensorflow as tf

                with self.writer.as_default(step=record["env_step"]):
                    tf.summary.scalar("greedy_eval_return", record["mean_return"])
            if not self.quiet:
                print(f"  greedy evaluation at step {record['env_step']:,}: mean return "
                      f"{record['mean_return']:.1f} (best so far {best:.1f})", flush=True)
        self.evaluations_seen = len(history["evaluations"])

    def _line(self, step, history):
        self.printed_step = step
        if self.quiet or not history["episode_returns"]:
            return
        recent = history["episode_returns"][-20:]
        loss = f"{np.mean(history['losses'][-256:]):.4f}" if history["losses"] else "-"
        steps_per_second = step / max(time.perf_counter() - self.started, 1e-9)
        print(f"  step {step:>{len(f'{self.total_steps:,}')},}/{self.total_steps:,}  "
              f"episodes {len(history['episode_returns']):>5}  return (last 20) "
              f"{np.mean(recent):7.1f}  epsilon {history['epsilons'][-1]:.2f}  loss {loss}  "
              f"{steps_per_second:,.0f} steps/s", flush=True)

    def last_line(self, history):
        """The line for the last step, unless an episode ended right there."""
        if history["env_steps"] > self.printed_step and not history["interrupted"]:
            self._line(history["env_steps"], history)
        self._evaluations(history)
        if history["best_env_step"] is not None and not self.quiet:
            print(f"  policy: the weights of step {history['best_env_step']:,} (the best "
                  "greedy evaluation)", flush=True)

    def _scalars(self, step, history, new_losses):
        import tensorflow as tf

        with self.writer.as_default(step=step):
            tf.summary.scalar("episode_return", history["episode_returns"][-1])
            tf.summary.scalar("epsilon", history["epsilons"][-1])
            if new_losses:
                tf.summary.scalar("td_loss", float(np.mean(new_losses)))

    def close(self):
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def _tensorboard_writer(log_dir):
    """A tf.summary writer (TensorBoard's format, on any Keras backend), or None without
    TensorFlow."""
    if not has_tensorflow():
        return None
    import tensorflow as tf

    return tf.summary.create_file_writer(os.path.join(log_dir, "train"))


def _print_start(config, run_dir, env, runtime):
    rl = config.rl
    threshold = env["reward_threshold"]
    kind = ("double DQN" if rl.double_dqn else "DQN") + (f", {rl.n_step}-step returns"
                                                        if rl.n_step > 1 else "")
    print(f"tfsuite: experiment '{config.name}' -> {run_dir}")
    print(f"  env: {env['id']} ({env['observation_size']} observations, {env['num_actions']} "
          f"actions" + (f", solved at a mean return of {threshold:g}" if threshold else "")
          + f"), {rl.num_envs} env(s), {rl.total_steps:,} steps")
    print(f"  agent: {kind}, Q-network {rl.hidden_units}; runtime: backend "
          f"{runtime.backend}, seed {config.runtime.seed}", flush=True)


# ---------------------------------------------------------------- evaluate


def _write_evaluation(run_dir, returns, env, seed):
    from tfsuite.plots import plot_returns

    out_dir = os.path.join(run_dir, "evaluation")
    os.makedirs(out_dir, exist_ok=True)
    metrics = _return_stats(returns, env)
    write_json(os.path.join(out_dir, "metrics.json"),
               {"metrics": metrics, "returns": returns, "first_seed": seed})
    plot_returns(returns, os.path.join(out_dir, "returns.png"),
                 reward_threshold=env["reward_threshold"])
    return metrics, out_dir


def evaluate(run_dir, episodes=EVAL_EPISODES, seed=EVAL_SEED):
    """Runs the run's greedy policy for `episodes` episodes; writes evaluation/ and
    returns (metrics, returns, out_dir)."""
    from tfsuite.rl.envs import describe_env
    from tfsuite.rl.policy import evaluate_policy
    from tfsuite.stages import load_run_model

    config = read_run_config(run_dir)
    if episodes < 1:
        raise user_error("--episodes must be positive", "an int >= 1", f"episodes={episodes}")
    _check_seed(seed)
    model = load_run_model(run_dir)
    returns = evaluate_policy(model, config.rl.env_id, episodes, seed)
    metrics, out_dir = _write_evaluation(run_dir, returns, describe_env(config.rl), seed)
    return metrics, returns, out_dir


# ---------------------------------------------------------------- render


def render(run_dir, out, seed=EVAL_SEED, fps=50, scale=0.5):
    """Writes a GIF of one greedy episode to `out`; returns (path, return, frames).

    `out` must be a new `.gif` path: an existing file is never replaced.
    """
    from PIL import Image

    from tfsuite.rl.envs import gymnasium
    from tfsuite.rl.policy import play_episode
    from tfsuite.stages import load_run_model

    _check_gif_path(out)
    # Browsers play GIF frames shorter than 20 ms at 100 ms: 50 fps is the most a GIF shows.
    if not 0 < scale <= 4 or not 1 <= fps <= 50:
        raise user_error("Bad render settings", "--scale in (0, 4] and --fps in [1, 50]",
                         f"scale={scale}, fps={fps}")
    _check_seed(seed)
    config = read_run_config(run_dir)
    model = load_run_model(run_dir)
    gym = gymnasium()
    # Frames are drawn off-screen: no display, no sound (pygame asks SDL for both).
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        env = gym.make(config.rl.env_id, render_mode="rgb_array")
    except gym.error.DependencyNotInstalled as e:
        raise user_error("Rendering needs the environment's drawing library", "it installed",
                         str(e), 'Install it with: pip install -e ".[rl]" '
                         '(gymnasium[classic-control] brings pygame).') from None
    frames = []
    try:
        total = play_episode(model, env, seed, frames)
    finally:
        env.close()
    images = [_gif_frame(Image.fromarray(frame), scale) for frame in frames]
    tmp = out + ".tmp.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0)
    os.replace(tmp, out)
    return out, total, len(images)


def _gif_frame(image, scale):
    if scale != 1:
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))))
    from PIL import Image

    return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)


def _check_seed(seed):
    if not 0 <= seed < 2 ** 31:
        raise user_error("--seed is out of range", "an int in [0, 2**31)", f"seed={seed}")


def _check_gif_path(out):
    if not out.lower().endswith(".gif"):
        raise user_error("--out must name a GIF file", "a path ending in .gif",
                         f"out={out!r}", "e.g. --out episode.gif")
    if os.path.exists(out):
        raise user_error("The output file already exists", "a new path (nothing is "
                         "overwritten)", f"out={out!r}", "Choose another --out or remove "
                         "the file first.")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise user_error("The output folder does not exist", "an existing folder",
                         f"out={out!r}", f"Create {folder} first.")


# ---------------------------------------------------------------- what the CLI prints


def format_summary(summary):
    metrics = summary["metrics"]
    env = summary["env"]
    threshold = env["reward_threshold"]
    solved = ("" if threshold is None else
              f" ({'solved' if metrics['solved'] else 'not solved'}: {threshold:g} needed)")
    run_dir = os.path.dirname(summary["model"]["path"])
    return "\n".join([
        f"Done: {summary['experiment']} - greedy return {metrics['eval_mean_return']:.1f} "
        f"+- {metrics['eval_std_return']:.1f} over {metrics['eval_episodes']} episodes{solved} "
        f"- {metrics['env_steps']:,} env steps, {metrics['episodes']} episodes - "
        f"{summary['wall_seconds']:.0f}s - {summary['env_steps_per_second']:,.0f} steps/s",
        f"  model: {summary['model']['path']}",
        f"  curves: {os.path.join(run_dir, 'training_curves.png')}",
        f"  summary: {os.path.join(run_dir, SUMMARY)}",
        f"  watch it: python -m tfsuite.run render {run_dir} --out episode.gif"])


def format_evaluation(metrics, returns, out_dir):
    return (f"greedy return {metrics['eval_mean_return']:.1f} +- {metrics['eval_std_return']:.1f}"
            f" over {metrics['eval_episodes']} episodes (min {metrics['eval_min_return']:g}, "
            f"max {metrics['eval_max_return']:g})"
            + ("" if metrics["solved"] is None else
               f" - {'solved' if metrics['solved'] else 'not solved'}")
            + f"\n  returns: {', '.join(f'{r:g}' for r in returns)}"
            f"\n  plot: {os.path.join(out_dir, 'returns.png')}")

