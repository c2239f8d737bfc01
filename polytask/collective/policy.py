"""The collective network at run time: it keeps the running episode's history, embeds the window
ending at the current state with the trajectory transformer, and gives the collective actor's
Gaussian (pre-tanh μ, log σ) for that state: the students' shaping bonus needs it at each step,
evaluation acts with tanh(μ)."""

from __future__ import annotations

import numpy as np
import torch

from polytask.collective.windows import last_window, to_tensors
from polytask.errors import ConfigError
from polytask.nets.collective import CollectiveActor
from polytask.nets.trajectory_transformer import TrajectoryTransformer


class CollectivePolicy:
    """Trajectory transformer + collective actor, stepped along one episode.

    Usage: ``reset(obs)`` at the episode start, ``gaussian()`` / ``act()`` for the current state,
    ``observe(action, reward, next_obs)`` after each env step. Both networks are put in eval mode.

    Args:
        transformer: trained :class:`TrajectoryTransformer` (its ``window`` is used).
        actor: trained :class:`CollectiveActor` with ``embed_dim == transformer.cls_dim``.

    Raises:
        ConfigError: when the two networks' sizes do not match.
    """

    def __init__(self, transformer: TrajectoryTransformer, actor: CollectiveActor):
        if (actor.embed_dim, actor.obs_dim, actor.action_dim) != (transformer.cls_dim, transformer.obs_dim,
                                                                  transformer.action_dim):
            raise ConfigError(f"collective actor (embed {actor.embed_dim}, obs {actor.obs_dim}, action "
                              f"{actor.action_dim}) does not match the transformer (cls {transformer.cls_dim}, obs "
                              f"{transformer.obs_dim}, action {transformer.action_dim})")
        self.transformer, self.actor = transformer.eval(), actor.eval()
        self.device = next(actor.parameters()).device
        self._obs: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []

    def reset(self, obs: np.ndarray) -> None:
        """Start an episode at state ``obs`` (D,)."""
        self._obs, self._actions, self._rewards = [np.asarray(obs, np.float32)], [], []

    def observe(self, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        """Append one step: the executed action (A,), its reward and the next state (D,). Only the
        last ``window`` states are kept."""
        if not self._obs:
            raise ConfigError("CollectivePolicy.observe before reset: call reset(obs) at the episode start")
        self._obs.append(np.asarray(next_obs, np.float32))
        self._actions.append(np.asarray(action, np.float32))
        self._rewards.append(float(reward))
        w = self.transformer.window
        del self._obs[:-w], self._actions[:-(w - 1)], self._rewards[:-(w - 1)]

    @torch.no_grad()
    def embedding(self) -> torch.Tensor:
        """Task embedding of the window ending at the current state: float32 (1, E)."""
        if not self._obs:
            raise ConfigError("CollectivePolicy used before reset: call reset(obs) at the episode start")
        win = last_window(np.stack(self._obs), np.asarray(self._actions, np.float32).reshape(-1, self.actor.action_dim),
                          np.asarray(self._rewards, np.float32), self.transformer.window)
        t = to_tensors({k: v[None] for k, v in win.items()}, self.device)
        return self.transformer.embed(t["obs"], t["actions"], t["rewards"])

    @torch.no_grad()
    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """(pre-tanh μ, log σ) of the collective actor at the current state, float32 (A,) each."""
        obs = torch.as_tensor(self._obs[-1], device=self.device)[None]
        mean, log_std = self.actor(self.embedding(), obs)
        return mean[0].cpu().numpy(), log_std[0].cpu().numpy()

    def act(self) -> np.ndarray:
        """The deterministic action tanh(μ) at the current state, float32 (A,) in (−1, 1)."""
        return np.tanh(self.gaussian()[0])
