"""Behavior Transformers (BeT, Shafiullah et al. 2022) on state features: a base policy of Policy
Decorator.

Actions are split into a discrete bin and a continuous offset: k-means on the dataset's actions
gives k centers c_1..c_k; a causal GPT over a window of the last W observations predicts,
at every step, logits over the bins and one offset per bin. Loss:

    L = FocalLoss(logits, ⌊a⌋) + λ · ‖a − (c_⌊a⌋ + o_⌊a⌋)‖²,   FocalLoss = −(1 − p_t)^γ log p_t,

with ⌊a⌋ the nearest center of the true action a, γ = 2, and the offset loss taken on the true bin's
offset only. Acting: choose a bin, add its predicted offset to its center, clip to [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polytask.agents.base import LossAgent
from polytask.agents.configs.sequence import BeTConfig
from polytask.agents.sequence import MinMaxNormalizer, PolicyMemory, env_slots
from polytask.errors import require_features
from polytask.nets.gpt import CausalTransformer


def fit_action_bins(actions: np.ndarray, n_bins: int, seed: int = 0) -> np.ndarray:
    """K-means action bins (BeT's action discretisation) with scikit-learn's ``KMeans`` (k-means++, 10 restarts).

    Args:
        actions: float32 (N, A).
        n_bins: k.
        seed: KMeans ``random_state``.

    Returns:
        float32 (k, A) cluster centers.

    Raises:
        ValueError: if there are fewer distinct actions than bins (lower ``agent.n_bins``).
    """
    try:
        from sklearn.cluster import KMeans
    except ImportError as e:
        raise ImportError("agent=bet needs scikit-learn: pip install -e \".[decorator]\"") from e

    actions = np.asarray(actions, np.float32).reshape(len(actions), -1)
    distinct = len(np.unique(actions, axis=0))
    if distinct < n_bins:
        raise ValueError(f"BeT needs at least n_bins={n_bins} distinct actions to fit its bins but the dataset has "
                         f"{distinct}; lower agent.n_bins or use more demos")
    km = KMeans(n_clusters=n_bins, n_init=10, random_state=seed).fit(actions.astype(np.float64))
    return km.cluster_centers_.astype(np.float32)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017, Eq. 4) averaged over all entries: ``−(1 − p_t)^γ · log p_t``.

    Args:
        logits: float32 (..., k); target: int64 (...) class indices.

    Returns:
        scalar tensor.
    """
    logp = F.log_softmax(logits, dim=-1).gather(-1, target[..., None]).squeeze(-1)
    return (-(1.0 - logp.exp()).pow(gamma) * logp).mean()


class BeTModel(nn.Module):
    """The learnable and fitted parts of BeT: the observation normaliser, the action bin centers
    (buffer float32 (k, A), set by :meth:`BeTAgent.fit_dataset`) and the causal transformer.

    Input: raw observation windows float32 (B, W, D). Output: ``(logits (B, W, k), offsets
    (B, W, k, A))``, float32.
    """

    def __init__(self, obs_dim: int, action_dim: int, n_bins: int, window: int, n_layer: int, n_head: int,
                 n_embd: int, dropout: float):
        super().__init__()
        self.n_bins, self.action_dim = n_bins, action_dim
        self.normalizer = MinMaxNormalizer(obs_dim)
        self.register_buffer("centers", torch.zeros(n_bins, action_dim))
        self.gpt = CausalTransformer(obs_dim, n_bins * (1 + action_dim), window, n_layer, n_head, n_embd, dropout)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.gpt(self.normalizer(obs))
        logits, offsets = out.split([self.n_bins, self.n_bins * self.action_dim], dim=-1)
        return logits, offsets.unflatten(-1, (self.n_bins, self.action_dim))

    def bins_of(self, actions: torch.Tensor) -> torch.Tensor:
        """Nearest center of each action: float32 (..., A) → int64 (...)."""
        d = (actions[..., None, :] - self.centers).pow(2).sum(-1)
        return d.argmin(-1)


class BeTAgent(LossAgent):
    """Behavior Transformer trained offline on windows of demo steps.

    Acting is stateful like :class:`polytask.agents.diffusion.DiffusionAgent`: per
    ``obs["env_index"]`` the last ``window`` observations (the first repeated at an episode start,
    as in training), cleared where ``obs["is_first"]``; one action per step from the last position.

    Bin choice: the bin is sampled from the predicted softmax, as the paper does, also in
    evaluation; ``greedy_eval=true`` takes the most likely bin when ``eval_mode`` (deterministic,
    but collapses multimodal behaviour onto one mode).

    Args:
        obs_shapes: shape per observation key; uses ``obs_shapes["state"]`` (D,).
        action_dim: A; actions are in [-1, 1].
        obs_type: must be ``"features"``.
        device: torch device.
        **options: :class:`polytask.agents.configs.sequence.BeTConfig` (``self.cfg``; the paper's kitchen
            transformer and minGPT's AdamW by default; the paper uses 16–64 bins depending on the task).
    """

    config_class = BeTConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        require_features("bet", obs_type)
        self.device = torch.device(device)
        self.obs_dim, self.action_dim, self.window_len = int(obs_shapes["state"][0]), action_dim, cfg.window
        self.n_bins = cfg.n_bins
        self.model = BeTModel(self.obs_dim, action_dim, cfg.n_bins, cfg.window, cfg.n_layer, cfg.n_head, cfg.n_embd,
                              cfg.dropout).to(self.device)
        self.opt = torch.optim.AdamW(self.model.gpt.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     betas=tuple(cfg.betas))
        self.memory = PolicyMemory(cfg.window)

    @property
    def window(self) -> tuple[int, int, int]:
        """Training windows ``(obs_steps, action_steps, action_start)`` for
        :meth:`polytask.data.buffer.DemoBuffer.sample_windows`: observations and the actions taken
        from them, steps t−W+1..t."""
        return self.window_len, self.window_len, 1 - self.window_len

    def fit_dataset(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Fit the observation normaliser on the demo states float32 (N, D) and the k-means action
        bins on the demo actions float32 (N, A)."""
        self.model.normalizer.fit(states)
        self.model.centers.copy_(torch.from_numpy(fit_action_bins(actions, self.n_bins, self.cfg.kmeans_seed)))

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """BeT's loss on windows ``batch["state"]`` float32 (B, W, D), ``batch["action"]`` float32
        (B, W, A), over every position of the window. Returns the scalar loss and its parts."""
        obs = batch["state"].to(self.device, torch.float32)
        actions = batch["action"].to(self.device, torch.float32)
        logits, offsets = self.model(obs)
        bins = self.model.bins_of(actions)  # (B, W)
        target = actions - self.model.centers[bins]  # offset of the true bin
        pred = offsets.gather(2, bins[..., None, None].expand(*bins.shape, 1, self.action_dim)).squeeze(2)
        cls = focal_loss(logits, bins, self.cfg.focal_gamma)
        off = (pred - target).pow(2).mean()
        with torch.no_grad():
            acc = (logits.argmax(-1) == bins).float().mean().item()
        return cls + self.cfg.offset_loss_weight * off, {"focal": cls.item(), "offset_mse": off.item(), "bin_acc": acc}

    def clip_gradients(self) -> None:
        """Clip the transformer's gradient norm at ``grad_clip`` (BeT's setting; 0: no clipping)."""
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.gpt.parameters(), self.cfg.grad_clip)

    @torch.no_grad()
    def predict(self, obs_window: np.ndarray | torch.Tensor, greedy: bool = False) -> torch.Tensor:
        """Actions at the last step of each window.

        Args:
            obs_window: float32 (B, W', D) raw observations, oldest first (W' ≤ W).
            greedy: argmax bin instead of a sample from the softmax.

        Returns:
            float32 (B, A) on the agent's device, ``center[bin] + offset[bin]`` clipped to [-1, 1].
        """
        logits, offsets = self.model(torch.as_tensor(obs_window).to(self.device, torch.float32))
        logits, offsets = logits[:, -1], offsets[:, -1]  # (B, k), (B, k, A)
        bins = logits.argmax(-1) if greedy else torch.distributions.Categorical(logits=logits).sample()
        rows = torch.arange(len(bins), device=self.device)
        return (self.model.centers[bins] + offsets[rows, bins]).clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Actions for a batch of envs (see the class docstring for memory and bin choice).

        Args:
            obs: ``state`` float32 (B, D); optionally ``env_index`` int64 (B,) and ``is_first`` bool (B,).
            eval_mode: with ``greedy_eval``, take the most likely bin.

        Returns:
            float32 (B, A) in [-1, 1].
        """
        state = np.asarray(obs["state"], np.float32)
        idx, first = env_slots(obs, len(state))
        hist = self.memory.observe(state, idx, first)
        return self.predict(hist, greedy=eval_mode and self.cfg.greedy_eval).cpu().numpy()

    def reset(self) -> None:
        """Forget every env's observation history."""
        self.memory.reset()
