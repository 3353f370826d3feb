"""DQN for Gymnasium environments with discrete actions and vector observations.

Reads top to bottom: the Q-network, the loss, the agent (acting and the
update step), then the training loop. The settings are in `config.py`, the
environments in `envs.py`, the greedy policy and the periodic evaluation in
`policy.py`, replay and n-step returns in `replay.py`, the TD targets in
`targets.py`.

Bootstrapping uses `terminated` only (a time limit still bootstraps), and
transitions never cross an episode reset: the vector environments reset in the
same step (`AutoresetMode.SAME_STEP`) and the true last observation of an
ending episode comes from `info["final_obs"]`.
"""

import time

import keras
import numpy as np
from keras import ops

from tfsuite.rl.envs import make_envs, real_next_observations
from tfsuite.rl.policy import BestCheckpoint, greedy_actions
from tfsuite.rl.replay import ReplayBuffer
from tfsuite.rl.targets import linear_schedule, td_targets


# ---------------------------------------------------------------- Q-network and loss


def build_q_network(observation_size, num_actions, hidden_units, name="q_network"):
    """An MLP from observations to one Q-value per action (float32 output)."""
    inputs = keras.Input((observation_size,), name="observation")
    x = inputs
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{index + 1}")(x)
    outputs = keras.layers.Dense(num_actions, name="q_values", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


class TDPair(keras.layers.Layer):
    """Q(s, a) of the taken actions next to their TD targets, `[batch, 2]`.

    The targets come from the target network (and, for double DQN, the online
    network's choice of action) under `stop_gradient`: only Q(s, a) is trained.
    """

    def call(self, q_values, actions, rewards, terminated, discounts, next_q_target,
             next_q_online=None):
        chosen = ops.take_along_axis(q_values, ops.expand_dims(ops.cast(actions, "int32"), -1),
                                     axis=-1)[:, 0]
        targets = ops.stop_gradient(td_targets(rewards, terminated, discounts, next_q_target,
                                               next_q_online))
        return ops.stack([chosen, targets], axis=-1)


class QLearningLoss(keras.losses.Loss):
    """Huber loss between Q(s, a) and its TD target, both in `y_pred` (from `TDPair`)."""

    def call(self, y_true, y_pred):
        return keras.losses.huber(y_pred[:, 1:], y_pred[:, :1])


def q_taken(y_true, y_pred):
    """The batch's mean Q(s, a): Q-values that grow past any return the agent has seen
    are DQN's overestimation (`diagnose` reads them from history.csv)."""
    return ops.mean(y_pred[:, 0])


def build_update_model(q_network, target_network, double_dqn):
    """One Keras model whose `train_on_batch` is a whole DQN update, compiled as one
    step: Q-values, targets from the (frozen) target network, Huber loss, clipped Adam."""
    size = q_network.input_shape[-1]
    inputs = {"observations": keras.Input((size,), name="observations"),
              "next_observations": keras.Input((size,), name="next_observations")}
    for name in ("actions", "rewards", "terminated", "discounts"):
        inputs[name] = keras.Input((), name=name)
    target_network.trainable = False  # updated by copying or averaging, never by gradients
    next_online = q_network(inputs["next_observations"]) if double_dqn else None
    pair = TDPair(name="td_pair")(
        q_network(inputs["observations"]), inputs["actions"], inputs["rewards"],
        inputs["terminated"], inputs["discounts"], target_network(inputs["next_observations"]),
        next_online)
    return keras.Model(inputs, pair, name="dqn_update")


# ---------------------------------------------------------------- the agent


class DQNAgent:
    """The online and target Q-networks, epsilon-greedy acting and the update step.

    The greedy action (`predict_on_batch`) and the whole update (one
    `train_on_batch` of `build_update_model`) are compiled by Keras: no per-step
    `predict`, no host round trip inside an update.
    """

    def __init__(self, config, observation_size, num_actions, seed=42):
        self.config = config
        self.num_actions = num_actions
        self.q_network = build_q_network(observation_size, num_actions, config.hidden_units)
        self.target_network = build_q_network(observation_size, num_actions,
                                              config.hidden_units, name="target_q_network")
        self.target_network.set_weights(self.q_network.get_weights())
        self.update_model = build_update_model(self.q_network, self.target_network,
                                               config.double_dqn)
        self.update_model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate,
                                            global_clipnorm=config.max_grad_norm),
            loss=QLearningLoss(), metrics=[q_taken])
        self.rng = np.random.default_rng(seed)

    def act(self, observations, epsilon):
        """Epsilon-greedy actions for a batch of observations."""
        count = len(observations)
        explore = self.rng.random(count) < epsilon
        random_actions = self.rng.integers(0, self.num_actions, count)
        if explore.all():  # the network's choice would be thrown away
            return random_actions
        return np.where(explore, random_actions, self.greedy(observations))

    def greedy(self, observations):
        return greedy_actions(self.q_network, observations)

    def update(self, batch):
        """One gradient step on a replay batch; returns (loss, mean Q(s, a))."""
        inputs = {name: batch[name] for name in ("observations", "next_observations",
                                                 "actions", "rewards", "terminated",
                                                 "discounts")}
        logs = self.update_model.train_on_batch(
            inputs, np.zeros(len(batch["actions"]), np.float32), return_dict=True)
        return float(logs["loss"]), float(logs["q_taken"])

    def policy_network(self):
        """A copy of the online Q-network without loss or optimizer: what is saved and
        exported (it loads anywhere, with no tfsuite class registered)."""
        copy = build_q_network(self.q_network.input_shape[-1], self.num_actions,
                               self.config.hidden_units)
        copy.set_weights(self.q_network.get_weights())
        return copy

    def update_target(self):
        """Copies the online weights (tau = 1) or moves towards them by tau (Polyak)."""
        tau = self.config.tau
        for target, online in zip(self.target_network.weights, self.q_network.weights):
            # A copy, not the online array itself: JAX donates both variables' buffers to
            # the compiled update, and one buffer cannot be donated twice.
            target.assign(ops.copy(online) if tau >= 1.0
                          else tau * online + (1.0 - tau) * target)


