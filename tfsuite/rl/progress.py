"""Progress of a DQN run: history.csv rows, TensorBoard scalars and progress lines."""

import csv
import os
import time

import numpy as np

from tfsuite.packages import has_tensorflow
from tfsuite.progress import ProgressBar
from tfsuite.run_dir import HISTORY


class Progress:
    """Called after every episode: a history.csv row, TensorBoard scalars, and a progress
    line each tenth of the run (return of the last 20 episodes, epsilon, loss, speed); on a
    terminal, a live bar of the environment steps in between."""

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
        self.csv.writerow(["episode", "env_step", "return", "epsilon", "q_mean",
                           "wall_seconds"])
        self.writer = _tensorboard_writer(os.path.join(run_dir, "logs"))
        self.bar = ProgressBar(total_steps, "DQN", "steps", enabled=not quiet)

    def __call__(self, step, history):
        episode = len(history["episode_returns"])
        wall = time.perf_counter() - self.started
        new_losses = history["losses"][self.losses_seen:]
        new_q = history["q_values"][self.losses_seen:]
        self.losses_seen = len(history["losses"])
        # The mean Q(s, a) of the updates since the last episode ended (none before
        # learning starts: left empty).
        q_mean = round(float(np.mean(new_q)), 4) if new_q else ""
        self.csv.writerow([episode, step, history["episode_returns"][-1],
                           round(history["epsilons"][-1], 4), q_mean, round(wall, 2)])
        if self.writer is not None:
            self._scalars(step, history, new_losses, new_q)
        self._evaluations(history)
        if step >= self.next_line:
            self.next_line += self.interval
            self.file.flush()
            self._line(step, history)
        if self.bar.due():
            recent = history["episode_returns"][-20:]
            self.bar.update(step, f"episode {episode} - return (last 20) {np.mean(recent):.1f}")

    def _evaluations(self, history):
        """A line (and a TensorBoard scalar) for each greedy evaluation since the last call."""
        for record in history["evaluations"][self.evaluations_seen:]:
            best = max(e["mean_return"] for e in history["evaluations"])
            if self.writer is not None:
                import tensorflow as tf

                with self.writer.as_default(step=record["env_step"]):
                    tf.summary.scalar("greedy_eval_return", record["mean_return"])
            if not self.quiet:
                self.bar.close()
                print(f"  greedy evaluation at step {record['env_step']:,}: mean return "
                      f"{record['mean_return']:.1f} (best so far {best:.1f})", flush=True)
        self.evaluations_seen = len(history["evaluations"])

    def _line(self, step, history):
        self.printed_step = step
        if self.quiet or not history["episode_returns"]:
            return
        self.bar.close()
        recent = history["episode_returns"][-20:]
        loss = f"{np.mean(history['losses'][-256:]):.4f}" if history["losses"] else "-"
        steps_per_second = step / max(time.perf_counter() - self.started, 1e-9)
        print(f"  step {step:>{len(f'{self.total_steps:,}')},}/{self.total_steps:,}  "
              f"episodes {len(history['episode_returns']):>5}  return (last 20) "
              f"{np.mean(recent):7.1f}  epsilon {history['epsilons'][-1]:.2f}  loss {loss}  "
              f"{steps_per_second:,.0f} steps/s", flush=True)

    def last_line(self, history):
        """The line for the last step, unless an episode ended right there."""
        self.bar.close()
        if history["env_steps"] > self.printed_step and not history["interrupted"]:
            self._line(history["env_steps"], history)
        self._evaluations(history)
        if history["best_env_step"] is not None and not self.quiet:
            print(f"  policy: the weights of step {history['best_env_step']:,} (the best "
                  "greedy evaluation)", flush=True)

    def _scalars(self, step, history, new_losses, new_q):
        import tensorflow as tf

        with self.writer.as_default(step=step):
            tf.summary.scalar("episode_return", history["episode_returns"][-1])
            tf.summary.scalar("epsilon", history["epsilons"][-1])
            if new_losses:
                tf.summary.scalar("td_loss", float(np.mean(new_losses)))
                tf.summary.scalar("q_mean", float(np.mean(new_q)))

    def close(self):
        self.bar.close()
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
