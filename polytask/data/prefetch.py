"""Replay batches sampled one update ahead in a background thread, so that sampling (and, on a GPU,
the copy to it) overlaps the update."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from polytask.data.replay import ReplayBuffer


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    return {k: _to_device(v, device) for k, v in batch.items()}


def _record_stream(batch: Any, stream: torch.cuda.Stream) -> None:
    if torch.is_tensor(batch):
        batch.record_stream(stream)
    else:
        for v in batch.values():
            _record_stream(v, stream)


class PrefetchSampler:
    """:meth:`ReplayBuffer.sample` one batch ahead: each :meth:`sample` returns the batch drawn while
    the previous update ran and starts drawing the next one in a background thread (NumPy's gathers
    release the GIL). On CUDA the batch is sampled into the buffer's pinned memory
    (``ReplayBuffer(pin_memory=True)``) and copied to the GPU on a side stream in that thread, so the
    update never waits for the host.

    Differences from sampling in the update (why it is an option, ``replay_prefetch``): a batch is
    drawn before the steps of the current agent step are added, so it misses the newest step; and
    the sampling RNG runs one batch ahead of the checkpointed state, so a resumed run draws other
    batches than an uninterrupted one. The batches themselves are the same draws as plain sampling
    from the same buffer.

    Args:
        replay: the replay buffer (pinned with ``pin_memory=True`` for CUDA).
        batch_size: B.
        device: where batches go.
    """

    def __init__(self, replay: ReplayBuffer, batch_size: int, device: torch.device | str = "cpu"):
        self.replay, self.batch_size, self.device = replay, batch_size, torch.device(device)
        self._cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if self._cuda else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-prefetch")
        self._next: Future | None = None

    def _fetch(self) -> dict[str, Any]:
        batch = self.replay.sample(self.batch_size)
        if not self._cuda:
            return batch
        with torch.cuda.stream(self._stream):
            on_device = _to_device(batch, self.device)
        self._stream.synchronize()  # the pinned arrays are free for the next batch once copied
        return on_device

    def sample(self) -> dict[str, Any]:
        """The next batch (the layout of :meth:`ReplayBuffer.sample`, on ``device``)."""
        batch = (self._next or self._pool.submit(self._fetch)).result()
        self._next = self._pool.submit(self._fetch)
        if self._cuda:  # made on the side stream, used on the current one
            _record_stream(batch, torch.cuda.current_stream(self.device))
        return batch

    def close(self) -> None:
        """Wait for the batch in flight and stop the thread."""
        self._pool.shutdown(wait=True)
        self._next = None
