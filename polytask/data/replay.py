"""Replay buffer for online RL: preallocated, in memory, frames stored once, n-step
returns that stop at ``terminated`` and bootstrap through ``truncated``, vectorised sampling.

Layout: every observation of every episode takes one slot (an episode of T steps takes T+1 slots).
Slot ``s`` holds ``obs_s`` and, unless it is the episode's final observation, the step taken from it:
``action_s``, ``reward_s`` (the reward that followed), ``terminated_s``/``truncated_s``. Slots are
addressed by an absolute counter; the physical row is ``abs % capacity``, so old slots are
overwritten first. Pixel observations are single frames uint8 (3, H, W); a sample's stack of
``frame_stack`` frames is gathered by index, oldest first, repeating the episode's first frame, as
:class:`polytask.suites.wrappers.FrameStack` does.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
import torch

#: Per-slot arrays besides the observations (see :meth:`ReplayBuffer.slot_arrays`).
SLOT_ARRAYS = ("action", "reward", "terminated", "truncated", "has_action", "ep_start")


def _refcounts(objects: list[Any]) -> list[int]:
    """Reference counts of ``objects`` (CPython), always taken the same way so they compare."""
    return [sys.getrefcount(o) for o in objects]


class ReplayBuffer:
    """Preallocated replay buffer with n-step returns.

    Args:
        capacity: number of slots (observations) kept.
        obs_shapes: per observation key its shape; pixel keys (``"pixels"``) give the *stacked*
            shape (3*frame_stack, H, W), stored as single frames.
        action_dim: A.
        frame_stack: frames per pixel stack.
        nstep: n of the n-step return (3 in DrQ-v2).
        discount: γ.
        seed: seed of the sampling RNG (saved with :meth:`state_dict`).
        pin_memory: sample into page-locked memory (CUDA runs: the batch's copy to the GPU can then
            be asynchronous, ``non_blocking=True``); needs a CUDA build of PyTorch.

    Sampled batches (:meth:`sample`): ``obs``/``next_obs`` dicts (``state`` float32 (B, D), ``pixels``
    uint8 (B, 3k, H, W)), ``action`` float32 (B, A), ``reward`` float32 (B,) = Σ_{k<m} γ^k r_{t+k},
    ``discount`` float32 (B,) = γ^m, or 0 if the episode terminated within the m steps, where m ≤ n
    is cut short by the episode's end or by the newest stored observation; ``next_obs`` is obs_{t+m}.
    """

    def __init__(self, capacity: int, obs_shapes: dict[str, tuple[int, ...]], action_dim: int,
                 frame_stack: int = 3, nstep: int = 3, discount: float = 0.99, seed: int = 0,
                 pin_memory: bool = False):
        if capacity < nstep + frame_stack + 1:
            raise ValueError(f"capacity {capacity} is too small for nstep={nstep}, frame_stack={frame_stack}")
        self.capacity, self.frame_stack, self.nstep, self.discount = capacity, frame_stack, nstep, discount
        self.obs: dict[str, np.ndarray] = {}
        for key, shape in obs_shapes.items():
            if key == "pixels":
                c, h, w = shape
                self.obs[key] = np.zeros((capacity, c // frame_stack, h, w), np.uint8)
            else:
                self.obs[key] = np.zeros((capacity, *shape), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.truncated = np.zeros(capacity, bool)
        self.has_action = np.zeros(capacity, bool)  # False for an episode's final observation
        self.ep_start = np.zeros(capacity, np.int64)  # absolute slot of the episode's first obs
        self.count = 0  # absolute index of the next slot to write
        self.steps_added = 0  # add() calls so far
        self._cur_start = 0
        self.rng = np.random.default_rng(seed)
        self.pin_memory = pin_memory
        self._sample_shapes = {k: (shape if k == "pixels" else store.shape[1:])
                               for (k, shape), store in zip(obs_shapes.items(), self.obs.values())}
        self._stack_offsets = np.arange(-frame_stack + 1, 1)[None]  # (1, k): a stack's frames, oldest first
        self._gammas = discount ** np.arange(nstep)  # γ^k, k < n
        self._gammas_m = discount ** np.arange(nstep + 1)  # γ^m, m ≤ n
        self.lock = threading.Lock()  # adding and sampling exclude each other (sampling in a background thread)
        self._out: dict[str, np.ndarray] | None = None  # see _out_arrays
        self._out_owners: list[Any] = []
        self._out_free_refs: list[int] = []

    # -- writing --------------------------------------------------------------------------------
    def _write_obs(self, obs: dict[str, np.ndarray]) -> int:
        row = self.count % self.capacity
        for key, store in self.obs.items():
            value = obs[key]
            store[row] = value[-store.shape[1]:] if key == "pixels" else value  # newest frame of a stack
        self.has_action[row] = False
        self.terminated[row] = self.truncated[row] = False
        self.reward[row] = 0.0
        self.ep_start[row] = self._cur_start
        self.count += 1
        return row

    def add_first(self, obs: dict[str, np.ndarray]) -> None:
        """Start an episode with its reset observation."""
        with self.lock:
            self._cur_start = self.count
            self._write_obs(obs)

    def add(self, action: np.ndarray, reward: float, next_obs: dict[str, np.ndarray], terminated: bool,
            truncated: bool) -> None:
        """Record a step taken from the last added observation and the observation it led to."""
        if self.count == 0:
            raise RuntimeError("add_first(obs) must start an episode before add()")
        with self.lock:
            row = (self.count - 1) % self.capacity
            self.action[row] = action
            self.reward[row] = reward
            self.terminated[row] = terminated
            self.truncated[row] = truncated
            self.has_action[row] = True
            self.steps_added += 1
            self._write_obs(next_obs)

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    @property
    def num_transitions(self) -> int:
        """Stored steps (slots that carry an action)."""
        return int(self.has_action[: len(self)].sum())

    # -- sampling -------------------------------------------------------------------------------
    def _out_arrays(self, batch_size: int) -> dict[str, np.ndarray]:
        """Preallocated output arrays for a batch of ``batch_size``: per observation key (2, B, ...)
        (``obs`` then ``next_obs``) and ``action`` (B, A), reused while no tensor of the previous batch
        is alive (fresh multi-megabyte arrays cost page faults that take longer than the copy);
        pinned memory with ``pin_memory``."""
        out = self._out
        if (out is not None and len(out["action"]) == batch_size
                and _refcounts(self._out_owners) == self._out_free_refs):  # no batch tensor holds them: reuse
            return out
        shapes = {**{k: (2, batch_size, *self._sample_shapes[k]) for k in self.obs},
                  "action": (batch_size, self.action.shape[1])}
        dtypes = {**{k: v.dtype for k, v in self.obs.items()}, "action": self.action.dtype}
        if self.pin_memory:
            out = {k: torch.empty(shape, dtype=getattr(torch, dtypes[k].name), pin_memory=True).numpy()
                   for k, shape in shapes.items()}
        else:
            out = {k: np.empty(shape, dtypes[k]) for k, shape in shapes.items()}
        self._out = out
        # what views of the arrays refer to (the array, or the tensor memory it wraps), and their
        # reference counts while no view exists
        self._out_owners = [a if a.base is None else a.base for a in out.values()]
        self._out_free_refs = _refcounts(self._out_owners)
        return out

    def sample_indices(self, batch_size: int) -> np.ndarray:
        """Absolute slots of ``batch_size`` uniformly drawn steps (slots that carry an action)."""
        if self.steps_added == 0:
            raise RuntimeError("the replay buffer holds no transition yet")
        oldest = max(0, self.count - self.capacity)
        idx = self.rng.integers(oldest, self.count, size=batch_size)
        bad = ~self.has_action[idx % self.capacity]
        while bad.any():  # resample final observations (vectorised, a few rounds at most)
            idx[bad] = self.rng.integers(oldest, self.count, size=int(bad.sum()))
            bad = ~self.has_action[idx % self.capacity]
        return idx

    def get(self, idx: np.ndarray) -> dict[str, Any]:
        """n-step transitions starting at absolute slots ``idx`` (int64 (B,)); see the class doc.

        The observations and actions are written into arrays the buffer reuses once every tensor of
        a batch is gone, so a batch that is kept stays as it was. Each observation key is one
        :func:`numpy.take` of precomputed rows, ``obs`` and ``next_obs`` together (pixel stacks:
        ``frame_stack`` rows per sample, the episode's first frame repeated before its start, as
        :func:`polytask.data.buffer.gather_stacks` builds them).
        """
        cap, batch_size = self.capacity, len(idx)
        steps = idx[:, None] + np.arange(self.nstep)[None]  # (B, n)
        rows = steps % cap
        # a step counts while it is stored (the newest observation carries no action yet; rows past
        # it hold overwritten data) and no earlier step in the window ended the episode
        valid = (steps < self.count) & self.has_action[rows]
        terminated = self.terminated[rows]
        ended = terminated | self.truncated[rows]
        before_end = np.ones_like(ended)
        before_end[:, 1:] = np.logical_and.accumulate(~ended[:, :-1], 1)
        alive = np.logical_and.accumulate(valid & before_end, 1)
        m = alive.sum(1)
        reward = (self.reward[rows] * self._gammas * alive).sum(1).astype(np.float32)
        discount = np.where((terminated & alive).any(1), 0.0, self._gammas_m[m]).astype(np.float32)
        out = self._out_arrays(batch_size)
        starts = np.concatenate([idx, idx + m])  # obs_t then obs_{t+m}
        start_rows = starts % cap
        for key, store in self.obs.items():
            if key == "pixels":
                first = np.maximum(self.ep_start[start_rows], max(0, self.count - cap))
                hist = np.maximum(starts[:, None] + self._stack_offsets, first[:, None]) % cap  # (2B, k)
                np.take(store, hist.ravel(), axis=0, out=out[key].reshape(-1, *store.shape[1:]), mode="clip")
            else:
                np.take(store, start_rows, axis=0, out=out[key].reshape(-1, *store.shape[1:]), mode="clip")
        np.take(self.action, start_rows[:batch_size], axis=0, out=out["action"], mode="clip")
        return {"obs": {k: torch.from_numpy(out[k][0]) for k in self.obs},
                "action": torch.from_numpy(out["action"]),
                "reward": torch.from_numpy(reward), "discount": torch.from_numpy(discount),
                "next_obs": {k: torch.from_numpy(out[k][1]) for k in self.obs}}

    def sample(self, batch_size: int) -> dict[str, Any]:
        """A uniformly sampled batch of n-step transitions (see :meth:`get`); safe to call from another
        thread while this one adds steps (:class:`polytask.data.prefetch.PrefetchSampler`)."""
        with self.lock:
            return self.get(self.sample_indices(batch_size))

    # -- persistence ----------------------------------------------------------------------------
    def _rows(self, start: int, end: int) -> slice | np.ndarray:
        """Rows of absolute slots ``[start, end)``: a slice unless they wrap around the end."""
        lo, hi = start % self.capacity, (end - 1) % self.capacity + 1
        return slice(lo, hi) if end > start and lo < hi else np.arange(start, end) % self.capacity

    def slot_arrays(self, start: int, end: int) -> dict[str, np.ndarray]:
        """What is stored for absolute slots ``[start, end)``, which must be among the newest
        ``capacity`` (views where the rows do not wrap): ``obs.<key>`` per observation key and
        ``action``, ``reward``, ``terminated``, ``truncated``, ``has_action``, ``ep_start``, each
        with ``end - start`` rows.

        Raises:
            ValueError: if the slots are not all stored.
        """
        if not max(0, self.count - self.capacity) <= start <= end <= self.count:
            raise ValueError(f"slots [{start}, {end}) are not all stored: the buffer holds "
                             f"[{max(0, self.count - self.capacity)}, {self.count})")
        rows = self._rows(start, end)
        return {**{f"obs.{k}": v[rows] for k, v in self.obs.items()},
                **{k: getattr(self, k)[rows] for k in SLOT_ARRAYS}}

    def write_slot_arrays(self, start: int, arrays: dict[str, np.ndarray]) -> None:
        """Store what :meth:`slot_arrays` returned, from absolute slot ``start`` on (the counters are
        :meth:`load_state_dict`'s).

        Raises:
            ValueError: if a key is missing or the shapes do not fit this buffer.
        """
        n = len(arrays["action"])
        if n > self.capacity:
            raise ValueError(f"{n} slots do not fit a buffer of capacity {self.capacity}")
        rows = self._rows(start, start + n)
        stores = {**{f"obs.{k}": v for k, v in self.obs.items()}, **{k: getattr(self, k) for k in SLOT_ARRAYS}}
        for key, store in stores.items():
            if key not in arrays or arrays[key].shape != (n, *store.shape[1:]):
                got = arrays[key].shape if key in arrays else "nothing"
                raise ValueError(f"{key}: expected shape {(n, *store.shape[1:])}, got {got}")
            store[rows] = arrays[key]

    def state_dict(self) -> dict[str, Any]:
        """Counters and the sampling RNG state (plain numbers); the stored slots are saved apart
        (:meth:`slot_arrays`, :class:`polytask.training.replay_store.ReplayStore`)."""
        return {"capacity": self.capacity, "count": self.count, "cur_start": self._cur_start,
                "steps_added": self.steps_added, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Raises:
            ValueError: if the saved buffer had another capacity.
        """
        if state["capacity"] != self.capacity:
            raise ValueError(f"saved buffer has capacity {state['capacity']}, this one {self.capacity}")
        self.count, self._cur_start, self.steps_added = state["count"], state["cur_start"], state["steps_added"]
        self.rng.bit_generator.state = state["rng"]