# ---------------------------------------------------------------- training


def train_dqn(config, seed=42, log=None, buffer=None):
    """Trains a DQN agent; returns (agent, history).

    `history` holds `episode_returns` with their `episode_steps` and
    `epsilons`, the `losses` and mean `q_values` of the updates with their
    `loss_steps`, the greedy `evaluations`
    during training and the `best_env_step` whose weights the agent ends with
    (see `BestCheckpoint`), and `env_steps`, `wall_seconds`, `interrupted`. `log(step, history)` is called after every
    finished episode when given. Ctrl-C stops training early and still returns
    the agent, with `interrupted` set, so nothing trained so far is lost. Pass a
    `ReplayBuffer` as `buffer` to look at what was stored afterwards.
    """
    keras.utils.set_random_seed(seed)
    envs = make_envs(config)
    envs.action_space.seed(seed)
    observation_size = envs.single_observation_space.shape[0]
    # Exploration and replay sampling draw from independent streams of the one seed.
    agent_seed, buffer_seed = np.random.SeedSequence(seed).spawn(2)
    agent = DQNAgent(config, observation_size, int(envs.single_action_space.n), agent_seed)
    if buffer is None:
        buffer = ReplayBuffer(config.buffer_size, (observation_size,), config.num_envs,
                              config.n_step, config.gamma, seed=buffer_seed)
    history = {"episode_returns": [], "episode_steps": [], "losses": [], "q_values": [],
               "loss_steps": [],
               "epsilons": [], "env_steps": 0, "interrupted": False}
    started = time.perf_counter()
    best = BestCheckpoint(config.env_id, config.eval_interval, config.eval_episodes)
    history["evaluations"] = best.evaluations  # filled in as training goes
    try:
        with _StopOnCtrlC() as stop:
            _run_steps(config, seed, envs, agent, buffer, history, log, stop, best)
        history["interrupted"] = stop.requested
        if not stop.requested:
            best.restore_best(agent.q_network, history["env_steps"])
    finally:
        envs.close()
        best.close()
        history["best_env_step"] = best.best_step
        history["wall_seconds"] = time.perf_counter() - started
    return agent, history


class _StopOnCtrlC:
    """Turns the first Ctrl-C into a request the loop sees between two steps (an
    interrupt inside a compiled JAX step would leave the weights' buffers donated and
    gone); a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _run_steps(config, seed, envs, agent, buffer, history, log, stop, best):
    observations, _ = envs.reset(seed=seed)
    returns = np.zeros(config.num_envs)
    explore_steps = config.exploration_fraction * config.total_steps
    next_train, next_target = config.learning_starts, config.target_update_interval
    while history["env_steps"] < config.total_steps and not stop.requested:
        step = history["env_steps"]
        epsilon = linear_schedule(config.epsilon_start, config.epsilon_end, explore_steps, step)
        actions = (envs.action_space.sample() if step < config.learning_starts
                   else agent.act(observations, epsilon))
        next_observations, rewards, terminated, truncated, infos = envs.step(actions)
        real_next = real_next_observations(next_observations, terminated, truncated, infos)
        buffer.add(observations, actions, rewards, real_next, terminated, truncated)
        returns += rewards
        step = history["env_steps"] = step + config.num_envs
        for env in np.flatnonzero(np.logical_or(terminated, truncated)):
            history["episode_returns"].append(float(returns[env]))
            history["episode_steps"].append(step)
            history["epsilons"].append(float(epsilon))
            returns[env] = 0.0
            if log:
                log(step, history)
        observations = next_observations
        if best.due(step):
            best.evaluate(agent.q_network, step)
        if step >= next_target:  # once, however many intervals num_envs steps crossed
            next_target += config.target_update_interval * (
                1 + (step - next_target) // config.target_update_interval)
            agent.update_target()
        if step >= next_train:
            rounds = 1 + (step - next_train) // config.train_frequency
            next_train += config.train_frequency * rounds
            if len(buffer) >= config.batch_size:  # n-step tails may not be stored yet
                for _ in range(config.gradient_steps * rounds):
                    if stop.requested:
                        break
                    loss, q_value = agent.update(buffer.sample(config.batch_size))
                    history["losses"].append(loss)
                    history["q_values"].append(q_value)
                    history["loss_steps"].append(step)
