"""Wall time of a repeated call, synchronised with the GPU when the work runs there."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def seconds_per_call(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 2) -> float:
    """Mean wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones; on CUDA the
    queue is drained before the clock starts and stops, so queued kernels are counted."""
    for _ in range(warmup):
        fn()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats
