"""Behavior cloning (PolyTask/ROT BC).

Policy: encoder (DrQ-v2 conv for pixels, identity for state features) -> actor with tanh mean and a
fixed standard deviation σ. Loss: the negative log-likelihood of the demonstrated action under
N(μ(s), σ²), i.e. ``Σ_a (a - μ)² / (2σ²)`` plus a constant. Pixels get random-shift augmentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from polytask.agents.base import Agent
from polytask.agents.configs.imitation import BCConfig
from polytask.nets.encoders import PixelEncoder, RandomShiftsAug
from polytask.nets.mlp import Actor


class BCAgent(Agent):
    """Behavior cloning agent.

    Args:
        obs_shapes: shape per observation key, e.g. ``{"state": (39,), "pixels": (9, 84, 84)}``.
        action_dim: action size A; actions are in [-1, 1].
        obs_type: ``"pixels"`` (acts on ``obs["pixels"]``) or ``"features"`` (``obs["state"]``).
        device: torch device.
        **options: :class:`polytask.agents.configs.imitation.BCConfig` (``self.cfg``).
    """

    config_class = BCConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        if obs_type not in ("features", "pixels"):
            raise ValueError(f"obs_type must be 'features' or 'pixels', got {obs_type!r}")
        self.device = torch.device(device)
        self.obs_key = "pixels" if obs_type == "pixels" else "state"
        self.stddev = cfg.stddev
        shape = tuple(obs_shapes[self.obs_key])
        if self.obs_key == "pixels":
            self.encoder: nn.Module = PixelEncoder(shape).to(self.device)
            repr_dim = self.encoder.repr_dim
        else:
            self.encoder = nn.Identity()
            repr_dim = shape[0]
        self.actor = Actor(repr_dim, action_dim, cfg.feature_dim, cfg.hidden_dim, cfg.hidden_depth,
                           use_trunk=self.obs_key == "pixels" or cfg.state_trunk).to(self.device)
        self.aug: nn.Module = RandomShiftsAug(cfg.pad) if (cfg.augment and self.obs_key == "pixels") else nn.Identity()
        params = list(self.encoder.parameters()) + list(self.actor.parameters())
        self.opt = torch.optim.Adam(params, lr=cfg.lr)
        self.action_dim = action_dim

    def _mean(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.encoder(obs))

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Actions for a batch of observations.

        Args:
            obs: dict with ``obs[self.obs_key]`` of shape (B, ...) (uint8 pixels or float32 states).
            eval_mode: the mean action if True, else a sample from N(μ, σ²) clipped to [-1, 1].
            step: unused (the online agents' exploration schedules take it).

        Returns:
            float32 (B, A) in [-1, 1].
        """
        x = torch.as_tensor(np.asarray(obs[self.obs_key]), device=self.device)
        mu = self._mean(x)
        if not eval_mode:
            mu = (mu + self.stddev * torch.randn_like(mu)).clamp(-1.0, 1.0)
        return mu.cpu().numpy().astype(np.float32)

    def update(self, batch: dict[str, torch.Tensor], step: int = 0) -> dict[str, float]:
        """One gradient step on a batch (``batch[obs_key]`` (B, ...), ``batch["action"]`` (B, A)).

        Returns:
            ``{"loss": NLL per sample, "mse": mean squared action error}``.
        """
        obs = batch[self.obs_key].to(self.device)
        action = batch["action"].to(self.device)
        mu = self._mean(self.aug(obs))
        # no argument validation: a diverged (NaN) mean gives a NaN loss, which the trainer reports as such
        dist = torch.distributions.Normal(mu, self.stddev, validate_args=False)
        loss = -dist.log_prob(action).sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "mse": (mu - action).detach().pow(2).mean()}

    def train(self, training: bool = True) -> None:
        self.encoder.train(training)
        self.actor.train(training)

    def state_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.state_dict(), "actor": self.actor.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])
        self.opt.load_state_dict(state["opt"])
