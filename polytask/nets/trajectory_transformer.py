"""The trajectory transformer of collective learning: it recognises the task from a short window of
(state, action, reward) steps, trained self-supervised with BERT-style masked-token reconstruction
plus a contrastive (InfoNCE) term between two masked views of the same window.

Token layout for a window of W states (W = 20 in the paper's setup), L = 3W − 1 tokens::

    [s_0, a_0, r_0, s_1, a_1, r_1, s_2, …, a_{W−2}, r_{W−2}, s_{W−1}, CLS]

Each modality has its own Linear + LayerNorm embedding; a step embedding shared by all modalities
is added (s_t, a_t and r_t carry step t; CLS has none); the encoder is a standard transformer
encoder (Vaswani et al. 2017) and the CLS output goes through a linear head to a ``cls_dim`` task
embedding. Masking follows BERT (Devlin et al. 2019, §3.1): a fraction of the tokens is selected,
of which 80% are zeroed, 10% replaced by a random token of the batch and 10% kept; the model
reconstructs the selected tokens' inputs. The contrastive term is InfoNCE (van den Oord et al. 2018)
on cosine similarities of the two views' CLS heads, with windows of the same task left out of the
negatives (they are not negatives for task recognition).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from polytask.errors import ConfigError

OBS, ACTION, REWARD, CLS = 0, 1, 2, 3


def token_layout(window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(modality, step) of each of the 3W − 1 tokens of a window of ``window`` states.

    Returns two int64 tensors (3W − 1,): the modality code (``OBS`` 0, ``ACTION`` 1, ``REWARD`` 2,
    ``CLS`` 3) and the step index (s_t, a_t, r_t → t; CLS → −1, it gets no step embedding).
    """
    modality, step = [OBS], [0]
    for t in range(window - 1):
        modality += [ACTION, REWARD, OBS]
        step += [t, t, t + 1]
    return torch.tensor(modality + [CLS]), torch.tensor(step + [-1])


def mask_tokens(tokens: torch.Tensor, mask_prob: float = 0.2,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style corruption of embedded tokens.

    Each token is selected independently with probability ``mask_prob``; a selected token is zeroed
    with probability 0.8, replaced by a token drawn uniformly from the whole batch with probability
    0.1, and kept unchanged with probability 0.1.

    Args:
        tokens: float32 (B, L, d), the tokens to corrupt (only maskable tokens: no CLS).
        mask_prob: selection probability in [0, 1].
        generator: optional torch generator (same device as ``tokens``) for repeatable masks.

    Returns:
        (corrupted tokens float32 (B, L, d), selected bool (B, L)); the loss is taken on the
        selected tokens, whatever happened to them.

    Raises:
        ConfigError: if ``mask_prob`` is outside [0, 1].
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ConfigError(f"mask_prob must be in [0, 1], got {mask_prob}")
    b, n, d = tokens.shape
    u = torch.rand(b, n, generator=generator, device=tokens.device)
    mode = torch.rand(b, n, generator=generator, device=tokens.device)
    selected = u < mask_prob
    zeroed = selected & (mode < 0.8)
    replaced = selected & (mode >= 0.8) & (mode < 0.9)
    flat = tokens.reshape(b * n, d)
    random_idx = torch.randint(0, b * n, (b, n), generator=generator, device=tokens.device)
    out = torch.where(replaced.unsqueeze(-1), flat[random_idx], tokens)
    out = out.masked_fill(zeroed.unsqueeze(-1), 0.0)
    return out, selected


def info_nce(z1: torch.Tensor, z2: torch.Tensor, task_ids: torch.Tensor, temperature: float = 0.15) -> torch.Tensor:
    """Symmetric InfoNCE between two views, with same-task windows excluded from the negatives.

    With cosine similarities S_ij = ⟨ẑ1_i, ẑ2_j⟩ / τ (ẑ = z/‖z‖), the loss for anchor i of view 1 is
    −log(exp S_ii / Σ_{j ∈ N(i)} exp S_ij) with N(i) = {i} ∪ {j : task_j ≠ task_i}; view 2's anchors
    are scored the same way against view 1 (Sᵀ), and the result is the mean over the 2B anchors.
    An anchor whose batch holds only its own task gets loss 0 (its positive is the only candidate).

    Args:
        z1, z2: float32 (B, E), the two views' CLS heads (row i of both from the same window).
        task_ids: int64 (B,).
        temperature: τ > 0.

    Returns:
        scalar float32 tensor.
    Raises:
        ConfigError: for a temperature that is not positive.
    """
    if temperature <= 0:
        raise ConfigError(f"the InfoNCE temperature must be positive, got {temperature}")
    sim = F.normalize(z1, dim=-1) @ F.normalize(z2, dim=-1).T / temperature
    same_task = task_ids[:, None] == task_ids[None, :]
    eye = torch.eye(len(task_ids), dtype=torch.bool, device=sim.device)
    excluded = same_task & ~eye
    target = torch.arange(len(task_ids), device=sim.device)
    loss1 = F.cross_entropy(sim.masked_fill(excluded, float("-inf")), target)
    loss2 = F.cross_entropy(sim.T.masked_fill(excluded, float("-inf")), target)
    return 0.5 * (loss1 + loss2)


def _embedding(in_dim: int, d_model: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, d_model), nn.LayerNorm(d_model))


