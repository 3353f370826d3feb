"""DQN's regression targets and exploration schedule, as pure functions.

`td_targets` works on NumPy arrays and on backend tensors alike (keras.ops),
so the compiled update step and the unit tests use the same code.
"""

from keras import ops


def td_targets(rewards, terminated, discounts, next_q_target, next_q_online=None):
    """Bootstrapped targets `r + gamma^n * (1 - terminated) * Q_target(s', a*)`.

    Args:
        rewards: the (n-step discounted) rewards, shape `[batch]`.
        terminated: 1.0 where the episode ended in a terminal state (no
            bootstrap), 0.0 otherwise, truncation included.
        discounts: `gamma ** n` for each transition's number of summed steps.
        next_q_target: the target network's Q-values at the next observation,
            `[batch, actions]`.
        next_q_online: the online network's Q-values there. When given (double
            DQN), it picks `a*` and the target network evaluates it; else `a*`
            is the target network's own argmax.

    Returns:
        The targets, shape `[batch]`.
    """
    if next_q_online is None:
        best = ops.max(next_q_target, axis=-1)
    else:
        choice = ops.argmax(next_q_online, axis=-1)
        best = ops.take_along_axis(next_q_target, ops.expand_dims(choice, -1), axis=-1)[:, 0]
    return rewards + discounts * (1.0 - terminated) * best


def linear_schedule(start, end, duration, step):
    """Goes from `start` to `end` linearly over `duration` steps, then stays at `end`."""
    if step >= duration:
        return end
    return start + (end - start) * step / duration
