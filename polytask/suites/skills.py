"""Skill-space envs: a wrapper whose action is a skill, run by a frozen skill decoder for several env
steps, so that skill-space SAC is SAC on the wrapped env.

- :class:`SkillWrapper` (SPiRL/SkiLD): the action is a continuous skill z, decoded closed-loop for H
  env steps.
- :class:`HybridSkillWrapper` (EXTRACT): the action is a discrete skill k with a continuous argument
  z, decoded open-loop into a plan that runs until its predicted progress reaches a threshold.

Both execute their env steps through :meth:`SkillExecution.run_skill` (rewards summed, early stop at
termination or truncation, ``success`` the maximum over the skill, ``env_steps`` counted, and
``seconds_decoder`` the wall time spent in the decoder, which the online trainer logs). The decoder
is a callable, not an agent (a suite never imports an agent): e.g. the ``decode`` method of
:class:`polytask.agents.skills.SkillPriorAgent` or :class:`polytask.agents.extract.ExtractSkillAgent`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

#: ``decoder(obs, z) -> action``: the env's observation dict and a skill float32 (Z,) to an env action
Decoder = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]
#: ``plan_decoder(k, z) -> (actions, progress)``: skills int64 (B,) and arguments float32 (B, Z) to plans
#: float32 (B, L, A) and their predicted progress float32 (B, L) in [0, 1]
PlanDecoder = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def plan_length(progress: np.ndarray, progress_done: float) -> np.ndarray:
    """Steps of each plan to run: up to and including the first whose progress float32 (..., L) reaches
    ``progress_done``, else all L (EXTRACT's skill termination). int64 (...)."""
    done = np.asarray(progress) >= progress_done
    return np.where(done.any(-1), done.argmax(-1) + 1, done.shape[-1]).astype(np.int64)


class SkillExecution(gym.Wrapper):
    """Base of the skill-space wrappers: keeps the latest observation and runs one skill's env steps."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._obs: Any = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def run_skill(self, policy: Callable[[Any, int], np.ndarray], max_steps: int, seconds_decoder: float = 0.0):
        """Step the env with ``policy(obs, t)`` for t = 0, 1, ... up to ``max_steps`` env steps, stopping
        early when the env terminates or truncates.

        Args:
            policy: the env action float32 (A,) for the current observation and the step t in the skill.
            max_steps: the most env steps to take.
            seconds_decoder: decoder time already spent on this skill (e.g. decoding a plan), in seconds.

        Returns:
            ``(last obs, summed reward, terminated, truncated, info)``: the last env step's flags and info,
            with ``success`` the maximum over the skill's steps, ``env_steps`` the steps taken and
            ``seconds_decoder`` the wall time in seconds spent in ``policy`` plus ``seconds_decoder``.
        """
        total, success, steps = 0.0, 0.0, 0
        terminated = truncated = False
        info: dict[str, Any] = {}
        while steps < max_steps and not (terminated or truncated):
            t0 = time.perf_counter()
            action = policy(self._obs, steps)
            seconds_decoder += time.perf_counter() - t0
            self._obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            success = max(success, float(info.get("success", 0.0)))
            steps += 1
        return self._obs, total, terminated, truncated, {**info, "success": success, "env_steps": steps,
                                                          "seconds_decoder": seconds_decoder}


class SkillWrapper(SkillExecution):
    """One step runs skill ``z`` for up to ``horizon`` env steps, each action ``decoder(obs, z)`` at
    the current observation (closed loop).

    The action space is ``Box(-bound, bound, (z_dim,), float32)`` (SPiRL/SkiLD squash skills to ±2);
    a skill outside it is clipped. The step returns the last observation, the sum of the env rewards,
    and ``terminated``/``truncated`` of the last env step: the skill stops early when the env
    terminates or truncates. ``info`` is the last env step's, with ``success`` the maximum over the
    skill's steps, ``env_steps`` the number of env steps taken (1..horizon) and ``seconds_decoder``
    the seconds spent in the decoder.

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

    def step(self, z):
        z = np.clip(np.asarray(z, np.float32), self.action_space.low, self.action_space.high)
        return self.run_skill(lambda obs, _: self.decoder(obs, z), self.horizon)


class HybridSkillWrapper(SkillExecution):
    """EXTRACT's skill-space env: one step decodes a discrete skill k with its argument z into an
    open-loop plan and runs it until the first step whose predicted progress reaches ``progress_done``,
    at most ``max_len`` steps, stopping early at termination or truncation (rewards summed; ``info`` as
    :class:`SkillWrapper`'s, plus ``skill`` k).

    The action is one float32 vector in ``Box(-1, 1, (K + Z,))``: the first K entries score the skills
    (k = their argmax; the agent stores the one-hot of its k there), the last Z are z / ``bound``
    (clipped to [-1, 1]). One Box keeps the replay buffer and trainers as they are for continuous
    actions.

    Args:
        env: the env the skills act in.
        decoder: see :data:`PlanDecoder`; it is asked for plans of ``max_len`` steps' worth (its own L).
        num_skills: K.
        z_dim: Z (EXTRACT: 5).
        bound: arguments lie in [-bound, bound] (EXTRACT: 2).
        progress_done: the progress threshold that ends a plan (0.9).
        max_len: the most env steps one skill runs (EXTRACT's longest segment: 30).

    Raises:
        ValueError: for sizes below 1, ``bound`` not positive or ``progress_done`` outside (0, 1].
    """

    def __init__(self, env: gym.Env, decoder: PlanDecoder, num_skills: int, z_dim: int = 5, bound: float = 2.0,
                 progress_done: float = 0.9, max_len: int = 30):
        super().__init__(env)
        if min(num_skills, z_dim, max_len) < 1 or bound <= 0 or not 0.0 < progress_done <= 1.0:
            raise ValueError(f"HybridSkillWrapper needs num_skills, z_dim, max_len >= 1, bound > 0 and progress_done "
                             f"in (0, 1]; got {num_skills}, {z_dim}, {max_len}, {bound}, {progress_done}")
        self.decoder, self.num_skills, self.bound = decoder, int(num_skills), float(bound)
        self.progress_done, self.max_len = float(progress_done), int(max_len)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (num_skills + z_dim,), np.float32)

    def split(self, action: np.ndarray) -> tuple[int, np.ndarray]:
        """``(k, z)`` of an action float32 (K + Z,): the argmax of the skill scores and the argument (Z,)."""
        action = np.asarray(action, np.float32)
        return int(action[:self.num_skills].argmax()), self.bound * np.clip(action[self.num_skills:], -1.0, 1.0)

    def step(self, action):
        k, z = self.split(action)
        t0 = time.perf_counter()
        plan, progress = self.decoder(np.array([k]), z[None])
        steps = min(int(plan_length(progress[0], self.progress_done)), self.max_len)
        obs, reward, terminated, truncated, info = self.run_skill(lambda _, t: plan[0, t], steps,
                                                                  time.perf_counter() - t0)
        return obs, reward, terminated, truncated, {**info, "skill": k}
