"""Pieces shared by the sequence policies (Diffusion Policy, BeT): per-env memory of recent
observations and of queued actions, and an observation normaliser fitted on the dataset.

The evaluator passes ``env_index`` int64 (B,) and ``is_first`` bool (B,) with every batch of
observations (see :data:`polytask.training.evaluator.Policy`); a policy keeps its memory per
``env_index`` and clears it where ``is_first``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def env_slots(obs: dict[str, np.ndarray], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(env_index, is_first)`` of a batch of observations: the evaluator's keys when present; else
    row b is env b (a single env is env 0) and no row starts an episode (call the policy's
    ``reset()`` at an episode start then).

    Returns:
        int64 (B,) and bool (B,).

    Raises:
        ValueError: if an env index appears twice in one batch.
    """
    idx = np.asarray(obs.get("env_index", np.arange(batch_size)), np.int64).reshape(-1)
    first = np.asarray(obs.get("is_first", np.zeros(batch_size, bool)), bool).reshape(-1)
    if len(idx) != batch_size or len(first) != batch_size:
        raise ValueError(f"env_index/is_first have {len(idx)}/{len(first)} entries for a batch of {batch_size}")
    if len(np.unique(idx)) != batch_size:
        raise ValueError(f"env_index {idx.tolist()} repeats an env within one batch; each row must be another env")
    return idx, first


class PolicyMemory:
    """Per-env observation history and queue of actions still to execute (action chunking).

    Histories hold the last ``horizon`` observations, oldest first; at an episode's start (or for an
    env not seen yet) the first observation fills the whole history, as the training windows do
    (:meth:`polytask.data.buffer.DemoBuffer.get_windows` repeats an episode's first step).

    Args:
        horizon: observations per history (Diffusion Policy: 2, BeT: its window, e.g. 10).
    """

    def __init__(self, horizon: int):
        if horizon < 1:
            raise ValueError(f"history horizon must be >= 1, got {horizon}")
        self.horizon = horizon
        self.reset()

    def reset(self) -> None:
        """Forget every env's history and queued actions."""
        self._hist: np.ndarray | None = None  # (N, horizon, D) float32
        self._seen = np.zeros(0, bool)  # (N,) env slot holds a history
        self._queue: np.ndarray | None = None  # (N, Q, A) float32 queued actions
        self._pos = np.zeros(0, np.int64)  # (N,) next queued action to execute
        self._len = np.zeros(0, np.int64)  # (N,) actions queued

    def _grow(self, n: int) -> None:
        old = len(self._seen)
        if n <= old:
            return
        self._seen = np.concatenate([self._seen, np.zeros(n - old, bool)])
        self._pos = np.concatenate([self._pos, np.zeros(n - old, np.int64)])
        self._len = np.concatenate([self._len, np.zeros(n - old, np.int64)])
        if self._hist is not None:
            self._hist = np.concatenate([self._hist, np.zeros((n - old, *self._hist.shape[1:]), np.float32)])
        if self._queue is not None:
            self._queue = np.concatenate([self._queue, np.zeros((n - old, *self._queue.shape[1:]), np.float32)])

    def observe(self, obs: np.ndarray, env_index: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        """Append ``obs`` to each env's history, clearing history and queue first where ``is_first``.

        Args:
            obs: float32 (B, D), one observation per env.
            env_index: int64 (B,) distinct env slots; is_first: bool (B,).

        Returns:
            float32 (B, horizon, D): each env's history, oldest first, ``obs`` last.
        """
        obs = np.asarray(obs, np.float32).reshape(len(env_index), -1)
        self._grow(int(env_index.max()) + 1)
        if self._hist is None or self._hist.shape[-1] != obs.shape[-1]:
            self._hist = np.zeros((len(self._seen), self.horizon, obs.shape[-1]), np.float32)
            self._seen[:] = False
        fresh = is_first | ~self._seen[env_index]
        self._pos[env_index[fresh]] = self._len[env_index[fresh]] = 0
        hist = np.concatenate([self._hist[env_index, 1:], obs[:, None]], axis=1)
        hist[fresh] = obs[fresh, None]
        self._hist[env_index] = hist
        self._seen[env_index] = True
        return hist

    def needs_actions(self, env_index: np.ndarray) -> np.ndarray:
        """bool (B,): which envs have no queued action left (they need a new chunk)."""
        self._grow(int(env_index.max()) + 1)
        return self._pos[env_index] >= self._len[env_index]

    def push(self, env_index: np.ndarray, actions: np.ndarray) -> None:
        """Queue ``actions`` float32 (B, Q, A) for envs ``env_index`` (int64 (B,)), replacing theirs."""
        actions = np.asarray(actions, np.float32)
        self._grow(int(env_index.max()) + 1)
        if self._queue is None or self._queue.shape[1:] != actions.shape[1:]:
            self._queue = np.zeros((len(self._seen), *actions.shape[1:]), np.float32)
            self._len[:] = 0
        self._queue[env_index] = actions
        self._pos[env_index], self._len[env_index] = 0, actions.shape[1]

    def pop(self, env_index: np.ndarray) -> np.ndarray:
        """Each env's next queued action, float32 (B, A).

        Raises:
            RuntimeError: if an env has none left (check :meth:`needs_actions` first).
        """
        if self.needs_actions(env_index).any():
            raise RuntimeError("pop() on an env with no queued actions; push a new chunk first")
        actions = self._queue[env_index, self._pos[env_index]]
        self._pos[env_index] += 1
        return actions


class MinMaxNormalizer(nn.Module):
    """Per-dimension affine map of the dataset's [min, max] onto [−1, 1] (Diffusion Policy's
    "limits" normaliser); dimensions that never vary are only centred. The statistics are buffers,
    so they travel in the agent's ``state_dict``.

    Args:
        dim: feature size D.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("center", torch.zeros(dim))
        self.register_buffer("half_range", torch.ones(dim))

    @torch.no_grad()
    def fit(self, data: np.ndarray | torch.Tensor, eps: float = 1e-4) -> None:
        """Set the statistics from data float32 (N, D)."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float32).reshape(-1, self.center.numel())
        lo, hi = x.min(0).values, x.max(0).values
        half = (hi - lo) / 2
        self.center.copy_((hi + lo) / 2)
        self.half_range.copy_(torch.where(half > eps, half, torch.ones_like(half)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 (..., D) → normalised float32 (..., D)."""
        return (x - self.center) / self.half_range
