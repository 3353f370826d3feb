"""The greedy policy of a Q-network: actions, episodes, evaluation, and the periodic
evaluation during training that keeps the best weights."""

import numpy as np

from tfsuite.rl.envs import gymnasium


def greedy_actions(q_network, observations):
    """The highest-valued action for each observation (compiled, no `predict` loop)."""
    q_values = q_network.predict_on_batch(np.asarray(observations, np.float32))
    return np.asarray(q_values).argmax(axis=1)


def play_episode(q_network, env, seed, frames=None):
    """One greedy episode; returns its return. With a `frames` list, appends each
    `env.render()` image (the env made with render_mode="rgb_array")."""
    observation, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        if frames is not None:
            frames.append(env.render())
        action = int(greedy_actions(q_network, observation[None])[0])
        observation, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    if frames is not None:
        frames.append(env.render())
    return total


def evaluate_policy(q_network, env_id, episodes=20, seed=10_000):
    """Greedy returns over `episodes` episodes, seeded `seed`, `seed + 1`, ... (apart
    from training's seeds)."""
    env = gymnasium().make(env_id)
    try:
        return _returns(q_network, env, episodes, seed)
    finally:
        env.close()


def random_policy_returns(env_id, episodes=20, seed=10_000):
    """The baseline: uniformly random actions on the episodes `evaluate_policy` plays."""
    env = gymnasium().make(env_id)
    env.action_space.seed(seed)
    returns = []
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def _returns(q_network, env, episodes, seed):
    return [play_episode(q_network, env, seed + episode) for episode in range(episodes)]


class BestCheckpoint:
    """Greedy evaluation every `interval` env steps during training, on the same
    `episodes` episodes each time (seeded apart from the final evaluation's); keeps the
    weights of the best one. DQN can forget a solved task as training goes on (the
    replay fills with near-perfect episodes), so the run keeps its best policy, as
    Stable-Baselines3's EvalCallback does. `interval=0` keeps the last weights."""

    SEED = 1_000_000

    def __init__(self, env_id, interval, episodes):
        self.interval, self.episodes = interval, episodes
        self.next_step = interval
        self.env = gymnasium().make(env_id) if interval else None
        self.best_mean, self.best_step, self.best_weights = -np.inf, None, None
        self.evaluations = []  # [{"env_step", "mean_return"}]

    def due(self, step):
        return bool(self.interval) and step >= self.next_step

    def evaluate(self, q_network, step):
        """Scores the current weights; keeps them when they match or beat the best (a
        tie goes to the later, more trained weights)."""
        self.next_step += self.interval * (1 + (step - self.next_step) // self.interval)
        mean = float(np.mean(_returns(q_network, self.env, self.episodes, self.SEED)))
        self.evaluations.append({"env_step": step, "mean_return": round(mean, 2)})
        if mean >= self.best_mean:
            self.best_mean, self.best_step = mean, step
            self.best_weights = [np.array(w) for w in q_network.get_weights()]
        return mean

    def restore_best(self, q_network, step):
        """Evaluates the final weights too, then loads the best into `q_network`."""
        if not self.interval:
            return
        if not self.evaluations or self.evaluations[-1]["env_step"] != step:
            self.evaluate(q_network, step)
        q_network.set_weights(self.best_weights)

    def close(self):
        if self.env is not None:
            self.env.close()


def greedy_observations(model, env_id, count, seed):
    """Up to `count` observations from the greedy policy's own episodes (the states it
    will be served), seeded apart from training and evaluation."""
    from tfsuite.rl.envs import gymnasium

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
