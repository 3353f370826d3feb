"""The reinforcement-learning task: a DQN agent trained in a Gymnasium environment.

A run directory holds what an image run holds: config.yaml (written first),
history.csv (one row per episode, written as training goes), logs/
(TensorBoard), model.keras (the Q-network without optimizer state: it loads on
any backend), training_curves.png, evaluation/ and summary.json. The export
stage turns model.keras into a SavedModel whose signature maps observations to
`q_values` and the greedy `action`. DQN runs do not resume (the replay buffer
is not kept): an interrupted run trains again from the start.
"""

import dataclasses
import os
import shutil
import sys

import numpy as np

from tfsuite.config import IMAGE_SOURCES, TaskSchema
from tfsuite.errors import user_error
from tfsuite.io import display_path, write_json
from tfsuite.rl import config as rl_config
from tfsuite.run_dir import CHECKPOINTS, CURVES, EVALUATION, SUMMARY
from tfsuite.task import ExportSpec, Fitted, Task, register_task

EVAL_EPISODES = 20
EVAL_SEED = 10_000  # evaluation episodes are seeded apart from training's


@register_task
class ReinforcementLearningTask(Task):
    """DQN (double, n-step) on a discrete-action, vector-observation environment."""

    name = "reinforcement_learning"
    label = "reinforcement-learning"
    noun = "DQN agents"
    # data.* is not read; its default source stays valid.
    schema = TaskSchema(task=name, data_sources=IMAGE_SOURCES, section="rl",
                        section_class=rl_config.DQNConfig, validate=rl_config.validate,
                        unused={key: "DQN reads `rl.*` instead" for key in
                                ("data", "model", "train")})
    commands = {"render": "DQN runs: a GIF of one greedy episode"}
    can_probe = False  # no dataset to time: its speed is env_steps_per_second
    evaluate_options = {
        "--episodes": {"type": int, "help": "DQN runs: episodes to play (default 20)"},
        "--seed": {"type": int, "help": "DQN runs: seed of the first episode (default "
                   "10000, apart from training's)"}}

    # ---------------------------------------------------------------- the run

    def setup_runtime(self):
        """One device: DQN steps one small network a batch of 64 at a time."""
        import keras

        from tfsuite.training.cluster import current_cluster
        from tfsuite.training.runtime import setup_runtime

        cluster = current_cluster(keras.backend.backend())
        if cluster.num_workers > 1:
            raise user_error("DQN trains in one process", "a single process (no `launch`, no "
                             "TF_CONFIG cluster)", f"worker {cluster.index} of "
                             f"{cluster.num_workers}", "Run `python -m tfsuite.run train "
                             "EXPERIMENT` on its own; start several seeds as separate runs.")
        return setup_runtime(dataclasses.replace(self.config.runtime, strategy="none"))

    def prepare(self, runtime, run_dir, resuming):
        """The environment's description; a bad env id fails here."""
        from tfsuite.rl.envs import describe_env

        return describe_env(self.config.rl)

    def write_run_files(self, run_dir, data, resuming):
        # A fresh start: TensorBoard events of an attempt that stopped early (tfsuite's own
        # files, or resolve_run_dir would have refused the folder) would overlap the new ones.
        shutil.rmtree(os.path.join(run_dir, "logs"), ignore_errors=True)

    def print_start(self, run_dir, runtime, env, resuming):
        rl = self.config.rl
        threshold = env["reward_threshold"]
        kind = ("double DQN" if rl.double_dqn else "DQN") + (f", {rl.n_step}-step returns"
                                                            if rl.n_step > 1 else "")
        print(f"tfsuite: experiment '{self.config.name}' -> {run_dir}")
        print(f"  env: {env['id']} ({env['observation_size']} observations, "
              f"{env['num_actions']} actions" + (f", solved at a mean return of {threshold:g}"
                                                 if threshold else "")
              + f"), {rl.num_envs} env(s), {rl.total_steps:,} steps")
        print(f"  agent: {kind}, Q-network {rl.hidden_units}; runtime: backend "
              f"{runtime.backend}, seed {self.config.runtime.seed}", flush=True)

    def fit(self, run_dir, runtime, env, quiet):
        from tfsuite.rl.dqn import train_dqn
        from tfsuite.rl.progress import Progress

        progress = Progress(run_dir, self.config.rl.total_steps, quiet)
        try:
            agent, history = train_dqn(self.config.rl, self.config.runtime.seed, log=progress)
            progress.last_line(history)
        finally:
            progress.close()
        model = agent.policy_network()
        if history["interrupted"]:
            self._stop_interrupted(run_dir, model, history, env)
        training = history["wall_seconds"]
        recent = history["episode_returns"][-20:]
        return Fitted(
            model=model,
            info={"training_seconds": round(training, 2),
                  "env_steps_per_second": round(history["env_steps"] / training, 1)},
            metrics={"env_steps": history["env_steps"],
                     "episodes": len(history["episode_returns"]),
                     "gradient_steps": len(history["losses"]),
                     "train_mean_return_last_20": round(float(np.mean(recent)), 2)
                     if recent else None,
                     "policy_from_env_step": history["best_env_step"] or history["env_steps"]},
            history=history)

    def _stop_interrupted(self, run_dir, model, history, env):
        """Ctrl-C: keep the Q-network and curves so far in checkpoints/, say so, exit 130."""
        from tfsuite.models.saving import save_model
        from tfsuite.plots import plot_rl_history

        folder = os.path.join(run_dir, CHECKPOINTS)
        save_model(model, os.path.join(folder, "interrupted.keras"))
        if history["episode_returns"]:
            plot_rl_history(history, os.path.join(folder, "interrupted_curves.png"),
                            title=f"{self.config.name} (interrupted)",
                            reward_threshold=env["reward_threshold"])
        print(f"interrupted at environment step {history['env_steps']:,} of "
              f"{self.config.rl.total_steps:,}. The Q-network so far is in "
              f"{display_path(os.path.join(folder, 'interrupted.keras'))}. DQN runs do not "
              "resume (the replay buffer is not kept): the same command trains again from the "
              "start.", flush=True)
        raise SystemExit(130)

    def plot_training(self, fitted, env, path):
        from tfsuite.plots import plot_rl_history

        plot_rl_history(fitted.history, path, title=self.config.name,
                        reward_threshold=env["reward_threshold"])

    def evaluate_model(self, model, env, out_dir):
        from tfsuite.rl.policy import evaluate_policy

        returns = evaluate_policy(model, self.config.rl.env_id, EVAL_EPISODES, EVAL_SEED)
        return _write_evaluation(out_dir, returns, env, EVAL_SEED)

    def summary(self, fitted, env, runtime):
        return {"training_evaluations": fitted.history["evaluations"], "env": env,
                "runtime": runtime.report()}

    def diagnose(self, run, probe=False):
        from tfsuite.errors import user_error
        from tfsuite.rl.diagnosis import dqn_verdicts

        if probe:
            raise user_error("--probe times batches of a dataset; a DQN run has none",
                             "diagnose RUN_DIR without --probe", "--probe", "Its speed is "
                             "in summary.json (env_steps_per_second).")
        return dqn_verdicts(run)

    def diagnosis_curves(self, run):
        from tfsuite.rl.diagnosis import curves

        return curves(run)

    def model_name(self):
        return "q_network"

    def format_summary(self, summary):
        metrics = summary["metrics"]
        env = summary["env"]
        threshold = env["reward_threshold"]
        solved = ("" if threshold is None else
                  f" ({'solved' if metrics['solved'] else 'not solved'}: {threshold:g} needed)")
        run_dir = os.path.dirname(summary["model"]["path"])
        return "\n".join([
            f"Done: {summary['experiment']} - greedy return {metrics['eval_mean_return']:.1f} "
            f"+- {metrics['eval_std_return']:.1f} over {metrics['eval_episodes']} episodes"
            f"{solved} - {metrics['env_steps']:,} env steps, {metrics['episodes']} episodes - "
            f"{summary['wall_seconds']:.0f}s - {summary['env_steps_per_second']:,.0f} steps/s",
            f"  model: {summary['model']['path']}",
            f"  curves: {os.path.join(run_dir, CURVES)}",
            f"  summary: {os.path.join(run_dir, SUMMARY)}",
            f"  watch it: python -m tfsuite.run render {run_dir} --out episode.gif"])

    # ---------------------------------------------------------------- finished runs

    def evaluate_run(self, run_dir, options):
        """Plays the run's greedy policy (`--episodes`, `--seed`); writes evaluation/."""
        from tfsuite.rl.envs import describe_env
        from tfsuite.rl.policy import evaluate_policy
        from tfsuite.rl.render import check_seed

        episodes = EVAL_EPISODES if options.get("episodes") is None else options["episodes"]
        seed = EVAL_SEED if options.get("seed") is None else options["seed"]
        if episodes < 1:
            raise user_error("--episodes must be positive", "an int >= 1", f"episodes={episodes}")
        check_seed(seed)
        model = self.load_model(run_dir)
        returns = evaluate_policy(model, self.config.rl.env_id, episodes, seed)
        out_dir = os.path.join(run_dir, EVALUATION)
        metrics = _write_evaluation(out_dir, returns, describe_env(self.config.rl), seed)
        return metrics, (
            f"greedy return {metrics['eval_mean_return']:.1f} +- "
            f"{metrics['eval_std_return']:.1f} over {metrics['eval_episodes']} episodes (min "
            f"{metrics['eval_min_return']:g}, max {metrics['eval_max_return']:g})"
            + ("" if metrics["solved"] is None else
               f" - {'solved' if metrics['solved'] else 'not solved'}")
            + f"\n  returns: {', '.join(f'{r:g}' for r in returns)}"
            f"\n  plot: {os.path.join(out_dir, 'returns.png')}")

    def export_spec(self, run_dir, model, count):
        """Up to `count` observations from the policy's own greedy episodes, or
        standard-normal stand-ins when the environment is missing. The signature returns
        `q_values` and the greedy `action`."""
        from tfsuite.rl.policy import greedy_observations

        env_id = self.config.rl.env_id
        spec = {"outputs": ("q_values", "action"),
                "input": {"description": f"one {env_id} observation per row, as the "
                                         "environment returns it"},
                "labels": {"env_id": env_id, "num_actions": int(model.output_shape[-1])}}
        try:
            observations = greedy_observations(model, env_id, count, self.config.runtime.seed)
        except Exception as e:  # no gymnasium, the env's dependencies missing, ...
            print(f"warning: the environment is not available ({e}); verifying on random "
                  "observations.", file=sys.stderr)
            shape = (min(count, 64), *model.input_shape[1:])
            return ExportSpec(inputs=np.random.default_rng(0).standard_normal(shape).astype(
                np.float32), source="random observations", **spec)
        return ExportSpec(inputs=observations, source=f"{env_id} greedy episodes", **spec)

    @classmethod
    def add_command(cls, name, parser):
        parser.add_argument("run_dir")
        parser.add_argument("--out", default="episode.gif", help="GIF to write (a new file; "
                            "default episode.gif)")
        parser.add_argument("--seed", type=int, default=EVAL_SEED, help="episode seed "
                            "(default 10000)")
        parser.add_argument("--fps", type=int, default=50, help="frames per second (default "
                            "50, CartPole's real time)")
        parser.add_argument("--scale", type=float, default=0.5, help="frame size factor "
                            "(default 0.5)")
        return _run_render


