"""DrQ-v2 (Yarats et al., 2021): actor-critic RL from pixels or state features.

Actor: encoder -> trunk -> MLP -> tanh mean; exploration noise N(0, σ(t)²) with σ from a schedule
(``linear(1.0,0.1,N)``), clipped to ±``stddev_clip`` in the updates. Twin critics with a Polyak
target; the encoder is trained through the critic loss only. Critic target (n-step, from the
replay buffer): ``y = R + γ^m · min(Q1', Q2')(s', a')``, ``a' ~ π(s')`` with clipped noise.
ROT builds on it (:class:`polytask.agents.rot.ROTAgent`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from polytask.agents.base import Agent
from polytask.agents.configs.imitation import DrQV2Config
from polytask.agents.qlearning import actor_step, adam, td_target, twin_q_reduce, update_twin_critic
from polytask.nets.encoders import PixelEncoder, RandomShiftsAug
from polytask.nets.mlp import Actor, Critic, clipped_noise_sample, orthogonal_init, soft_update
from polytask.utils import schedule


class DrQV2Agent(Agent):
    """DrQ-v2 actor-critic agent for state features or pixels.

    Args:
        obs_shapes: per observation key its shape (see :class:`polytask.agents.bc.BCAgent`).
        action_dim: A; actions in [-1, 1].
        obs_type: ``"features"`` or ``"pixels"``.
        device: torch device.
        **options: :class:`polytask.agents.configs.imitation.DrQV2Config` (``self.cfg``); the actor has BC's
            sizes, so BC weights load into it.

    Raises:
        ConfigError: for options :class:`DrQV2Config` refuses (an unknown ``twin_q``, ...).
    """

    config_class = DrQV2Config
    can_reset_networks = True

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        self.device = torch.device(device)
        self.obs_key = "pixels" if obs_type == "pixels" else "state"
        self.action_dim = action_dim
        self.twin_q = cfg.twin_q
        shape = tuple(obs_shapes[self.obs_key])
        pixels = self.obs_key == "pixels"
        self.encoder: nn.Module = PixelEncoder(shape).to(self.device) if pixels else nn.Identity()
        repr_dim = self.encoder.repr_dim if pixels else shape[0]
        trunk = pixels or cfg.state_trunk
        self.actor = Actor(repr_dim, action_dim, cfg.feature_dim, cfg.hidden_dim, cfg.hidden_depth,
                           trunk).to(self.device)
        self.critic = Critic(repr_dim, action_dim, cfg.feature_dim, cfg.hidden_dim, cfg.critic_hidden_depth, trunk,
                             cfg.critic_layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.aug: nn.Module = RandomShiftsAug(cfg.pad) if (cfg.augment and pixels) else nn.Identity()
        self._make_optimizers()
        self.train(True)

    def networks_to_compile(self) -> tuple[nn.Module, ...]:
        """Encoder, actor, critic and target critic."""
        return self.encoder, self.actor, self.critic, self.critic_target

    def _make_optimizers(self) -> None:
        self.actor_opt = adam(self.actor.parameters(), self.cfg.lr)
        self.critic_opt = adam(list(self.encoder.parameters()) + list(self.critic.parameters()), self.cfg.lr)

    def reset_networks(self) -> None:
        """Re-initialise actor, critic and target critic and restart their optimisers, keeping the
        encoder (pixels), the frozen BC policy and the reward encoder: the periodic reset of
        Nikishin et al. (2022, "The Primacy Bias in Deep Reinforcement Learning", Sec. 4), which
        relearns from the replay buffer (subclasses keep their frozen networks, e.g. ROT's BC policy
        and reward encoder). The trainer calls it every ``reset_every_steps``."""
        for net in (self.actor, self.critic):
            for m in net.modules():
                if isinstance(m, nn.LayerNorm):
                    m.reset_parameters()
            net.apply(orthogonal_init)  # every Linear, as at construction
        self.critic_target.load_state_dict(self.critic.state_dict())
        self._make_optimizers()

    def train(self, training: bool = True) -> None:
        for m in (self.encoder, self.actor, self.critic):
            m.train(training)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Actions float32 (B, A) for a batch of observations: the mean in eval mode, else the mean
        plus N(0, σ(step)²) noise, or uniform random before ``num_expl_steps``."""
        mu = self.actor(self.encoder(torch.as_tensor(obs[self.obs_key], device=self.device)))
        if not eval_mode:
            if step < self.cfg.num_expl_steps:
                mu = torch.empty_like(mu).uniform_(-1.0, 1.0)
            else:
                mu = clipped_noise_sample(mu, schedule(self.cfg.stddev_schedule, step), None)
        return mu.cpu().numpy().astype(np.float32)

    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, float]:
        """One critic and one actor update.

        Args:
            batch: replay batch from :meth:`polytask.data.replay.ReplayBuffer.sample`.
            step: agent step (for the schedules).

        Returns:
            metrics: critic_loss, q, target_q, actor_loss (0-d tensors), stddev (and those of
            :meth:`actor_loss`).
        """
        self.compile_once()
        obs = self.aug(batch["obs"][self.obs_key].to(self.device))
        next_obs = self.aug(batch["next_obs"][self.obs_key].to(self.device))
        action = batch["action"].to(self.device)
        reward = batch["reward"].to(self.device).unsqueeze(-1)
        discount = batch["discount"].to(self.device).unsqueeze(-1)
        h = self.encoder(obs)
        with torch.no_grad():
            h_next = self.encoder(next_obs)
        std = schedule(self.cfg.stddev_schedule, step)
        metrics = self._update_critic(h, action, reward, discount, h_next, std)
        metrics.update(self._update_actor(obs, h.detach(), std, step))
        soft_update(self.critic, self.critic_target, self.cfg.critic_target_tau)
        return metrics

    def _update_critic(self, h, action, reward, discount, h_next, std) -> dict[str, float]:
        with torch.no_grad():
            next_action = clipped_noise_sample(self.actor(h_next), std, self.cfg.stddev_clip)
        target = td_target(self.critic_target, h_next, next_action, reward, discount, twin_q=self.twin_q)
        return update_twin_critic(self.critic, self.critic_opt, h, action, target)

    def _update_actor(self, obs, h, std, step) -> dict[str, float]:
        action = clipped_noise_sample(self.actor(h), std, self.cfg.stddev_clip)
        q = twin_q_reduce(*self.critic(h, action), self.twin_q)
        loss, metrics = self.actor_loss(obs, h, q, step)
        actor_step(loss, self.actor_opt)
        metrics.update(stddev=std, actor_loss=loss.detach())
        return metrics

    def actor_loss(self, obs: torch.Tensor, h: torch.Tensor, q: torch.Tensor,
                   step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The actor's loss and its extra metrics: DrQ-v2's −mean Q of the policy's (noisy) actions.

        Args:
            obs: the augmented observations (B, ...); h: their features (B, F), detached.
            q: float (B, 1), the twin Qs (reduced by ``twin_q``) of the policy's actions.
            step: agent step.
        """
        return -q.mean(), {}

    def state_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.state_dict(), "actor": self.actor.state_dict(),
                "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("encoder", "actor", "critic", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, k).load_state_dict(state[k])
