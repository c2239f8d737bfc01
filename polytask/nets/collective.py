"""The collective network of collective learning: one SAC-style Gaussian actor on [task embedding,
state], distilled from many single-task SAC workers' policies (their pre-tanh mean μ* and log σ*).

Its output is exactly what :class:`polytask.nets.mlp.GaussianActor` (SAC's actor) gives: the
unsquashed mean μ and log σ within ``log_std_bounds``; the executed action is tanh(μ + σ·ε).
:meth:`CollectiveActor.sac_actor_state_dict` folds a fixed embedding into the first layer, giving
the weights of a plain SAC actor on the state alone (``finetune_student`` starts SAC from them).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from polytask.errors import ConfigError
from polytask.nets.mlp import GaussianActor


def distill_loss(mean: torch.Tensor, log_std: torch.Tensor, target_mean: torch.Tensor,
                 target_log_std: torch.Tensor, log_std_weight: float = 0.2) -> torch.Tensor:
    """MSE(μ, μ*) + ``log_std_weight`` · MSE(log σ, log σ*), each mean over batch and action dims.

    Args:
        mean, log_std: float32 (B, A), the student's pre-tanh mean and log σ.
        target_mean, target_log_std: float32 (B, A), the teacher's (same conventions).
        log_std_weight: weight of the log σ term (0.2).

    Returns:
        scalar float32 tensor.
    """
    return F.mse_loss(mean, target_mean) + log_std_weight * F.mse_loss(log_std, target_log_std)


class CollectiveActor(nn.Module):
    """Gaussian actor on [embedding, state]: a :class:`~polytask.nets.mlp.GaussianActor` (no trunk)
    whose input is the concatenation of the task embedding (E) and the state (D).

    Args:
        obs_dim: D. action_dim: A. embed_dim: E (the transformer's ``cls_dim``, 6).
        hidden_dim, hidden_depth: MLP size (300, 2 hidden layers).
        log_std_bounds: range of log σ (as SAC's actor, (−5, 2)).

    ``hparams`` holds the constructor arguments (``CollectiveActor(**a.hparams)`` rebuilds it).

    Raises:
        ConfigError: for sizes below 1 or ``hidden_depth`` below 1.
    """

    distill_loss = staticmethod(distill_loss)

    def __init__(self, obs_dim: int, action_dim: int, embed_dim: int = 6, hidden_dim: int = 300,
                 hidden_depth: int = 2, log_std_bounds: tuple[float, float] = (-5.0, 2.0)):
        super().__init__()
        if min(obs_dim, action_dim, embed_dim, hidden_dim, hidden_depth) < 1:
            raise ConfigError("CollectiveActor: obs_dim, action_dim, embed_dim, hidden_dim and hidden_depth must be "
                              f">= 1, got {obs_dim}, {action_dim}, {embed_dim}, {hidden_dim}, {hidden_depth}")
        self.hparams = {"obs_dim": obs_dim, "action_dim": action_dim, "embed_dim": embed_dim, "hidden_dim": hidden_dim,
                        "hidden_depth": hidden_depth, "log_std_bounds": tuple(log_std_bounds)}
        self.obs_dim, self.action_dim, self.embed_dim = obs_dim, action_dim, embed_dim
        self.hidden_dim, self.hidden_depth = hidden_dim, hidden_depth
        self.log_std_bounds = (float(log_std_bounds[0]), float(log_std_bounds[1]))
        self.actor = GaussianActor(embed_dim + obs_dim, action_dim, hidden_dim, hidden_dim, hidden_depth, False,
                                   self.log_std_bounds)

    def _input(self, embedding: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        if embedding.shape[-1] != self.embed_dim or obs.shape[-1] != self.obs_dim or len(embedding) != len(obs):
            raise ConfigError(f"CollectiveActor: got embedding {tuple(embedding.shape)} and obs {tuple(obs.shape)}, "
                              f"expected (B, {self.embed_dim}) and (B, {self.obs_dim})")
        return torch.cat([embedding, obs], dim=-1)

    def forward(self, embedding: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ pre-tanh, log σ), each float32 (B, A), for embedding float32 (B, E) and obs float32 (B, D).

        Raises:
            ConfigError: for inputs of the wrong shape.
        """
        return self.actor(self._input(embedding, obs))

    def mean_action(self, embedding: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action tanh(μ), float32 (B, A) in (−1, 1)."""
        return torch.tanh(self(embedding, obs)[0])

    def sample(self, embedding: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action tanh(μ + σ·ε) (B, A) and its log-likelihood (B, 1), as SAC's actor."""
        return self.actor.sample(self._input(embedding, obs))

    @torch.no_grad()
    def sac_actor_state_dict(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """State dict of a ``GaussianActor(obs_dim, action_dim, hidden_dim, hidden_dim, hidden_depth,
        False, log_std_bounds)`` on the state alone that computes exactly ``self(embedding, obs)``
        for this fixed embedding: the first layer's embedding columns are folded into its bias
        (W·[e, s] + b = W_s·s + (W_e·e + b)).

        Args:
            embedding: float32 (E,), e.g. the mean embedding of the new task's windows.
        Raises:
            ConfigError: for an embedding of the wrong size.
        """
        embedding = torch.as_tensor(embedding, dtype=torch.float32).reshape(-1)
        if embedding.numel() != self.embed_dim:
            raise ConfigError(f"sac_actor_state_dict needs an embedding of {self.embed_dim} values, "
                              f"got {embedding.numel()}")
        state = {k: v.detach().clone() for k, v in self.actor.state_dict().items()}
        w = state["policy.0.weight"]
        state["policy.0.bias"] = state["policy.0.bias"] + w[:, :self.embed_dim] @ embedding.to(w.device)
        state["policy.0.weight"] = w[:, self.embed_dim:].contiguous()
        return state
