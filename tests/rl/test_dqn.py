"""The DQN agent on real Gymnasium environments: episode boundaries with vector envs,
target updates, seeded runs that repeat, learning beyond a random policy, and the env
checks."""

import numpy as np
import pytest

from tfsuite.errors import UserError
from tfsuite.rl.config import DQNConfig
from tfsuite.rl.dqn import train_dqn
from tfsuite.rl.envs import make_envs
from tfsuite.rl.policy import evaluate_policy, random_policy_returns
from tfsuite.rl.replay import ReplayBuffer

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

ANGLE_LIMIT, X_LIMIT = 0.2095, 2.4  # CartPole-v1 terminates beyond these
SHORT_ID = "tfsuite-test/CartPoleShort-v1"  # CartPole with a 30-step time limit


def _random_play(num_envs, n_step, steps=900):
    """Random actions (no updates) through train_dqn's own loop into a replay buffer."""
    import gymnasium as gym

    if SHORT_ID not in gym.registry:
        gym.register(SHORT_ID, entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                     max_episode_steps=30)
    config = DQNConfig(env_id=SHORT_ID, num_envs=num_envs, total_steps=steps, n_step=n_step,
                       learning_starts=10 ** 9, hidden_units=[8])
    buffer = ReplayBuffer(10_000, (4,), num_envs, n_step=n_step, gamma=0.5)
    _, history = train_dqn(config, seed=3, buffer=buffer)
    return buffer, np.array(history["episode_returns"])


def test_transitions_follow_the_dynamics_and_never_cross_an_episode_reset():
    import gymnasium as gym

    buffer, returns = _random_play(num_envs=3, n_step=1)
    assert (returns == 30).sum() >= 3 and (returns < 30).sum() >= 20  # both kinds of end
    size = len(buffer)
    # Every stored next observation is the physics of (observation, action): never the
    # first observation of the next episode, at terminations and truncations alike.
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    for i in range(size):
        env.state = buffer.observations[i].astype(np.float64)
        env.steps_beyond_terminated = None
        expected, *_ = env.step(int(buffer.actions[i]))
        np.testing.assert_allclose(buffer.next_observations[i], expected, atol=1e-5)
    # Only terminations stop bootstrapping: `terminated` is set exactly where the state
    # is beyond a limit, and the episodes cut by the time limit alone keep bootstrapping.
    beyond = ((np.abs(buffer.next_observations[:size, 2]) > ANGLE_LIMIT)
              | (np.abs(buffer.next_observations[:size, 0]) > X_LIMIT))
    np.testing.assert_array_equal(beyond, buffer.terminated[:size].astype(bool))
    assert len(returns) - buffer.terminated[:size].sum() >= 3


def test_n_step_sums_stop_at_episode_ends_in_the_training_loop():
    buffer, returns = _random_play(num_envs=2, n_step=3)
    size = len(buffer)
    # One transition per step, but for the last (at most 2) steps of each env's unfinished
    # episode, which wait for their 3-step window.
    assert 900 - 2 * 2 <= size < 900
    discounts = np.round(buffer.discounts[:size], 6)
    assert set(discounts) <= {0.5, 0.25, 0.125}
    # The last two steps of every finished episode sum fewer than 3 rewards.
    assert (discounts > 0.125).sum() == 2 * len(returns)
    np.testing.assert_allclose(buffer.rewards[:size][discounts == 0.125], 1.75)  # 1+.5+.25


def test_polyak_and_hard_target_updates():
    from tfsuite.rl.dqn import DQNAgent

    agent = DQNAgent(DQNConfig(tau=0.25, hidden_units=[4]), 3, 2)
    online = [np.full_like(w, 2.0) for w in agent.q_network.get_weights()]
    agent.q_network.set_weights(online)
    agent.target_network.set_weights([np.zeros_like(w) for w in online])
    agent.update_target()
    for w in agent.target_network.get_weights():
        np.testing.assert_allclose(w, 0.5)  # 0.25 * 2 + 0.75 * 0
    agent.config = DQNConfig(tau=1.0, hidden_units=[4])
    agent.update_target()
    for w in agent.target_network.get_weights():
        np.testing.assert_allclose(w, 2.0)


def _short_config(**changes):
    settings = dict(total_steps=1500, learning_starts=500, train_frequency=64,
                    gradient_steps=32, hidden_units=[64, 64], buffer_size=5000)
    settings.update(changes)
    return DQNConfig(**settings)


def test_a_seeded_run_repeats():
    config = _short_config()
    _, first = train_dqn(config, seed=7)
    _, second = train_dqn(config, seed=7)
    assert first["episode_returns"] == second["episode_returns"]
    np.testing.assert_allclose(first["losses"], second["losses"], rtol=1e-5)
    _, other = train_dqn(config, seed=8)
    assert other["episode_returns"] != first["episode_returns"]


def test_a_short_run_beats_the_random_policy():
    config = _short_config(total_steps=3000, hidden_units=[128, 128],
                           exploration_fraction=0.2)
    agent, history = train_dqn(config, seed=0)
    assert history["env_steps"] == 3000 and not history["interrupted"]
    assert len(history["losses"]) == len(history["loss_steps"]) > 0
    greedy = np.mean(evaluate_policy(agent.policy_network(), "CartPole-v1", episodes=5))
    random_mean = np.mean(random_policy_returns("CartPole-v1", episodes=20))
    assert greedy > 3 * random_mean, (greedy, random_mean)


@pytest.mark.parametrize("env_id, fragment", [
    ("CartPol-v1", "Unknown Gymnasium environment"),
    ("Pendulum-v1", "DQN needs discrete actions"),
])
def test_environments_dqn_cannot_take(env_id, fragment):
    with pytest.raises(UserError, match=fragment) as raised:
        make_envs(DQNConfig(env_id=env_id))
    assert f"rl.env_id={env_id!r}" in str(raised.value)


def test_the_best_evaluated_weights_are_kept():
    from tfsuite.rl.dqn import build_q_network
    from tfsuite.rl.policy import BestCheckpoint

    network = build_q_network(4, 2, [2])
    # A hand-made controller: push right when the pole falls right (angle + 0.5 * its
    # speed > 0); it balances far longer than always pushing left (all-zero weights).
    hidden = np.zeros((4, 2), np.float32)
    hidden[2], hidden[3] = [1.0, -1.0], [0.5, -0.5]
    good = [hidden, np.zeros(2, np.float32), np.array([[0.0, 1.0], [1.0, 0.0]], np.float32),
            np.zeros(2, np.float32)]
    network.set_weights(good)
    best = BestCheckpoint("CartPole-v1", interval=5000, episodes=3)
    assert not best.due(4999) and best.due(5000)
    good_mean = best.evaluate(network, 5000)
    network.set_weights([np.zeros_like(w) for w in good])
    bad_mean = best.evaluate(network, 10_000)
    assert good_mean > 100 > 20 > bad_mean
    best.restore_best(network, 10_000)
    best.close()
    assert best.best_step == 5000 and len(best.evaluations) == 2
    for kept, expected in zip(network.get_weights(), good):
        np.testing.assert_array_equal(kept, expected)
