"""Gymnasium wrappers shared by all suites: pixel frame stacking (action repeat lives
in each suite's base env, so pixels are rendered once per agent step).

Observations in PolyTask are dicts: ``{"state": float32 (D,)}`` plus, for ``obs_type=pixels``,
``"pixels": uint8 (3*k, H, W)`` (channel-first, ``k`` stacked frames, oldest first).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np


def check_action_repeat(repeat: int) -> int:
    """Validate an ``action_repeat`` option (suites repeat actions inside their base env, so that
    a pixel observation is rendered once per agent step rather than once per repeat)."""
    if int(repeat) != repeat or repeat < 1:
        raise ValueError(f"action_repeat must be an integer >= 1, got {repeat}")
    return int(repeat)


class FrameStack(gym.Wrapper):
    """Stack the last ``k`` frames of ``obs["pixels"]`` along the channel axis.

    Input ``pixels``: uint8 (C, H, W). Output: uint8 (k*C, H, W), oldest frame first. At reset the
    first frame is repeated ``k`` times, exactly as :class:`polytask.data.DemoBuffer` rebuilds stacks
    from stored single frames, so training and acting see the same inputs.
    """

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        if k < 1:
            raise ValueError(f"frame_stack must be >= 1, got {k}")
        self.k = k
        self._frames: deque[np.ndarray] = deque(maxlen=k)
        pix = env.observation_space["pixels"]
        c, h, w = pix.shape
        spaces = dict(env.observation_space.spaces)
        spaces["pixels"] = gym.spaces.Box(0, 255, (k * c, h, w), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    def _obs(self, obs: dict[str, Any]) -> dict[str, Any]:
        obs = dict(obs)
        obs["pixels"] = np.concatenate(list(self._frames), axis=0)
        return obs

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.k):
            self._frames.append(obs["pixels"])
        return self._obs(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(obs["pixels"])
        return self._obs(obs), reward, terminated, truncated, info


class SparseReward(gym.Wrapper):
    """The reward becomes the env's success indicator plus ``offset``: ``info["success"] + offset``
    (Policy Decorator: offset −1, so −1 per step until success and 0 at success). The env's own
    reward is kept in ``info["env_reward"]``, so a trainer can still report the env's return."""

    def __init__(self, env: gym.Env, offset: float = 0.0):
        super().__init__(env)
        self.offset = float(offset)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "env_reward": float(reward)}
        return obs, float(info.get("success", 0.0)) + self.offset, terminated, truncated, info


class SuccessTermination(gym.Wrapper):
    """An episode ends, as terminated (no bootstrapping past it), at its first ``info["success"]``,
    as in ManiSkill's sparse-reward tasks (Meta-World never terminates by itself)."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated or float(info.get("success", 0.0)) > 0, truncated, info


class KeepOpen(gym.Wrapper):
    """``env`` lent to someone who closes what it is given (the evaluator): :meth:`close` leaves it
    open, for its owner (a trainer that evaluates on its training env) to close."""

    def close(self):
        """Leave the lent env open."""
