"""Reinforcement learning: what the shared stages need from a DQN run.

Training, evaluation and rendering are run-level loops (`tfsuite.rl.stage`);
the export stage asks this task for the inputs it verifies artifacts on and
for the names of the signature's outputs.
"""

import sys

import numpy as np


class ReinforcementLearningTask:
    """A DQN run's Q-network as the export stage sees it."""

    def __init__(self, config):
        self.config = config

    def export_spec(self, run_dir, model, count):
        """Up to `count` observations from the policy's own greedy episodes (the states it
        will be served), or standard-normal stand-ins when the environment is missing.
        The signature returns `q_values` and the greedy `action`."""
        env_id = self.config.rl.env_id
        spec = {"outputs": ("q_values", "action"),
                "input": {"description": f"one {env_id} observation per row, as the "
                                         "environment returns it"},
                "labels": {"env_id": env_id, "num_actions": int(model.output_shape[-1])}}
        try:
            observations = _greedy_observations(model, env_id, count, self.config.runtime.seed)
        except Exception as e:  # no gymnasium, the env's dependencies missing, ...
            print(f"warning: the environment is not available ({e}); verifying on random "
                  "observations.", file=sys.stderr)
            shape = (min(count, 64), *model.input_shape[1:])
            return {**spec, "inputs": np.random.default_rng(0).standard_normal(shape).astype(
                np.float32), "source": "random observations"}
        return {**spec, "inputs": observations, "source": f"{env_id} greedy episodes"}


def _greedy_observations(model, env_id, count, seed):
    from tfsuite.rl.envs import gymnasium
    from tfsuite.rl.policy import greedy_actions

    env = gymnasium().make(env_id)
    observations, episode = [], 0
    try:
        while len(observations) < count:
            observation, _ = env.reset(seed=seed + 20_000 + episode)
            done = False
            while not done and len(observations) < count:
                observations.append(observation)
                action = int(greedy_actions(model, observation[None])[0])
                observation, _, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
            episode += 1
    finally:
        env.close()
    return np.asarray(observations, np.float32)
