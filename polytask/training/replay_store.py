"""Incremental saving of a replay buffer beside a run's checkpoint (``checkpoints/replay/``).

Each save writes one chunk file ``<start>-<end>.npz`` holding the buffer's absolute slots
``[start, end)`` (:meth:`ReplayBuffer.slot_arrays`; NumPy ``.npz``, read with ``allow_pickle=False``):
the slots added since the previous save, plus that save's newest slot, whose step is only filled in
by the next ``add``. ``latest.pt`` records the buffer's counters and the chunks that hold its
stored slots; chunks whose slots have all been overwritten since (the ring buffer wrapped) are left
out of it. A file the recorded list does not name (written by a run killed before it renamed its
``latest.pt``, or dropped from the list at an earlier save) is ignored on load and deleted at the
next save, after the checkpoint that dropped it has replaced the one that named it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from polytask.data.replay import ReplayBuffer
from polytask.errors import CheckpointError
from polytask.utils import atomic_write


class ReplayStore:
    """Chunk files of one run's replay buffer in ``folder`` (see the module doc).

    Args:
        folder: ``<run_dir>/checkpoints/replay``.

    The store remembers the chunks that the newest saved (or loaded) checkpoint lists: call
    :meth:`save` only to put its result in a checkpoint that is then written.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.chunks: list[tuple[int, int]] = []  # [start, end) of the chunks the checkpoint on disk lists

    def _path(self, chunk: tuple[int, int]) -> Path:
        return self.folder / f"{chunk[0]}-{chunk[1]}.npz"

    def write_chunk(self, start: int, arrays: dict[str, np.ndarray]) -> tuple[int, int]:
        """Write ``arrays`` (:meth:`ReplayBuffer.slot_arrays` of slots from ``start`` on) as one chunk
        file (temp file + rename); returns its ``(start, end)``."""
        chunk = (start, start + len(arrays["action"]))
        atomic_write(self._path(chunk), lambda f: np.savez(f, **arrays))
        return chunk

    def save(self, buffer: ReplayBuffer) -> dict[str, Any]:
        """Write the slots added since the last save (all stored slots at the first one) as a chunk.

        Returns:
            ``buffer.state_dict()`` plus ``chunks``: the ``[start, end]`` of every chunk holding
            stored slots, oldest first; plain numbers for the checkpoint.
        """
        listed = {self._path(c).name for c in self.chunks}
        for path in [*self.folder.glob("*.npz"), *self.folder.glob(".*.npz.*.tmp")]:  # left by a kill, or
            if path.name not in listed:  # dropped from the list by the checkpoint on disk
                path.unlink()
        oldest = max(0, buffer.count - buffer.capacity)
        chunks = [c for c in self.chunks if c[1] > oldest]
        saved_end = self.chunks[-1][1] if self.chunks else 0
        if buffer.count > saved_end:
            start = max(oldest, saved_end - 1)  # the last saved slot gets its step filled in after a save
            chunks.append(self.write_chunk(start, buffer.slot_arrays(start, buffer.count)))
        self.chunks = chunks
        return {**buffer.state_dict(), "chunks": [list(c) for c in chunks]}

    def load(self, buffer: ReplayBuffer, state: dict[str, Any]) -> None:
        """Restore ``buffer`` from what :meth:`save` returned and the chunk files it lists.

        Raises:
            CheckpointError: if a listed chunk is missing, unreadable or does not fit ``buffer``, or
                ``state`` lists no chunks (a checkpoint from before chunked replay files).
        """
        if "chunks" not in state:
            raise CheckpointError("This checkpoint holds its replay buffer inline (written by an older PolyTask); "
                                  "convert it: python -m polytask.training.checkpoint convert <latest.pt> --trust")
        try:
            buffer.load_state_dict(state)
        except ValueError as e:
            raise CheckpointError(f"The replay buffer in this checkpoint does not fit the run's: {e}") from e
        oldest = max(0, buffer.count - buffer.capacity)
        for chunk in (tuple(c) for c in state["chunks"]):
            path = self._path(chunk)
            try:
                with np.load(path, allow_pickle=False) as f:
                    first = max(oldest, chunk[0]) - chunk[0]  # slots before it were overwritten later
                    buffer.write_slot_arrays(chunk[0] + first, {k: f[k][first:] for k in f.files})
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                raise CheckpointError(f"Replay chunk {path} listed by the checkpoint is missing or unreadable "
                                      f"({type(e).__name__}: {e}); the run's replay data is incomplete: restore "
                                      "the checkpoints/ folder as a whole, or start over with resume=never") from e
        self.chunks = [tuple(c) for c in state["chunks"]]
