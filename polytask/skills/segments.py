"""Skill segments of labelled play data (:mod:`polytask.skills.extract`), padded to one length, and
sampled in batches for EXTRACT's skill model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from polytask.data.demos import DatasetError, Episode
from polytask.skills.extract import runs


class SegmentBuffer:
    """Every kept skill segment of ``episodes`` (runs of one ``infos["skill"]`` ≥ 0), padded to the
    longest, each a batch row for :meth:`sample`:

    ``state`` float32 (B, L, D), ``action`` float32 (B, L, A), ``progress`` float32 (B, L), ``mask``
    bool (B, L) (true on real steps), ``length`` int64 (B,), ``skill`` int64 (B,).

    Raises:
        DatasetError: if the episodes carry no skill labels or no kept segment.
    """

    def __init__(self, episodes: Sequence[Episode], seed: int = 0):
        if any("skill" not in ep.infos or "progress" not in ep.infos for ep in episodes):
            raise DatasetError("the play data carries no skill labels (infos 'skill' and 'progress'): make them with "
                               "extract_skills.py")
        segs = [(ep, s) for i, ep in enumerate(episodes) for s in runs(np.asarray(ep.infos["skill"]), i)
                if s.label >= 0]
        if not segs:
            raise DatasetError("the labelled play data holds no skill segment; lower extract.min_len or make more "
                               "play data")
        n, width = len(segs), max(len(s) for _, s in segs)
        ep0 = episodes[0]
        self.state = np.zeros((n, width, ep0.obs["state"].shape[1]), np.float32)
        self.action = np.zeros((n, width, ep0.action.shape[1]), np.float32)
        self.progress = np.zeros((n, width), np.float32)
        self.mask = np.zeros((n, width), bool)
        self.length = np.array([len(s) for _, s in segs], np.int64)
        self.skill = np.array([s.label for _, s in segs], np.int64)
        for i, (ep, s) in enumerate(segs):
            length = len(s)
            self.state[i, :length] = ep.obs["state"][s.start:s.stop]
            self.action[i, :length] = ep.action[s.start:s.stop]
            self.progress[i, :length] = ep.infos["progress"][s.start:s.stop]
            self.mask[i, :length] = True
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.skill)

    @property
    def num_skills(self) -> int:
        """1 + the largest skill id."""
        return int(self.skill.max()) + 1

    def states(self) -> np.ndarray:
        """The real (unpadded) states float32 (N, D)."""
        return self.state[self.mask]

    def get(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Segments ``idx`` int64 (B,) as a batch (see the class docstring)."""
        return {k: torch.from_numpy(getattr(self, k)[idx]) for k in
                ("state", "action", "progress", "mask", "length", "skill")}

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Uniformly sampled segments."""
        return self.get(self.rng.integers(0, len(self), size=batch_size))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
