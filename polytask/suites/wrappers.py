"""Gymnasium wrappers shared by all suites (DESIGN §4): action repeat and pixel frame stacking.

Observations in PolyTask are dicts: ``{"state": float32 (D,)}`` plus, for ``obs_type=pixels``,
``"pixels": uint8 (3*k, H, W)`` (channel-first, ``k`` stacked frames, oldest first).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``repeat`` times; rewards are summed, ``info["success"]`` is the max.

    The loop stops early when the episode terminates or is truncated.
    """

    def __init__(self, env: gym.Env, repeat: int):
        if repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total_reward, success = 0.0, 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            success = max(success, float(info.get("success", 0.0)))
            if terminated or truncated:
                break
        info["success"] = success
        return obs, total_reward, terminated, truncated, info


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
