"""Reward shaping of collective learning's students: the critic target becomes
``r + w(t)·q(s, a) + γ·V(s')`` with q the collective policy's unnormalised likelihood of the
executed action and w a weight that holds at 1 and then decays linearly to 0, so the student ends
up optimising the task reward alone."""

from __future__ import annotations

import torch

from polytask.errors import ConfigError


def shaping_weight(step: int, hold_until: int = 8000, zero_at: int = 50000) -> float:
    """w(step): 1 for ``step <= hold_until``, then linear down to 0 at ``zero_at``, 0 after.

    Args:
        step: the student's env (or agent) step, >= 0.
        hold_until, zero_at: schedule breakpoints in the same unit (8k and 50k steps).

    Raises:
        ConfigError: if ``zero_at < hold_until`` or either is negative.
    """
    if hold_until < 0 or zero_at < hold_until:
        raise ConfigError(f"shaping schedule needs 0 <= hold_until <= zero_at, got hold_until={hold_until}, "
                          f"zero_at={zero_at}")
    if step <= hold_until:
        return 1.0
    if step >= zero_at:
        return 0.0
    return float((zero_at - step) / (zero_at - hold_until))


def shaping_bonus(action: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """q = Π_i exp(−½((a_i − tanh(μ_i)) / σ_i)²), in (0, 1], 1 when the action is the collective
    policy's mean action.

    ``mean`` is the collective actor's *pre-tanh* μ (what :class:`~polytask.nets.collective.CollectiveActor`
    and SAC's actor output); it is squashed with tanh here so that it is compared with the executed
    action in action space [−1, 1]; σ = exp(log σ) is used unchanged.

    Args:
        action: float32 (B, A), the executed action in [−1, 1].
        mean: float32 (B, A), pre-tanh μ. log_std: float32 (B, A).

    Returns:
        float32 (B,).
    """
    z = (action - torch.tanh(mean)) / log_std.exp()
    return torch.exp(-0.5 * z.pow(2).sum(-1))
