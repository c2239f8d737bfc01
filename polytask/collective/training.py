"""Training loop of the trajectory transformer (Adam, lr 2e-4, batch 128 in the reference setup)
and batched embedding of windows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from polytask.collective.windows import to_tensors
from polytask.errors import PolyTaskError
from polytask.nets.trajectory_transformer import TrajectoryTransformer


def train_transformer(windows_fn: Callable[[int], dict[str, np.ndarray]], model: TrajectoryTransformer, steps: int,
                      batch_size: int = 128, lr: float = 2e-4,
                      log_fn: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 100,
                      optimizer: torch.optim.Optimizer | None = None, start_step: int = 0,
                      norm_windows: int = 4096) -> dict[str, float]:
    """Train ``model`` with :meth:`TrajectoryTransformer.loss` on fresh windows each step.

    If the model's input normalisation is not fitted yet, it is fitted first on
    ``windows_fn(norm_windows)``.

    Args:
        windows_fn: ``windows_fn(n)`` → a window dict as :func:`polytask.collective.windows.sample_windows`
            returns (numpy arrays).
        model: the transformer (trained in place, on its own device).
        steps: number of updates; the loop runs steps ``start_step .. steps − 1`` (resume).
        batch_size, lr: batch size and Adam learning rate (used only when ``optimizer`` is None).
        log_fn: called as ``log_fn(step, metrics)`` every ``log_every`` steps and after the last one.
        optimizer: an existing optimiser over ``model.parameters()`` (e.g. restored from a checkpoint).
        start_step: first step (resume).
        norm_windows: how many windows fit the normalisation.

    Returns:
        the last step's metrics (empty when no step ran).
    Raises:
        PolyTaskError: when the loss becomes non-finite (with the step).
    """
    device = next(model.parameters()).device
    if not bool(model.normalization_fitted):
        w = windows_fn(norm_windows)
        model.fit_normalization(w["obs"], w["rewards"])
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    metrics: dict[str, float] = {}
    for step in range(start_step, steps):
        batch = to_tensors(windows_fn(batch_size), device)
        loss, metrics = model.loss(batch["obs"], batch["actions"], batch["rewards"], batch["task_id"])
        if not math.isfinite(metrics["loss"]):
            raise PolyTaskError(f"the trajectory transformer's loss became non-finite at step {step} ({metrics}); "
                                "lower the learning rate or check the recorded windows for NaN/inf values")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if log_fn is not None and ((step + 1) % log_every == 0 or step == steps - 1):
            log_fn(step, metrics)
    return metrics


@torch.no_grad()
def embed_windows(model: TrajectoryTransformer, windows: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
    """Task embeddings of windows (eval mode, restored afterwards): float32 (N, cls_dim) numpy.

    Args:
        windows: dict with ``obs`` (N, W, D), ``actions`` (N, W−1, A), ``rewards`` (N, W−1).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(windows["obs"]), batch_size):
        part = to_tensors({k: windows[k][i:i + batch_size] for k in ("obs", "actions", "rewards")}, device)
        out.append(model.embed(part["obs"], part["actions"], part["rewards"]).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.cls_dim), np.float32)
