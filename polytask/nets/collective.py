"""The collective network of collective learning: one SAC-style Gaussian actor on [task embedding,
state], distilled from many single-task SAC workers' policies (their pre-tanh mean μ* and log σ*).

Its output is exactly what :class:`polytask.nets.mlp.GaussianActor` (SAC's actor) gives: the
unsquashed mean μ and log σ within ``log_std_bounds``; the executed action is tanh(μ + σ·ε).
With ``normalize_state`` the state is standardised per dimension first (statistics fitted on the
training states and kept in the state dict). :meth:`CollectiveActor.gaussian_actor_state_dict`
folds that normalisation into the first layer, giving the weights of a plain SAC actor on the raw
[embedding, state] (``finetune_student`` starts SAC from them); :meth:`CollectiveActor.sac_actor_state_dict`
also folds a fixed embedding in, giving one on the state alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from polytask.errors import ConfigError
from polytask.nets.mlp import GaussianActor

#: what the mean term of :func:`distill_loss` compares (``distill.mean_loss``): the pre-tanh means
#: μ and μ*, or the executed actions tanh μ and tanh μ*
MEAN_LOSSES = ("pre_tanh", "action")


def check_mean_loss(mean_loss: str) -> None:
    """Raise a ConfigError naming :data:`MEAN_LOSSES` if ``mean_loss`` is not one of them."""
    if mean_loss not in MEAN_LOSSES:
        raise ConfigError(f"distill.mean_loss={mean_loss!r}: use one of {', '.join(MEAN_LOSSES)}")


def distill_loss(mean: torch.Tensor, log_std: torch.Tensor, target_mean: torch.Tensor,
                 target_log_std: torch.Tensor, log_std_weight: float = 0.2,
                 mean_loss: str = "pre_tanh") -> torch.Tensor:
    """The mean term + ``log_std_weight`` · MSE(log σ, log σ*), each MSE a mean over batch and action dims.

    The mean term is MSE(μ, μ*) for ``mean_loss="pre_tanh"`` or MSE(tanh μ, tanh μ*) for ``"action"``:
    the latter weighs errors by what they change in the executed action, so a saturated label (a
    scripted ±1 becomes μ* = atanh(±0.999) = ±3.8) costs nothing once tanh μ is close to ±1, and small
    actions count as much as large ones.

    Args:
        mean, log_std: float32 (B, A), the student's pre-tanh mean and log σ.
        target_mean, target_log_std: float32 (B, A), the teacher's (same conventions).
        log_std_weight: weight of the log σ term (0.2).
        mean_loss: one of :data:`MEAN_LOSSES`.

    Returns:
        scalar float32 tensor.
    Raises:
        ConfigError: for an unknown ``mean_loss``.
    """
    check_mean_loss(mean_loss)
    if mean_loss == "action":
        mean, target_mean = torch.tanh(mean), torch.tanh(target_mean)
    return F.mse_loss(mean, target_mean) + log_std_weight * F.mse_loss(log_std, target_log_std)


class CollectiveActor(nn.Module):
    """Gaussian actor on [embedding, state]: a :class:`~polytask.nets.mlp.GaussianActor` (no trunk)
    whose input is the concatenation of the task embedding (E) and the state (D).

    Args:
        obs_dim: D. action_dim: A. embed_dim: E (the transformer's ``cls_dim``, 6).
        hidden_dim, hidden_depth: MLP size (300, 2 hidden layers; ``distill.*`` sets 512, 3).
        log_std_bounds: range of log σ (as SAC's actor, (−5, 2)).
        normalize_state: standardise the state per dimension, (s − ``state_mean``) / ``state_std``
            (buffers; identity until :meth:`fit_state_normalization`). False: the raw state, as the
            collectives saved before this option.

    ``hparams`` holds the constructor arguments (``CollectiveActor(**a.hparams)`` rebuilds it).

    Raises:
        ConfigError: for sizes below 1 or ``hidden_depth`` below 1.
    """

    distill_loss = staticmethod(distill_loss)

    def __init__(self, obs_dim: int, action_dim: int, embed_dim: int = 6, hidden_dim: int = 300,
                 hidden_depth: int = 2, log_std_bounds: tuple[float, float] = (-5.0, 2.0),
                 normalize_state: bool = False):
        super().__init__()
        if min(obs_dim, action_dim, embed_dim, hidden_dim, hidden_depth) < 1:
            raise ConfigError("CollectiveActor: obs_dim, action_dim, embed_dim, hidden_dim and hidden_depth must be "
                              f">= 1, got {obs_dim}, {action_dim}, {embed_dim}, {hidden_dim}, {hidden_depth}")
        self.hparams = {"obs_dim": obs_dim, "action_dim": action_dim, "embed_dim": embed_dim, "hidden_dim": hidden_dim,
                        "hidden_depth": hidden_depth, "log_std_bounds": tuple(log_std_bounds),
                        "normalize_state": bool(normalize_state)}
        self.obs_dim, self.action_dim, self.embed_dim = obs_dim, action_dim, embed_dim
        self.hidden_dim, self.hidden_depth = hidden_dim, hidden_depth
        self.log_std_bounds = (float(log_std_bounds[0]), float(log_std_bounds[1]))
        self.actor = GaussianActor(embed_dim + obs_dim, action_dim, hidden_dim, hidden_dim, hidden_depth, False,
                                   self.log_std_bounds)
        self.normalize_state = bool(normalize_state)
        if self.normalize_state:
            self.register_buffer("state_mean", torch.zeros(obs_dim))
            self.register_buffer("state_std", torch.ones(obs_dim))

    @torch.no_grad()
    def fit_state_normalization(self, states: torch.Tensor, min_std: float = 1e-6) -> None:
        """Set ``state_mean`` and ``state_std`` to the per-dimension mean and standard deviation of
        ``states`` float32 (N, D); dimensions that vary by less than ``min_std`` keep std 1.

        Raises:
            ConfigError: if the actor was built without ``normalize_state``, or for states of the wrong width.
        """
        if not self.normalize_state:
            raise ConfigError("CollectiveActor.fit_state_normalization: this actor was built with "
                              "normalize_state=False")
        states = torch.as_tensor(states, dtype=torch.float32).to(self.state_mean.device)
        if states.ndim != 2 or states.shape[1] != self.obs_dim or len(states) == 0:
            raise ConfigError(f"CollectiveActor.fit_state_normalization: got states {tuple(states.shape)}, "
                              f"expected (N >= 1, {self.obs_dim})")
        std = states.std(0, unbiased=False)
        self.state_mean.copy_(states.mean(0))
        self.state_std.copy_(torch.where(std > min_std, std, torch.ones_like(std)))

    def _input(self, embedding: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        if embedding.shape[-1] != self.embed_dim or obs.shape[-1] != self.obs_dim or len(embedding) != len(obs):
            raise ConfigError(f"CollectiveActor: got embedding {tuple(embedding.shape)} and obs {tuple(obs.shape)}, "
                              f"expected (B, {self.embed_dim}) and (B, {self.obs_dim})")
        if self.normalize_state:
            obs = (obs - self.state_mean) / self.state_std
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
    def gaussian_actor_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict of a ``GaussianActor(embed_dim + obs_dim, action_dim, hidden_dim, hidden_dim,
        hidden_depth, False, log_std_bounds)`` on the raw [embedding, state] that computes exactly
        ``self(embedding, obs)``: the state normalisation is folded into the first layer
        (W_s·(s − m)/σ + b = (W_s/σ)·s + (b − W_s·m/σ)); without it, the inner actor's own weights."""
        state = {k: v.detach().clone() for k, v in self.actor.state_dict().items()}
        if self.normalize_state:
            w = state["policy.0.weight"]
            w_state = w[:, self.embed_dim:] / self.state_std
            state["policy.0.bias"] = state["policy.0.bias"] - w_state @ self.state_mean
            state["policy.0.weight"] = torch.cat([w[:, :self.embed_dim], w_state], dim=1)
        return state

    @torch.no_grad()
    def sac_actor_state_dict(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """State dict of a ``GaussianActor(obs_dim, action_dim, hidden_dim, hidden_dim, hidden_depth,
        False, log_std_bounds)`` on the raw state alone that computes exactly ``self(embedding, obs)``
        for this fixed embedding: the first layer's embedding columns of :meth:`gaussian_actor_state_dict`
        are folded into its bias (W·[e, s] + b = W_s·s + (W_e·e + b)).

        Args:
            embedding: float32 (E,), e.g. the mean embedding of the new task's windows.
        Raises:
            ConfigError: for an embedding of the wrong size.
        """
        embedding = torch.as_tensor(embedding, dtype=torch.float32).reshape(-1)
        if embedding.numel() != self.embed_dim:
            raise ConfigError(f"sac_actor_state_dict needs an embedding of {self.embed_dim} values, "
                              f"got {embedding.numel()}")
        state = self.gaussian_actor_state_dict()
        w = state["policy.0.weight"]
        state["policy.0.bias"] = state["policy.0.bias"] + w[:, :self.embed_dim] @ embedding.to(w.device)
        state["policy.0.weight"] = w[:, self.embed_dim:].contiguous()
        return state
