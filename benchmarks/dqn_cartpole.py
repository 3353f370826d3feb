"""DQN on CartPole-v1: the cartpole_dqn experiment over several seeds, in one command.

    python benchmarks/dqn_cartpole.py [--seeds 1 2 3] [--steps 50000] [--no-default]

Each seed trains the shipped `cartpole_dqn` experiment through the CLI, as a
user would, in its own process (`runtime.seed=N`, no export), then the run's
greedy policy is scored over 20 episodes (fresh seeds, apart from training's).
Then the default command itself, `python -m tfsuite.run train cartpole_dqn`
(seed 42, export included), is timed end to end. A random policy is the
baseline. Prints a table, then one line of JSON. Bars (issue 6): greedy mean
>= 475 for every seed within 50,000 environment steps; the default run under
10 minutes.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

SOLVED = 475.0


def train(run_dir, overrides):
    sets = [a for o in overrides for a in ("--set", o)]
    command = [sys.executable, "-m", "tfsuite.run", "train", "cartpole_dqn", "--run-dir",
               run_dir, *sets, "--quiet"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}"
                         f"{result.stderr[-2000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f), wall


def first_solved_step(run_dir):
    """The env step at which the mean of the last 20 training episodes first reached 475
    (exploration still on), or None."""
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    returns = [float(r["return"]) for r in rows]
    for i in range(19, len(returns)):
        if np.mean(returns[i - 19:i + 1]) >= SOLVED:
            return int(rows[i]["env_step"])
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--no-default", action="store_true",
                        help="skip timing the default command (seed 42, with export)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfsuite-dqn-")
    rows = []
    runs = [(f"seed {s}", [f"runtime.seed={s}", f"rl.total_steps={args.steps}",
                           "export.formats=[]"]) for s in args.seeds]
    if not args.no_default:
        runs.append(("default command (seed 42, export)", []))
    for index, (name, overrides) in enumerate(runs):
        run_dir = os.path.join(work, str(index))
        summary, wall = train(run_dir, overrides)
        metrics = summary["metrics"]
        rows.append({"run": name, "eval_mean_return": metrics["eval_mean_return"],
                     "eval_min_return": metrics["eval_min_return"],
                     "env_steps": metrics["env_steps"], "episodes": metrics["episodes"],
                     "first_train_mean_475_at": first_solved_step(run_dir),
                     "policy_from_env_step": metrics["policy_from_env_step"],
                     "final_weights_greedy_mean": summary["training_evaluations"][-1][
                         "mean_return"],
                     "training_seconds": summary["training_seconds"],
                     "env_steps_per_second": summary["env_steps_per_second"],
                     "command_wall_seconds": round(wall, 1)})
        print(f"{name}: greedy mean {metrics['eval_mean_return']:.1f}, "
              f"{wall:.0f}s", flush=True)
    from tfsuite.rl.policy import random_policy_returns

    baseline = float(np.mean(random_policy_returns("CartPole-v1")))
    print(f"\nDQN on CartPole-v1 ({platform.machine()}, {os.cpu_count()} CPU cores); "
          f"random policy: mean return {baseline:.1f}")
    header = ["run", "greedy mean (20 ep.)", "min", "env steps", "episodes",
              "train mean-20 >= 475 at", "policy kept from step",
              "final weights (10 ep.)", "train s", "env steps/s", "command s"]
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(v) for v in r.values()))
    seeds = [r for r in rows if r["run"].startswith("seed")]
    solved = sum(r["eval_mean_return"] >= SOLVED for r in seeds)
    default = [r for r in rows if r["run"].startswith("default")]
    print(json.dumps({"random_policy_mean_return": round(baseline, 1),
                      "solved_seeds": f"{solved}/{len(seeds)}",
                      "default_command_seconds": default[0]["command_wall_seconds"]
                      if default else None, "runs": rows}))


if __name__ == "__main__":
    main()
