"""The DQN agent's typed settings: the `rl` section of an experiment config.

No Keras or Gymnasium import here, so reading a config stays cheap. The seed
is the run's `runtime.seed`; it seeds the environments, their action spaces,
NumPy and Keras.
"""

from dataclasses import dataclass, field
from typing import List

from tfsuite.config import require


@dataclass(frozen=True)
class DQNConfig:
    """DQN settings; the defaults are tuned for CartPole-v1 (50,000 steps).

    Stable-Baselines3 zoo's CartPole settings, plus double DQN and 3-step
    returns: with 1-step plain DQN, seed 1 reached a greedy mean of 89.9 at
    50,000 steps; with these and the best evaluated weights kept, seeds 1, 2, 3
    and 42 each score 500 (benchmarks/RESULTS.md).
    """

    env_id: str = "CartPole-v1"
    """Gymnasium id of a discrete-action, vector-observation environment."""
    num_envs: int = 1
    """Parallel environments stepped together (synchronous vector env)."""
    total_steps: int = 50_000
    """Environment steps in all (summed over the parallel environments)."""
    learning_rate: float = 2.3e-3
    """Adam's learning rate."""
    buffer_size: int = 100_000
    """Transitions the replay buffer keeps."""
    batch_size: int = 64
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    learning_starts: int = 1_000
    """Environment steps of random play before the first update (updates also wait
    for `batch_size` stored transitions)."""
    train_frequency: int = 256
    """Environment steps between two rounds of updates."""
    gradient_steps: int = 128
    """Gradient steps per round of updates."""
    target_update_interval: int = 10
    """Environment steps between target-network updates (as Stable-Baselines3 counts:
    with bursts of updates, the target stays fixed within each burst)."""
    tau: float = 1.0
    """Target update: 1.0 copies the online network, smaller values are Polyak averaging
    (applied every `target_update_interval` env steps, as Stable-Baselines3 does)."""
    exploration_fraction: float = 0.16
    """Fraction of `total_steps` over which epsilon falls from its start to its end."""
    epsilon_start: float = 1.0
    """Epsilon of the epsilon-greedy policy at the start."""
    epsilon_end: float = 0.04
    """Epsilon after the exploration fraction."""
    double_dqn: bool = True
    """Let the online network pick the next action and the target network score it."""
    n_step: int = 3
    """Rewards summed per transition (n-step returns)."""
    max_grad_norm: float = 10.0
    """Gradients are clipped to this global norm."""
    eval_interval: int = 5_000
    """Env steps between greedy evaluations during training; the best evaluated weights
    are the run's policy (0: the last weights)."""
    eval_episodes: int = 10
    """Episodes per evaluation during training (the same seeds each time)."""
    hidden_units: List[int] = field(default_factory=lambda: [256, 256])
    """Widths of the Q-network's hidden Dense layers (ReLU)."""


def validate(config, check_files):
    """The DQN settings, and what a reinforcement-learning run does not take."""
    rl = config.rl
    require(bool(rl.env_id.strip()), "rl.env_id", "a Gymnasium id such as CartPole-v1",
             rl.env_id)
    for key in ("num_envs", "total_steps", "buffer_size", "batch_size", "train_frequency",
                "gradient_steps", "target_update_interval", "n_step"):
        require(getattr(rl, key) >= 1, f"rl.{key}", "an int >= 1", getattr(rl, key),
                 "e.g. 100000 transitions." if key == "buffer_size" else None)
    for key in ("learning_starts", "eval_interval"):
        require(getattr(rl, key) >= 0, f"rl.{key}", "an int >= 0", getattr(rl, key))
    require(rl.eval_episodes >= 1, "rl.eval_episodes", "an int >= 1", rl.eval_episodes)
    for key in ("learning_rate", "max_grad_norm"):
        require(0 < getattr(rl, key) < float("inf"), f"rl.{key}", "a finite value > 0",
                 getattr(rl, key))
    require(0 <= rl.gamma <= 1, "rl.gamma", "a discount in [0, 1]", rl.gamma)
    require(0 < rl.tau <= 1, "rl.tau", "a fraction in (0, 1] (1 = hard updates)", rl.tau)
    for key in ("exploration_fraction", "epsilon_start", "epsilon_end"):
        require(0 <= getattr(rl, key) <= 1, f"rl.{key}", "a fraction in [0, 1]",
                 getattr(rl, key))
    require(len(rl.hidden_units) >= 1 and min(rl.hidden_units) >= 1, "rl.hidden_units",
             "a list of layer widths, each >= 1", rl.hidden_units)
    runtime = config.runtime
    require(runtime.strategy in ("auto", "none"), "runtime.strategy", "auto or none for "
             "reinforcement learning (DQN steps one small network; it trains on one device)",
             runtime.strategy)
    require(runtime.precision == "float32", "runtime.precision", "float32 for "
             "reinforcement learning (Q-values are regressed; the network is small)",
             runtime.precision)
    require(not config.compress.methods, "compress.methods", "[] for reinforcement learning "
             "(compression works on image classifiers)", config.compress.methods)
