"""MLPs, the deterministic-mean actor of BC and DrQ-v2, SAC's tanh-squashed Gaussian actor, and the
twin critic they share."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_dim: int, hidden_dim: int, out_dim: int, hidden_depth: int, layer_norm: bool = False) -> nn.Sequential:
    """``hidden_depth`` hidden layers of ``hidden_dim`` units with ReLU, then a linear output.

    With ``layer_norm`` each hidden Linear is followed by a LayerNorm before the ReLU (Ba et al. 2016;
    in critics it bounds Q extrapolation and lets them take more updates per env step, Ball et al.
    2023, "Efficient Online RL with Offline Data", §4).
    """
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(hidden_depth):
        layers += [nn.Linear(dim, hidden_dim), *([nn.LayerNorm(hidden_dim)] if layer_norm else []), nn.ReLU()]
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


def make_trunk(repr_dim: int, feature_dim: int, use_trunk: bool) -> tuple[nn.Module, int]:
    """DrQ-v2's trunk (Linear + LayerNorm + Tanh to ``feature_dim``), used for pixel representations
    and, when asked (``state_trunk``), for state features; otherwise the identity. Returns the
    module and its output size."""
    if use_trunk:
        return nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh()), feature_dim
    return nn.Identity(), repr_dim


class Actor(nn.Module):
    """Trunk + MLP policy head with a tanh mean.

    For pixel representations the trunk is Linear(repr_dim, feature_dim) + LayerNorm + Tanh; for
    state features it is the identity (``feature_dim`` ignored).

    Input: float32 (B, repr_dim). Output: mean action float32 (B, action_dim) in (-1, 1).
    """

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int, hidden_depth: int,
                 use_trunk: bool):
        super().__init__()
        self.trunk, in_dim = make_trunk(repr_dim, feature_dim, use_trunk)
        self.policy = mlp(in_dim, hidden_dim, action_dim, hidden_depth)
        self.apply(orthogonal_init)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.policy(self.trunk(h)))


class GaussianActor(nn.Module):
    """Tanh-squashed Gaussian policy of SAC (Haarnoja et al. 2018, Appendix C "Enforcing Action
    Bounds"): u ~ N(μ(h), σ(h)²), action a = tanh(u), with

        log π(a|h) = log N(u; μ, σ²) − Σ_i log(1 − tanh²(u_i)),

    the correction computed as ``2·(log 2 − u − softplus(−2u))`` (exact, stable for large |u|).
    log σ is squashed into ``log_std_bounds`` by a tanh (as in Yarats & Kostrikov's pytorch_sac).

    Trunk as in :class:`Actor` (pixels: Linear + LayerNorm + Tanh; features: identity), then one
    MLP with 2·A outputs (μ, log σ).

    Input: h float32 (B, repr_dim). :meth:`sample` gives (action float32 (B, A) in (−1, 1),
    log π float32 (B, 1)); :meth:`mean` gives tanh(μ) float32 (B, A).
    """

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int, hidden_depth: int,
                 use_trunk: bool, log_std_bounds: tuple[float, float] = (-5.0, 2.0)):
        super().__init__()
        self.trunk, in_dim = make_trunk(repr_dim, feature_dim, use_trunk)
        self.policy = mlp(in_dim, hidden_dim, 2 * action_dim, hidden_depth)
        self.log_std_min, self.log_std_max = (float(b) for b in log_std_bounds)
        self.apply(orthogonal_init)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ), each float32 (B, A), log σ within ``log_std_bounds``."""
        mu, log_std = self.policy(self.trunk(h)).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1.0)
        return mu, log_std

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        """The deterministic (evaluation) action tanh(μ(h)), float32 (B, A)."""
        return torch.tanh(self(h)[0])

    def sample(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample a = tanh(μ + σ·ε) and its log-likelihood log π(a|h) (B, 1)."""
        mu, log_std = self(h)
        eps = torch.randn_like(mu)
        u = mu + log_std.exp() * eps
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1, keepdim=True)
        return torch.tanh(u), log_prob


class Critic(nn.Module):
    """Twin Q-networks (clipped double Q, Fujimoto et al. 2018) as in DrQ-v2.

    Trunk as in :class:`Actor` (pixels: Linear + LayerNorm + Tanh; features: identity), then two
    MLPs on ``[h, a]`` (with ``layer_norm``, a LayerNorm after each hidden Linear: see :func:`mlp`).

    Input: h float32 (B, repr_dim), action float32 (B, A). Output: (q1, q2), each float32 (B, 1).
    """

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int, hidden_depth: int,
                 use_trunk: bool, layer_norm: bool = False):
        super().__init__()
        self.trunk, in_dim = make_trunk(repr_dim, feature_dim, use_trunk)
        self.q1 = mlp(in_dim + action_dim, hidden_dim, 1, hidden_depth, layer_norm)
        self.q2 = mlp(in_dim + action_dim, hidden_dim, 1, hidden_depth, layer_norm)
        self.apply(orthogonal_init)

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.trunk(h), action], dim=-1)
        return self.q1(x), self.q2(x)


def compile_modules(*modules: nn.Module) -> None:
    """Compile each module's forward pass with ``torch.compile`` in place (:meth:`nn.Module.compile`:
    parameters and ``state_dict`` keys stay the same, unlike wrapping in ``torch.compile(module)``)."""
    for module in modules:
        module.compile()


def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """Polyak averaging: target ← τ·net + (1−τ)·target (one multi-tensor ``lerp_`` over all parameters)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(net.parameters()), tau)


def clipped_noise_sample(mean: torch.Tensor, std: float, clip: float | None, eps: float = 1e-6) -> torch.Tensor:
    """DrQ-v2's truncated-normal action sample: ``mean + clip(std·ε, ±clip)``, clamped to (−1, 1)
    with a straight-through gradient (the clamp passes the gradient of the unclamped sample).

    Input/output: float32 (B, A).
    """
    noise = torch.randn_like(mean) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    x = mean + noise
    return x - x.detach() + x.detach().clamp(-1 + eps, 1 - eps)
