"""Experience replay for DQN: a fixed-size ring of transitions, sampled uniformly.

Transitions are stored one environment step at a time from any number of
parallel environments. With `n_step > 1` each stored transition carries the
discounted sum of the next n rewards and the observation n steps later; the sum
stops at the end of an episode (termination or truncation), so a transition
never reaches across a reset, and `terminated` says whether bootstrapping
from the last observation is allowed.
"""

import collections

import numpy as np

from tfsuite.errors import user_error


class ReplayBuffer:
    """Uniform replay over the last `capacity` transitions.

    Args:
        capacity: how many transitions are kept; older ones are overwritten.
        observation_shape: the shape of one observation.
        num_envs: parallel environments that `add` receives a step from.
            Defaults to `1`.
        n_step: rewards summed per transition (n-step returns). Defaults to `1`.
        gamma: discount of the n-step sum. Defaults to `0.99`.
        seed: seeds the sampling. Defaults to `None`.
    """

    def __init__(self, capacity, observation_shape, num_envs=1, n_step=1, gamma=0.99,
                 seed=None):
        if int(capacity) < 1:
            raise user_error("The replay buffer needs room", "rl.buffer_size >= 1",
                             f"rl.buffer_size={capacity}", "Use e.g. 50000.")
        if int(n_step) < 1:
            raise user_error("n-step returns need n >= 1", "rl.n_step >= 1",
                             f"rl.n_step={n_step}")
        self.capacity = int(capacity)
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.observations = np.zeros((self.capacity, *observation_shape), np.float32)
        self.next_observations = np.zeros_like(self.observations)
        self.actions = np.zeros(self.capacity, np.int32)
        self.rewards = np.zeros(self.capacity, np.float32)  # the n-step discounted sum
        self.terminated = np.zeros(self.capacity, np.float32)
        self.discounts = np.zeros(self.capacity, np.float32)  # gamma ** (steps summed)
        self.size = 0
        self.position = 0
        self.rng = np.random.default_rng(seed)
        self.pending = [collections.deque() for _ in range(num_envs)]

    def __len__(self):
        return self.size

    def add(self, observations, actions, rewards, next_observations, terminated, truncated):
        """One step of every environment (arrays with a leading `num_envs` axis).

        Pass only real transitions: with NEXT_STEP autoreset, leave out the step
        that only resets an environment (its action is ignored by the env).
        """
        for env, queue in enumerate(self.pending):
            queue.append((observations[env], int(actions[env]), float(rewards[env]),
                          next_observations[env], bool(terminated[env])))
            done = bool(terminated[env]) or bool(truncated[env])
            if len(queue) == self.n_step:
                self._store(queue)
                queue.popleft()
            if done:  # the episode ended: flush the shorter tails, never across the reset
                while queue:
                    self._store(queue)
                    queue.popleft()

    def _store(self, queue):
        """The transition that starts at queue[0], summed over the steps in the queue."""
        total, discount = 0.0, 1.0
        for _, _, reward, _, _ in queue:
            total += discount * reward
            discount *= self.gamma
        first, last = queue[0], queue[-1]
        i = self.position
        self.observations[i], self.actions[i] = first[0], first[1]
        self.rewards[i], self.discounts[i] = total, discount
        self.next_observations[i], self.terminated[i] = last[3], float(last[4])
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size):
        """A dict of arrays for `batch_size` transitions drawn uniformly (with replacement)."""
        if self.size == 0:
            raise user_error("Cannot sample an empty replay buffer",
                             "at least one stored transition", "size=0",
                             "Collect experience first (rl.learning_starts > 0).")
        index = self.rng.integers(0, self.size, batch_size)
        return {"observations": self.observations[index], "actions": self.actions[index],
                "rewards": self.rewards[index], "next_observations":
                    self.next_observations[index], "terminated": self.terminated[index],
                "discounts": self.discounts[index]}
