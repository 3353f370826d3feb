"""Gymnasium environments for DQN: creation by id, the checks DQN needs, and the real
next observation of an ending episode.

The vector environments reset in the same step (`AutoresetMode.SAME_STEP`): the
step that ends an episode already returns the next episode's first observation,
and the true last one is in `info["final_obs"]`.
"""

import numpy as np

from tfsuite.errors import require_module, user_error
from tfsuite.packages import install_hint


def gymnasium():
    """The gymnasium module, or a clear error saying how to install it."""
    return require_module("gymnasium", "Reinforcement learning", f'{install_hint("rl")} '
                          '(or pip install "gymnasium[classic-control]")')


def make_envs(config, render_mode=None):
    """A synchronous vector env of `config.num_envs` copies, resetting in the same step."""
    gym = gymnasium()
    try:
        envs = gym.make_vec(config.env_id, num_envs=config.num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                            render_mode=render_mode)
    except gym.error.DependencyNotInstalled as e:
        raise user_error("The environment needs a package that is not installed",
                         "its dependencies installed", f"rl.env_id={config.env_id!r} ({e})",
                         "Install what the message names, e.g. pip install "
                         "\"gymnasium[box2d]\" for LunarLander.") from None
    except gym.error.Error as e:
        raise user_error("Unknown Gymnasium environment", "a registered id such as "
                         "CartPole-v1", f"rl.env_id={config.env_id!r} ({e})") from None
    if envs.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
        envs.close()  # an env's registered vector_kwargs can override the request
        raise user_error("The environment resets in another autoreset mode",
                         "AutoresetMode.SAME_STEP (tfsuite's transitions rely on it)",
                         f"rl.env_id={config.env_id!r} with "
                         f"{envs.metadata.get('autoreset_mode')}")
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        envs.close()
        raise user_error("DQN needs discrete actions", "an environment with a Discrete "
                         "action space (CartPole-v1, Acrobot-v1, LunarLander-v3)",
                         f"rl.env_id={config.env_id!r} with action space "
                         f"{envs.single_action_space}")
    if not isinstance(envs.single_observation_space, gym.spaces.Box) or \
            len(envs.single_observation_space.shape) != 1:
        envs.close()
        raise user_error("DQN here needs vector observations", "a Box observation space "
                         "of rank 1", f"rl.env_id={config.env_id!r} with observation "
                         f"space {envs.single_observation_space}")
    return envs


def describe_env(config):
    """Facts about `config.env_id` for the run's summary; checks it as `make_envs` does."""
    envs = make_envs(config)
    envs.close()
    spec = gymnasium().spec(config.env_id)
    return {"id": config.env_id, "observation_size": int(envs.single_observation_space.shape[0]),
            "num_actions": int(envs.single_action_space.n),
            "reward_threshold": spec.reward_threshold,
            "max_episode_steps": spec.max_episode_steps}


def real_next_observations(next_observations, terminated, truncated, infos):
    """The observation each step really reached: for an episode that just ended, its last
    observation (SAME_STEP autoreset already put the next episode's first one in its slot)."""
    real = np.array(next_observations, copy=True)
    if "final_obs" in infos:
        for env in np.flatnonzero(np.logical_or(terminated, truncated)):
            real[env] = infos["final_obs"][env]
    return real
