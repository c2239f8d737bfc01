"""Skill networks of SPiRL (Pertsch et al. 2020) and SkiLD (Pertsch et al. 2021): the LSTM skill
encoder q(z | s, a_1:H), the closed-loop skill decoder π(a_t | s_t, z), diagonal-Gaussian heads for
the skill prior p(z | s_0) (and SkiLD's skill posterior q(z | s_0)), and the Gaussian KL and NLL
they are trained with.

A diagonal Gaussian is a pair ``(mean, log_std)`` of float32 tensors (..., Z).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from polytask.nets.mlp import mlp

#: log-std bounds of every Gaussian head (SPiRL leaves them free; bounding keeps the NLL finite)
LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0


def gaussian_kl(mean_q: torch.Tensor, log_std_q: torch.Tensor, mean_p: torch.Tensor,
                log_std_p: torch.Tensor) -> torch.Tensor:
    """Analytic KL(q ‖ p) of diagonal Gaussians, summed over the last dimension:

        Σ_i log σ_p,i − log σ_q,i + (σ_q,i² + (μ_q,i − μ_p,i)²) / (2 σ_p,i²) − ½

    Args:
        mean_q, log_std_q, mean_p, log_std_p: float32 (..., Z), broadcastable.

    Returns:
        float32 (...), in nats.
    """
    var_ratio = torch.exp(2 * (log_std_q - log_std_p))
    mahalanobis = ((mean_q - mean_p) * torch.exp(-log_std_p)).pow(2)
    return (log_std_p - log_std_q + 0.5 * (var_ratio + mahalanobis) - 0.5).sum(-1)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Negative log-density of ``x`` under a diagonal Gaussian, summed over the last dimension.

    Args:
        x, mean, log_std: float32 (..., Z), broadcastable.

    Returns:
        float32 (...), in nats.
    """
    return (0.5 * ((x - mean) * torch.exp(-log_std)).pow(2) + log_std + 0.5 * math.log(2 * math.pi)).sum(-1)


def rsample(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """A reparameterised sample ``mean + exp(log_std)·ε``, ε ~ N(0, I) from torch's global RNG."""
    return mean + torch.exp(log_std) * torch.randn_like(mean)


class GaussianMLP(nn.Module):
    """An MLP to a diagonal Gaussian: SPiRL's learned skill prior p(z | s_0) and SkiLD's skill
    posterior q(z | s_0).

    Input: float32 (..., in_dim). Output: ``(mean, log_std)``, float32 (..., out_dim) each, the
    log-std clamped to [LOG_STD_MIN, LOG_STD_MAX].
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, hidden_depth: int):
        super().__init__()
        self.net = mlp(in_dim, hidden_dim, 2 * out_dim, hidden_depth)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class SkillEncoder(nn.Module):
    """SPiRL's skill posterior q(z | s_1:H, a_1:H): an LSTM over the concatenated states and actions
    of a window, its last output mapped to a diagonal Gaussian over z.

    Input: states float32 (B, H, D) and actions float32 (B, H, A). Output: ``(mean, log_std)``,
    float32 (B, Z) each.
    """

    def __init__(self, obs_dim: int, action_dim: int, z_dim: int, hidden_dim: int, num_layers: int = 1):
        super().__init__()
        self.lstm = nn.LSTM(obs_dim + action_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_dim, 2 * z_dim)

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.lstm(torch.cat([states, actions], dim=-1))
        mean, log_std = self.head(out[:, -1]).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class SkillDecoder(nn.Module):
    """SPiRL's closed-loop skill decoder π(a_t | s_t, z): an MLP on the current state and the skill.

    Input: states float32 (..., D) and skills float32 (..., Z). Output: mean actions float32 (..., A)
    (unbounded; acting clips them to the action bounds).
    """

    def __init__(self, obs_dim: int, z_dim: int, action_dim: int, hidden_dim: int, hidden_depth: int):
        super().__init__()
        self.net = mlp(obs_dim + z_dim, hidden_dim, action_dim, hidden_depth)

    def forward(self, states: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([states, z], dim=-1))
