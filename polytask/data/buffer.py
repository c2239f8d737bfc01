"""In-memory demonstration buffer with vectorised sampling and frame stacks rebuilt by index."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from polytask.data.demos import Episode


def gather_stacks(frames: np.ndarray, idx: np.ndarray, first: np.ndarray, k: int, rows: int | None = None) -> np.ndarray:
    """Frame stacks gathered by index: for every index ``idx[b]`` the frames ``idx[b]-k+1 .. idx[b]``,
    oldest first, clipped at ``first[b]`` (the episode's first frame is repeated before it, as
    :class:`polytask.suites.wrappers.FrameStack` does).

    Args:
        frames: uint8 (N, C, H, W) single frames.
        idx, first: int64 (B,) frame indices and the indices the stacks may not reach before.
        k: frames per stack.
        rows: for a circular store, indices are taken modulo ``rows``.

    Returns:
        uint8 (B, k*C, H, W).
    """
    hist = np.maximum(idx[:, None] + np.arange(-k + 1, 1)[None], first[:, None])  # (B, k)
    stacked = frames[hist % rows if rows else hist]  # (B, k, C, H, W)
    return stacked.reshape(len(idx), -1, *frames.shape[-2:])


def stack_frames(frames: np.ndarray, k: int) -> np.ndarray:
    """Frame stacks of one episode: uint8 (T, C, H, W) -> (T, k*C, H, W) (see :func:`gather_stacks`)."""
    idx = np.arange(len(frames))
    return gather_stacks(frames, idx, np.zeros_like(idx), k)


class DemoBuffer:
    """All transitions (obs_t, action_t, task_id) of a list of episodes, for offline training.

    Pixel frames are stored once, uint8 (N, 3, H, W); a sample's stack of ``frame_stack`` frames is
    gathered by index (oldest first, the episode's first frame repeated before its start), exactly
    matching :class:`polytask.suites.wrappers.FrameStack`. Sequence policies sample windows of
    consecutive steps instead (:meth:`sample_windows`).

    Args:
        episodes: per task, the list of episodes: ``{task_id: [Episode, ...]}``.
        obs_keys: observation keys to keep (``("state",)`` or ``("state", "pixels")``).
        frame_stack: frames per pixel stack.
        seed: seed of the sampling RNG (its state is part of :meth:`state_dict`).
    """

    def __init__(self, episodes: dict[int, list[Episode]], obs_keys: tuple[str, ...], frame_stack: int = 3,
                 seed: int = 0):
        obs: dict[str, list[np.ndarray]] = {k: [] for k in obs_keys}
        actions, task_ids, starts, ends = [], [], [], []
        n = 0
        for task_id, eps in episodes.items():
            for ep in eps:
                T = len(ep)
                for k in obs_keys:
                    obs[k].append(ep.obs[k][:T])
                actions.append(ep.action)
                task_ids.append(np.full(T, task_id, np.int64))
                starts.append(np.full(T, n, np.int64))
                ends.append(np.full(T, n + T - 1, np.int64))
                n += T
        if n == 0:
            raise ValueError("DemoBuffer got no transitions")
        self.obs = {k: np.concatenate(v) for k, v in obs.items()}
        self.action = np.concatenate(actions).astype(np.float32)
        self.task_id = np.concatenate(task_ids)
        self._start = np.concatenate(starts)
        self._last = np.concatenate(ends)  # index of each transition's episode's last transition
        self.frame_stack = frame_stack
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.action)

    def get(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Batch of transitions ``idx`` (int64 (B,)): ``state`` float32 (B, D), ``pixels`` uint8
        (B, 3*frame_stack, H, W), ``action`` float32 (B, A), ``task_id`` int64 (B,)."""
        batch: dict[str, Any] = {}
        for k, v in self.obs.items():
            if k == "pixels":
                batch[k] = gather_stacks(v, idx, self._start[idx], self.frame_stack)
            else:
                batch[k] = v[idx]
        batch["action"] = self.action[idx]
        batch["task_id"] = self.task_id[idx]
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Uniformly sampled batch (see :meth:`get`)."""
        return self.get(self.rng.integers(0, len(self), size=batch_size))

    def get_windows(self, idx: np.ndarray, obs_steps: int, action_steps: int,
                    action_start: int = 0) -> dict[str, torch.Tensor]:
        """Windows around transitions ``idx`` (int64 (B,)), for sequence policies (Diffusion Policy,
        BeT): for step t the observations t−obs_steps+1 .. t and the actions t+action_start ..
        t+action_start+action_steps−1, oldest first, clipped to t's episode (its first step repeated
        before its start, its last action after its end).

        Returns:
            ``state`` float32 (B, obs_steps, D), ``pixels`` uint8 (B, obs_steps, 3*frame_stack, H, W),
            ``action`` float32 (B, action_steps, A), ``task_id`` int64 (B,).
        """
        idx = np.asarray(idx, np.int64)
        first, last = self._start[idx][:, None], self._last[idx][:, None]
        obs_idx = np.clip(idx[:, None] + np.arange(1 - obs_steps, 1)[None], first, last)  # (B, To)
        act_idx = np.clip(idx[:, None] + np.arange(action_start, action_start + action_steps)[None], first, last)
        batch: dict[str, Any] = {}
        for k, v in self.obs.items():
            if k == "pixels":
                flat = obs_idx.reshape(-1)
                stacks = gather_stacks(v, flat, self._start[flat], self.frame_stack)
                batch[k] = stacks.reshape(*obs_idx.shape, *stacks.shape[1:])
            else:
                batch[k] = v[obs_idx]
        batch["action"] = self.action[act_idx]
        batch["task_id"] = self.task_id[idx]
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}

    def sample_windows(self, batch_size: int, obs_steps: int, action_steps: int,
                       action_start: int = 0) -> dict[str, torch.Tensor]:
        """Windows (see :meth:`get_windows`) around uniformly sampled transitions, drawn from the
        same seeded RNG as :meth:`sample`."""
        return self.get_windows(self.rng.integers(0, len(self), size=batch_size), obs_steps, action_steps,
                                action_start)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