def _run_render(args, backends):
    config = backends.run_config(args.run_dir, "reinforcement_learning",
                                 "`render` plays episodes of a DQN run", "cartpole_dqn")
    backends.start(config, args.debug)
    from tfsuite.rl.render import render

    path, total, frames = render(args.run_dir, args.out, args.seed, args.fps, args.scale)
    print(f"Wrote {path}: one greedy episode, return {total:g}, {frames} frames at "
          f"{args.fps} fps")


def _return_stats(returns, env):
    mean = float(np.mean(returns))
    threshold = env["reward_threshold"]
    return {"eval_mean_return": round(mean, 2),
            "eval_std_return": round(float(np.std(returns)), 2),
            "eval_min_return": float(np.min(returns)), "eval_max_return": float(np.max(returns)),
            "eval_episodes": len(returns),
            "solved": None if threshold is None else bool(mean >= threshold)}


def _write_evaluation(out_dir, returns, env, seed):
    from tfsuite.plots import plot_returns

    os.makedirs(out_dir, exist_ok=True)
    metrics = _return_stats(returns, env)
    write_json(os.path.join(out_dir, "metrics.json"),
               {"metrics": metrics, "returns": returns, "first_seed": seed})
    plot_returns(returns, os.path.join(out_dir, "returns.png"),
                 reward_threshold=env["reward_threshold"])
    return metrics