class TrajectoryTransformer(nn.Module):
    """Task encoder over windows of (state, action, reward) steps (see the module docstring).

    Args:
        obs_dim: D. action_dim: A. window: W, states per window (W − 1 actions and rewards).
        d_model, n_heads, n_layers, ff_dim, dropout: encoder sizes (32, 8, 3, 128, 0.1).
        cls_dim: E, size of the task embedding (6).
        mask_prob: BERT selection probability (0.2). nce_weight: weight of InfoNCE (0.25).
        temperature: InfoNCE temperature τ (0.15).

    ``hparams`` holds the constructor arguments (``TrajectoryTransformer(**m.hparams)`` rebuilds the
    architecture for a saved state dict). Inputs are normalised inside with the buffers
    ``obs_mean/obs_std`` and ``rew_mean/rew_std`` (identity until :meth:`fit_normalization` sets
    them from data; they are saved in the state dict).

    Raises:
        ConfigError: for a window below 2, sizes below 1, or ``d_model`` not divisible by ``n_heads``.
    """

    def __init__(self, obs_dim: int, action_dim: int, window: int = 20, d_model: int = 32, n_heads: int = 8,
                 n_layers: int = 3, ff_dim: int = 128, dropout: float = 0.1, cls_dim: int = 6,
                 mask_prob: float = 0.2, nce_weight: float = 0.25, temperature: float = 0.15):
        super().__init__()
        if window < 2:
            raise ConfigError(f"the transformer window must hold at least 2 states, got {window}")
        if min(obs_dim, action_dim, d_model, n_heads, n_layers, ff_dim, cls_dim) < 1:
            raise ConfigError("obs_dim, action_dim, d_model, n_heads, n_layers, ff_dim and cls_dim must be >= 1")
        if d_model % n_heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if not 0.0 <= mask_prob <= 1.0:
            raise ConfigError(f"mask_prob must be in [0, 1], got {mask_prob}")
        if temperature <= 0:
            raise ConfigError(f"the InfoNCE temperature must be positive, got {temperature}")
        self.hparams = {"obs_dim": obs_dim, "action_dim": action_dim, "window": window, "d_model": d_model,
                        "n_heads": n_heads, "n_layers": n_layers, "ff_dim": ff_dim, "dropout": dropout,
                        "cls_dim": cls_dim, "mask_prob": mask_prob, "nce_weight": nce_weight,
                        "temperature": temperature}
        self.obs_dim, self.action_dim, self.window, self.cls_dim = obs_dim, action_dim, window, cls_dim
        self.mask_prob, self.nce_weight, self.temperature = mask_prob, nce_weight, temperature
        self.obs_embed = _embedding(obs_dim, d_model)
        self.action_embed = _embedding(action_dim, d_model)
        self.reward_embed = _embedding(1, d_model)
        self.step_embed = nn.Embedding(window, d_model)
        self.cls_token = nn.Parameter(torch.randn(d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_dim, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.obs_head = nn.Linear(d_model, obs_dim)
        self.action_head = nn.Linear(d_model, action_dim)
        self.reward_head = nn.Linear(d_model, 1)
        self.cls_head = nn.Linear(d_model, cls_dim)
        modality, step = token_layout(window)
        self.register_buffer("modality", modality, persistent=False)
        self.register_buffer("steps", step[:-1], persistent=False)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("rew_mean", torch.zeros(()))
        self.register_buffer("rew_std", torch.ones(()))
        self.register_buffer("normalization_fitted", torch.tensor(False))

    def fit_normalization(self, obs: torch.Tensor | np.ndarray, rewards: torch.Tensor | np.ndarray) -> None:
        """Set the input normalisation from data: obs (..., D) and rewards (...) of any leading shape;
        dimensions with (near-)zero spread keep std 1."""
        obs = torch.as_tensor(obs, dtype=torch.float32).detach().cpu().reshape(-1, self.obs_dim)
        rewards = torch.as_tensor(rewards, dtype=torch.float32).detach().cpu().reshape(-1)
        std = obs.std(0, unbiased=False)
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        r_std = rewards.std(unbiased=False)
        self.rew_mean.copy_(rewards.mean())
        self.rew_std.copy_(r_std if r_std > 1e-6 else torch.ones(()))
        self.normalization_fitted.fill_(True)

    def _check(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> None:
        b, w = obs.shape[0], self.window
        want = {"obs": (b, w, self.obs_dim), "actions": (b, w - 1, self.action_dim), "rewards": (b, w - 1)}
        for name, x in zip(want, (obs, actions, rewards)):
            if tuple(x.shape) != want[name]:
                raise ConfigError(f"trajectory transformer: {name} has shape {tuple(x.shape)}, expected "
                                  f"{want[name]} (window {w}, obs dim {self.obs_dim}, action dim {self.action_dim})")

    def targets(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The normalised inputs (obs (B, W, D), actions (B, W−1, A), rewards (B, W−1, 1)): what the
        embeddings see and what reconstruction predicts."""
        self._check(obs, actions, rewards)
        obs_n = (obs - self.obs_mean) / self.obs_std
        rew_n = ((rewards - self.rew_mean) / self.rew_std).unsqueeze(-1)
        return obs_n, actions, rew_n

    def modality_tokens(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """Per-modality embeddings interleaved as s_0, a_0, r_0, s_1, …, s_{W−1}, without step
        embeddings or CLS: float32 (B, 3W − 2, d)."""
        return self._modality_tokens(self.targets(obs, actions, rewards))

    def _modality_tokens(self, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        obs_n, act, rew_n = targets
        s = self.obs_embed(obs_n)
        ar = torch.stack([self.action_embed(act), self.reward_embed(rew_n), s[:, 1:]], dim=2)
        return torch.cat([s[:, :1], ar.flatten(1, 2)], dim=1)

    def _sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """Add the step embeddings to (B, 3W − 2, d) modality tokens and append CLS: (B, 3W − 1, d)."""
        x = tokens + self.step_embed(self.steps)
        return torch.cat([x, self.cls_token.expand(len(x), 1, -1)], dim=1)

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encoder output for (B, 3W − 2, d) modality tokens: (B, 3W − 1, d), CLS last."""
        return self.norm(self.encoder(self._sequence(tokens)))

    def tokens(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """The encoder's input sequence (modality + step embeddings, then CLS): float32 (B, 3W − 1, d)."""
        return self._sequence(self.modality_tokens(obs, actions, rewards))

    def _cls(self, h: torch.Tensor) -> torch.Tensor:
        return self.cls_head(h[:, -1])

    def embed(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """Task embedding of unmasked windows: the CLS head output, L2-normalised (InfoNCE compares
        directions), float32 (B, cls_dim). Call ``.eval()`` first for deterministic embeddings
        (dropout).

        Args:
            obs: float32 (B, W, D). actions: float32 (B, W − 1, A). rewards: float32 (B, W − 1).
        Raises:
            ConfigError: for inputs of the wrong shape.
        """
        return F.normalize(self._cls(self._encode(self.modality_tokens(obs, actions, rewards))), dim=-1)

    def _reconstruction(self, h: torch.Tensor, selected: torch.Tensor, targets: tuple[torch.Tensor, ...]):
        """Mean over selected tokens of the per-token MSE between head predictions and inputs."""
        h = h[:, :-1]
        per_token = torch.zeros(selected.shape, device=h.device)
        obs_n, act, rew_n = targets
        is_obs, is_act = self.modality[:-1] == OBS, self.modality[:-1] == ACTION
        is_rew = self.modality[:-1] == REWARD
        per_token[:, is_obs] = (self.obs_head(h[:, is_obs]) - obs_n).pow(2).mean(-1)
        per_token[:, is_act] = (self.action_head(h[:, is_act]) - act).pow(2).mean(-1)
        per_token[:, is_rew] = (self.reward_head(h[:, is_rew]) - rew_n).pow(2).mean(-1)
        return (per_token * selected).sum() / selected.sum().clamp(min=1)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, task_ids: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Self-supervised loss on a batch of windows.

        Two independently masked views (:func:`mask_tokens`) are encoded; the loss is the mean over
        both views of the masked-token reconstruction MSE (on normalised inputs) plus
        ``nce_weight`` · :func:`info_nce` between the views' CLS heads.

        Args:
            obs: float32 (B, W, D). actions: float32 (B, W − 1, A). rewards: float32 (B, W − 1).
            task_ids: int64 (B,). generator: optional, for repeatable masks.

        Returns:
            (scalar loss tensor, metrics: ``loss``, ``reconstruction``, ``info_nce`` and
            ``nce_accuracy``, the fraction of anchors whose positive is their most similar candidate).
        Raises:
            ConfigError: for inputs of the wrong shape.
        """
        targets = self.targets(obs, actions, rewards)
        tokens = self._modality_tokens(targets)
        recs, cls = [], []
        for _ in range(2):
            masked, selected = mask_tokens(tokens, self.mask_prob, generator)
            h = self._encode(masked)
            recs.append(self._reconstruction(h, selected, targets))
            cls.append(self._cls(h))
        rec = 0.5 * (recs[0] + recs[1])
        nce = info_nce(cls[0], cls[1], task_ids, self.temperature)
        loss = rec + self.nce_weight * nce
        with torch.no_grad():
            sim = F.normalize(cls[0], dim=-1) @ F.normalize(cls[1], dim=-1).T
            same = (task_ids[:, None] == task_ids[None, :]) & ~torch.eye(len(task_ids), dtype=torch.bool,
                                                                         device=sim.device)
            acc = (sim.masked_fill(same, float("-inf")).argmax(1) == torch.arange(len(sim), device=sim.device))
        return loss, {"loss": loss.item(), "reconstruction": rec.item(), "info_nce": nce.item(),
                      "nce_accuracy": acc.float().mean().item()}
