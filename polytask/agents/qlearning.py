"""The twin-Q learning step shared by the actor-critic agents (DrQ-v2, SAC, residual SAC).

Clipped double-Q (Fujimoto et al. 2018) with an n-step target from the replay buffer:

    y = R + γ^m · (min(Q1', Q2')(s', a') − b),     L = (Q1(s, a) − y)² + (Q2(s, a) − y)²

where (R, γ^m) are the buffer's ``reward`` and ``discount`` (γ^m, or 0 after termination), a' is the
agent's next action (DrQ-v2: clipped-noise sample; SAC: a' ~ π(·|s')) and b an optional bonus term
(SAC's α·log π(a'|s'), Haarnoja et al. 2018, Eq. 3 and 5). The targets are Polyak averages of the
critic (:func:`polytask.nets.mlp.soft_update`).
"""

from __future__ import annotations

import torch
from torch import nn

from polytask.agents.configs.imitation import TWIN_Q_REDUCTIONS


def twin_q_reduce(q1: torch.Tensor, q2: torch.Tensor, how: str = "min") -> torch.Tensor:
    """Combine twin Q estimates, each float32 (B, 1): ``"min"`` is clipped double Q (Fujimoto et al.
    2018, Eq. 10), the pessimistic default; ``"mean"`` is the risk-neutral estimate that Nauman et al.
    (2024, "Bigger, Regularized, Optimistic", Sec. 4) find learns faster on DMC once the critic is
    regularised (LayerNorm).

    Raises:
        ValueError: for any other ``how``.
    """
    if how == "min":
        return torch.min(q1, q2)
    if how == "mean":
        return 0.5 * (q1 + q2)
    raise ValueError(f"twin Q reduction must be one of {TWIN_Q_REDUCTIONS}, got {how!r}")


@torch.no_grad()
def td_target(critic_target: nn.Module, h_next: torch.Tensor, next_action: torch.Tensor, reward: torch.Tensor,
              discount: torch.Tensor, next_bonus: torch.Tensor | None = None, twin_q: str = "min") -> torch.Tensor:
    """``R + γ^m · (min(Q1', Q2')(h', a') − bonus)`` (``twin_q="mean"``: the mean of Q1', Q2').

    Args:
        critic_target: twin critic ``(h, a) -> (q1, q2)``, each (B, 1).
        h_next: float32 (B, ...) next representations; next_action float32 (B, A).
        reward, discount: float32 (B, 1).
        next_bonus: float32 (B, 1) subtracted from the target Q (SAC: α·log π(a'|s')), or None.
        twin_q: ``"min"`` or ``"mean"`` (:func:`twin_q_reduce`).

    Returns:
        float32 (B, 1), without gradient.
    """
    q_next = twin_q_reduce(*critic_target(h_next, next_action), twin_q)
    if next_bonus is not None:
        q_next = q_next - next_bonus
    return reward + discount * q_next


def update_twin_critic(critic: nn.Module, optimizer: torch.optim.Optimizer, h: torch.Tensor, action: torch.Tensor,
                       target: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimiser step on ``(Q1(h, a) − y)² + (Q2(h, a) − y)²`` (batch means).

    Args:
        critic: twin critic; optimizer: the optimiser over its (and, e.g., an encoder's) parameters.
        h: float32 (B, ...) representations (may carry an encoder's graph); action float32 (B, A).
        target: float32 (B, 1) from :func:`td_target`.

    Returns:
        ``critic_loss``, ``q`` (mean Q1) and ``target_q`` (mean target), 0-d tensors without gradient
        (no host sync here; the trainer converts them when it logs).
    """
    q1, q2 = critic(h, action)
    loss = (q1 - target).pow(2).mean() + (q2 - target).pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"critic_loss": loss.detach(), "q": q1.detach().mean(), "target_q": target.mean()}


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015) with PyTorch's fused kernel: one kernel per step over all parameters on
    CPU and CUDA instead of a Python loop of per-tensor ops (the same update up to float rounding; about
    a quarter of the optimiser's time in a 2×256 SAC update on one CPU core)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def actor_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """One optimiser step on ``loss`` that back-propagates into the optimiser's parameters only.

    The actor objective −Q(s, π(s)) runs through the critic; a plain ``loss.backward()`` would also
    compute the critic's weight gradients, which the actor step discards (the critic step clears
    them). Restricting autograd to the actor's parameters gives the same actor update for less work.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    optimizer.step()
