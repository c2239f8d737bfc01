"""MLPs and the deterministic-mean actor used by BC (and, later, DrQ-v2)."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, hidden_depth: int) -> nn.Sequential:
    """``hidden_depth`` hidden layers of ``hidden_dim`` units with ReLU, then a linear output."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(hidden_depth):
        layers += [nn.Linear(dim, hidden_dim), nn.ReLU()]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights and zero biases for linear/conv layers (DrQ-v2's ``weight_init``)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        gain = nn.init.calculate_gain("relu") if isinstance(module, nn.Conv2d) else 1.0
        nn.init.orthogonal_(module.weight, gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Actor(nn.Module):
    """Trunk + MLP policy head with a tanh mean.

    For pixel representations the trunk is Linear(repr_dim, feature_dim) + LayerNorm + Tanh; for
    state features it is the identity (``feature_dim`` ignored).

    Input: float32 (B, repr_dim). Output: mean action float32 (B, action_dim) in (-1, 1).
    """

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int, hidden_depth: int,
                 use_trunk: bool):
        super().__init__()
        if use_trunk:
            self.trunk: nn.Module = nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
            in_dim = feature_dim
        else:
            self.trunk = nn.Identity()
            in_dim = repr_dim
        self.policy = mlp(in_dim, hidden_dim, action_dim, hidden_depth)
        self.apply(orthogonal_init)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.policy(self.trunk(h)))
