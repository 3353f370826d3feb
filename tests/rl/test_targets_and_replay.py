"""TD targets and the replay buffer against hand-computed values."""

import numpy as np
import pytest

from tfsuite.errors import UserError
from tfsuite.rl.replay import ReplayBuffer
from tfsuite.rl.targets import linear_schedule, td_targets

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

Q_TARGET = np.array([[1.0, 3.0], [2.0, 0.5], [4.0, 4.5]], np.float32)
Q_ONLINE = np.array([[5.0, 0.0], [0.0, 1.0], [1.0, 2.0]], np.float32)


def test_td_targets_terminal_truncated_and_double():
    rewards = np.array([1.0, 1.0, 0.5], np.float32)
    terminated = np.array([0.0, 1.0, 0.0], np.float32)  # the third was truncated: bootstrap
    discounts = np.full(3, 0.9, np.float32)
    plain = np.asarray(td_targets(rewards, terminated, discounts, Q_TARGET))
    np.testing.assert_allclose(plain, [1 + 0.9 * 3.0, 1.0, 0.5 + 0.9 * 4.5], rtol=1e-6)
    # Double DQN: the online network picks the action, the target network scores it.
    double = np.asarray(td_targets(rewards, terminated, discounts, Q_TARGET, Q_ONLINE))
    np.testing.assert_allclose(double, [1 + 0.9 * 1.0, 1.0, 0.5 + 0.9 * 4.5], rtol=1e-6)


def test_n_step_returns_stop_at_the_episode_end():
    buffer = ReplayBuffer(100, (1,), n_step=3, gamma=0.5)
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0]
    for t, reward in enumerate(rewards):  # an episode of 5 steps ending in a terminal state
        buffer.add(np.array([[t]]), [t % 2], [reward], np.array([[t + 1]]), [t == 4], [False])
    assert len(buffer) == 5
    order = np.argsort(buffer.observations[:5, 0])
    got = {name: getattr(buffer, name)[:5][order] for name in
           ("rewards", "discounts", "terminated")}
    np.testing.assert_allclose(got["rewards"], [1 + 1 + 1, 2 + 2 + 2, 4 + 4 + 4, 8 + 8, 16])
    np.testing.assert_allclose(got["discounts"], [0.125, 0.125, 0.125, 0.25, 0.5])
    np.testing.assert_allclose(got["terminated"], [0, 0, 1, 1, 1])
    np.testing.assert_allclose(buffer.next_observations[:5, 0][order], [3, 4, 5, 5, 5])


def test_truncation_keeps_bootstrapping_and_never_crosses_a_reset():
    buffer = ReplayBuffer(100, (1,), n_step=2, gamma=1.0)
    buffer.add(np.array([[0]]), [0], [1.0], np.array([[1]]), [False], [False])
    buffer.add(np.array([[1]]), [0], [1.0], np.array([[2]]), [False], [True])  # time limit
    buffer.add(np.array([[10]]), [0], [5.0], np.array([[11]]), [False], [False])  # new episode
    assert len(buffer) == 2  # the new episode's first step waits for its second
    np.testing.assert_allclose(buffer.rewards[:2], [2.0, 1.0])
    np.testing.assert_allclose(buffer.terminated[:2], [0.0, 0.0])  # truncated: bootstrap
    np.testing.assert_allclose(buffer.next_observations[:2, 0], [2, 2])


def test_parallel_environments_keep_their_own_episodes():
    buffer = ReplayBuffer(100, (1,), num_envs=2, n_step=2, gamma=1.0)
    buffer.add(np.array([[0], [100]]), [0, 1], [1.0, 10.0], np.array([[1], [101]]),
               [False, True], [False, False])
    buffer.add(np.array([[1], [200]]), [1, 0], [2.0, 20.0], np.array([[2], [201]]),
               [False, False], [False, False])
    stored = dict(zip(buffer.observations[:len(buffer), 0], buffer.rewards[:len(buffer)]))
    assert stored == {100.0: 10.0, 0.0: 3.0}  # env 1's episode ended: no 10 + 20


def test_ring_wraps_around_and_samples_what_it_holds():
    buffer = ReplayBuffer(4, (1,), seed=0)
    for t in range(10):
        buffer.add(np.array([[t]]), [0], [float(t)], np.array([[t + 1]]), [False], [False])
    assert len(buffer) == 4 and buffer.position == 2
    assert sorted(buffer.observations[:, 0]) == [6.0, 7.0, 8.0, 9.0]  # the newest four
    batch = buffer.sample(256)
    assert set(batch["observations"][:, 0]) == {6.0, 7.0, 8.0, 9.0}
    np.testing.assert_allclose(batch["rewards"], batch["observations"][:, 0])
    assert batch["actions"].dtype == np.int32 and batch["rewards"].shape == (256,)


def test_bad_buffer_settings_are_clear_errors():
    with pytest.raises(UserError, match="Received: rl.buffer_size=-5"):
        ReplayBuffer(-5, (4,))
    with pytest.raises(UserError, match="rl.n_step >= 1"):
        ReplayBuffer(10, (4,), n_step=0)
    with pytest.raises(UserError, match="empty replay buffer"):
        ReplayBuffer(10, (4,)).sample(2)


def test_linear_schedule():
    assert linear_schedule(1.0, 0.05, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.05, 100, 50) == pytest.approx(0.525)
    assert linear_schedule(1.0, 0.05, 100, 1000) == 0.05
    assert linear_schedule(1.0, 0.05, 0, 0) == 0.05
