"""DAgger play for kitchen skill models (Ross et al. 2011, "A Reduction of Imitation Learning and
Structured Prediction to No-Regret Online Learning"): episodes in which a trained skill decoder acts
and the play scripts label every state it visits.

A skill model fitted to scripted play replays it closed loop only as well as its decoder recovers
from its own drift, and the play data shows no such drift: the scripts' noise is small and
independent per step. Here the decoder drives, the scripts say what they would do from where it
went (their noise-free ``intended_action``), and these labels train the skill model further.

Each episode is made in two passes from the same reset:

1. the play scripts run a drawn sequence of subtasks as in :func:`polytask.experts.kitchen.play_episodes`;
   each H-step window of their (state, intended action) is encoded into a skill z_k (the encoder's mean);
2. from the same reset, window k is acted by the decoder with z_k, or with probability
   ``expert_prob`` by the scripts themselves (DAgger's β mixture, which keeps later subtasks
   reachable); a fresh controller with the same sequence runs in lockstep and labels every step.

The skills are those of pass 1 in time order, open loop: where the decoder falls behind, later skills
ask for later motions, which is the drift a skill-space policy must also recover from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from polytask.data.demos import Episode
from polytask.experts.kitchen import KitchenController, play_env, scripted_episode


class SkillCodec(Protocol):
    """What DAgger play needs of a skill model (:class:`polytask.agents.skills.SkillAgent`)."""

    horizon: int

    def encode_skill(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Skills float32 (B, Z) of windows of raw states float32 (B, H, D) and actions (B, H, A)."""

    def decode(self, obs: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
        """The decoder's action float32 (A,) at ``obs["state"]`` (D,) for skill ``z`` (Z,)."""


def skill_windows(states: np.ndarray, actions: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """An episode's states float32 (T, D) and actions (T, A) cut into ``ceil(T / horizon)`` windows of
    ``horizon`` steps, the last one padded by repeating the final step: float32 (K, H, D), (K, H, A)."""
    T = len(actions)
    k = -(-T // horizon)
    idx = np.minimum(np.arange(k * horizon), T - 1).reshape(k, horizon)
    return states[idx], actions[idx]


def dagger_play_episodes(skills: SkillCodec, num_episodes: int, seed: int, expert_prob: float = 0.3,
                         subtasks: list[str] | None = None, min_subtasks: int = 3, max_subtasks: int = 4,
                         waypoint_noise: float = 0.01, action_noise: float = 0.1,
                         action_noise_correlation: float = 0.0, episode_len: int = 280,
                         exclude: list[str] | None = None, obs_noise: bool = True,
                         env_options: dict | None = None) -> Iterator[Episode]:
    """Kitchen DAgger play (module docstring) with the play data's options (``suite.play`` but its
    ``_target_``, ``obs_type`` and ``num_episodes``: state features only).

    Args:
        skills: the trained skill model (:class:`SkillCodec`).
        num_episodes: episodes to yield.
        seed: seeds episode ``i``'s sequence, noise, reset and expert windows (``[seed, i]``).
        expert_prob: probability that a window is acted by the scripts rather than the decoder.

    Yields:
        Episodes labelled as :func:`polytask.experts.kitchen.play_episodes`' (``infos["intended_action"]``:
        the scripts' noise-free action at each visited state; ``action``: the one executed), with
        ``infos["expert_window"]`` bool (T,), whether the scripts acted at each step.

    Raises:
        ValueError: for ``expert_prob`` outside [0, 1] or bad subtask counts.
        UnknownSubtaskError: for an unknown subtask name.
    """
    if not 0.0 <= expert_prob <= 1.0:
        raise ValueError(f"expert_prob must lie in [0, 1], got {expert_prob}")
    H = int(skills.horizon)
    env, draw = play_env(subtasks, min_subtasks, max_subtasks, exclude, seed, "features", obs_noise, episode_len,
                         env_options)
    kitchen = env.unwrapped

    def controller(order: list[str], controller_seed: int) -> KitchenController:
        return KitchenController(kitchen.model, kitchen.data, order, rng=np.random.default_rng(controller_seed),
                                 waypoint_noise=waypoint_noise, action_noise=action_noise,
                                 action_noise_correlation=action_noise_correlation)

    try:
        for i in range(num_episodes):
            rng = np.random.default_rng([seed, i])
            order = draw(rng)
            reset_seed, controller_seed = (int(x) for x in rng.integers(2**31, size=2))
            scripted = scripted_episode(env, controller(order, controller_seed), order, reset_seed)
            states, actions = skill_windows(scripted.obs["state"][:-1], scripted.infos["intended_action"], H)
            z = np.asarray(skills.encode_skill(states, actions), np.float32)
            expert = rng.random(len(z)) < expert_prob

            def execute(obs, t, action, z=z, expert=expert):
                return action if expert[t // H] else skills.decode({"state": obs["state"]}, z[t // H])

            ep = scripted_episode(env, controller(order, controller_seed), order, reset_seed, execute)
            ep.infos["expert_window"] = expert[np.arange(len(ep)) // H]
            yield ep
    finally:
        env.close()
