"""Optimal-transport rewards of ROT (Haldar et al., 2022, §3.1; Papagiannis & Li / Dadashi et al.'s
PWIL-style imitation rewards with an entropic plan).

For an agent episode x_0..x_T and a demonstration y_0..y_{T'} (features), the cost is the cosine
distance C[t, j] = 1 − cos(x_t, y_j); the plan T* is the entropic optimal transport plan between
uniform marginals (Sinkhorn, ε = 0.01); the per-observation reward is r_t = −scale · Σ_j T*[t, j] C[t, j].
With several demos the best-matching one (highest total reward) is used. The scale is set on the
first episode so that their sum has magnitude ``target_return`` (10 in ROT).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cosine distance between every pair of rows: x (..., T, D), y (..., T', D) -> (..., T, T')
    with values in [0, 2]."""
    x = torch.nn.functional.normalize(x, dim=-1, eps=1e-8)
    y = torch.nn.functional.normalize(y, dim=-1, eps=1e-8)
    return 1.0 - x @ y.transpose(-1, -2)


def sinkhorn_plan(cost: torch.Tensor, mask_b: torch.Tensor | None = None, eps: float = 0.01,
                  num_iters: int = 100) -> torch.Tensor:
    """Entropic OT plans between uniform marginals, batched, in the log domain (stable for small ε).

    Solves min_P <P, C> − ε H(P) s.t. P 1 = a, Pᵀ 1 = b by ``num_iters`` alternating updates of the dual potentials
    (Cuturi 2013; log-domain form as in POT's ``sinkhorn_log``).

    Args:
        cost: float (N, T, T') costs.
        mask_b: bool (N, T') marking the real columns when demos of different lengths are padded
            (padded columns get zero mass); None: all real.
        eps: entropic regularisation ε.
        num_iters: Sinkhorn iterations.

    Returns:
        plans float (N, T, T'); rows sum to 1/T exactly, real columns to 1/T'_n up to convergence.
    """
    n, t, t2 = cost.shape
    if mask_b is None:
        mask_b = torch.ones(n, t2, dtype=torch.bool, device=cost.device)
    log_a = torch.full((n, t), -np.log(t), dtype=cost.dtype, device=cost.device)
    counts = mask_b.sum(-1, keepdim=True).to(cost.dtype)
    log_b = torch.where(mask_b, -torch.log(counts), torch.full_like(counts, -torch.inf).expand(n, t2))
    f = torch.zeros(n, t, dtype=cost.dtype, device=cost.device)
    g = torch.zeros(n, t2, dtype=cost.dtype, device=cost.device)
    scaled = -cost / eps
    for _ in range(num_iters):
        g = eps * (log_b - torch.logsumexp(scaled + f[:, :, None] / eps, dim=1))
        f = eps * (log_a - torch.logsumexp(scaled + g[:, None, :] / eps, dim=2))
    return torch.exp(scaled + (f[:, :, None] + g[:, None, :]) / eps)


class OTRewarder:
    """ROT rewards of an episode against demonstrations.

    Args:
        demos: per demonstration its observations, float (T'_n + 1, D) features, or raw
            observations that ``featurize`` turns into features.
        featurize: ``(T, ...) array -> torch (T, D)`` features (e.g. the agent's frozen reward
            encoder for pixels); None: the observations are the features (raw states).
        refresh: called to bring ``featurize`` up to date (ROT copies the online encoder into its
            target encoder), on the first episode and then once ``refresh_every`` agent steps have
            passed since the last refresh; the demos' features are computed once per refresh, not
            per episode. None: ``featurize`` never changes.
        refresh_every: agent steps between refreshes (ROT's ``update_target_every``).
        eps, num_iters: Sinkhorn ε and iterations.
        target_return: magnitude of the first episode's summed reward; fixes ``scale`` then.
        scale: a fixed scale instead (None: automatic).

    Calling it on an episode's observations (T+1, ...) at agent step ``step`` returns float32 (T,)
    rewards, ``r_t`` being the reward of the observation ``x_{t+1}`` that step t reached.

    Raises:
        ValueError: with no demonstrations, or ``refresh_every`` < 1.
    """

    def __init__(self, demos: list[np.ndarray], featurize: Callable[[np.ndarray], torch.Tensor] | None = None,
                 refresh: Callable[[], None] | None = None, refresh_every: int = 10_000, eps: float = 0.01,
                 num_iters: int = 100, target_return: float = 10.0, scale: float | None = None):
        if not demos:
            raise ValueError("OTRewarder needs at least one demonstration")
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be at least 1 agent step, got {refresh_every}")
        self.demos, self.featurize, self.refresh, self.refresh_every = demos, featurize, refresh, refresh_every
        self.eps, self.num_iters, self.target_return, self.scale = eps, num_iters, target_return, scale
        self.refreshed_at: int | None = None  # agent step of the last refresh
        self._demo_feats: tuple[torch.Tensor, torch.Tensor] | None = None  # padded (N, T', D), mask (N, T')

    def _features(self, obs: np.ndarray) -> torch.Tensor:
        if self.featurize is None:
            return torch.as_tensor(np.asarray(obs), dtype=torch.float64)
        with torch.no_grad():
            return self.featurize(obs).double().cpu()

    def demo_features(self, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The demos' features, padded to the longest: float64 (N, T'_max, D) and the bool mask
        (N, T'_max) of real steps; refreshes ``featurize`` first when it is due at ``step``."""
        due = self.refresh is not None and (self.refreshed_at is None or step - self.refreshed_at >= self.refresh_every)
        if due:
            self.refresh()
            self.refreshed_at, self._demo_feats = step, None
        if self._demo_feats is None:
            feats = [self._features(d) for d in self.demos]
            longest = max(len(f) for f in feats)
            y = torch.zeros(len(feats), longest, feats[0].shape[-1], dtype=torch.float64)
            mask = torch.zeros(len(feats), longest, dtype=torch.bool)
            for i, f in enumerate(feats):
                y[i, : len(f)], mask[i, : len(f)] = f, True
            self._demo_feats = y, mask
        return self._demo_feats

    def unscaled(self, episode: np.ndarray, step: int = 0) -> np.ndarray:
        """Per-observation −Σ_j T*[t,j] C[t,j] against the best-matching demo: float64 (T+1,)."""
        y, mask = self.demo_features(step)
        x = self._features(episode)
        cost = cosine_cost(x.expand(len(y), *x.shape), y)
        plan = sinkhorn_plan(cost, mask, self.eps, self.num_iters)
        rewards = -(plan * cost).sum(-1)  # (N, T+1)
        best = int(rewards.sum(-1).argmax())
        return rewards[best].numpy()

    def __call__(self, episode_obs: np.ndarray, step: int = 0) -> np.ndarray:
        r = self.unscaled(episode_obs, step)[1:]
        if self.scale is None:
            self.scale = self.target_return / max(abs(float(r.sum())), 1e-8)
        return (self.scale * r).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "refreshed_at": self.refreshed_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the scale and the refresh step; the demo features are recomputed at the next
        call (with ``featurize`` as restored, e.g. the agent's saved reward encoder)."""
        self.scale = state["scale"]
        self.refreshed_at = state.get("refreshed_at")
        self._demo_feats = None
