"""Skill-space envs (SPiRL/SkiLD): a wrapper whose action is a skill z, run by a frozen
closed-loop skill decoder for H env steps, so that skill-space SAC is SAC on the wrapped env.

The decoder is a callable, not an agent (a suite never imports an agent): e.g. the ``decode`` method
of :class:`polytask.agents.skills.SkillPriorAgent`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

#: ``decoder(obs, z) -> action``: the env's observation dict and a skill float32 (Z,) to an env action
Decoder = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]


class SkillWrapper(gym.Wrapper):
    """One step runs skill ``z`` for up to ``horizon`` env steps, each action ``decoder(obs, z)`` at
    the current observation (closed loop).

    The action space is ``Box(-bound, bound, (z_dim,), float32)`` (SPiRL/SkiLD squash skills to ±2);
    a skill outside it is clipped. The step returns the last observation, the sum of the env rewards,
    and ``terminated``/``truncated`` of the last env step: the skill stops early when the env
    terminates or truncates. ``info`` is the last env step's, with ``success`` the maximum over the
    skill's steps and ``env_steps`` the number of env steps taken (1..horizon).

    Args:
        env: the env the skills act in.
        decoder: see :data:`Decoder`.
        horizon: H, env steps per skill (SPiRL: 10).
        z_dim: Z, the skill size (SPiRL: 10).
        bound: skills lie in [-bound, bound] (2).

    Raises:
        ValueError: for ``horizon`` or ``z_dim`` below 1, or ``bound`` not positive.
    """

    def __init__(self, env: gym.Env, decoder: Decoder, horizon: int, z_dim: int = 10, bound: float = 2.0):
        super().__init__(env)
        if horizon < 1 or z_dim < 1 or bound <= 0:
            raise ValueError(f"SkillWrapper needs horizon >= 1, z_dim >= 1 and bound > 0; got {horizon}, {z_dim}, "
                             f"{bound}")
        self.decoder, self.horizon = decoder, int(horizon)
        self.action_space = gym.spaces.Box(-bound, bound, (z_dim,), np.float32)
        self._obs: Any = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, z):
        z = np.clip(np.asarray(z, np.float32), self.action_space.low, self.action_space.high)
        total, success, steps = 0.0, 0.0, 0
        terminated = truncated = False
        info: dict[str, Any] = {}
        while steps < self.horizon and not (terminated or truncated):
            self._obs, reward, terminated, truncated, info = self.env.step(self.decoder(self._obs, z))
            total += float(reward)
            success = max(success, float(info.get("success", 0.0)))
            steps += 1
        return self._obs, total, terminated, truncated, {**info, "success": success, "env_steps": steps}
