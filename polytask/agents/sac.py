"""Soft Actor-Critic with automatic entropy tuning (Haarnoja et al. 2018, "Soft Actor-Critic
Algorithms and Applications", Algorithm 1), on state features.

- Actor: tanh-squashed Gaussian π(a|s) (:class:`polytask.nets.mlp.GaussianActor`), loss
  ``E[α·log π(a|s) − min(Q1, Q2)(s, a)]``, a ~ π reparameterised (Eq. 7 and 11).
- Critics: twin Q with Polyak targets (τ 0.005), target
  ``y = R + γ^m·(min(Q1', Q2')(s', a') − α·log π(a'|s'))``, a' ~ π(·|s') (Eq. 3 and 5), R and γ^m
  the replay buffer's n-step sums (1-step by default, ``nstep`` in the config).
- Temperature: ``J(α) = E[−α·(log π(a|s) + H̄)]`` with target entropy H̄ = −|A| (Eq. 18), optimised
  through log α.
- Exploration: a ~ π(·|s) while training, uniform random actions for the first ``num_expl_steps``;
  evaluation acts with tanh(μ(s)).

Subclasses (the residual agent) change what is executed from the squashed policy output through
:meth:`SACAgent.execute`; the critic always scores the executed action.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from polytask.agents.base import Agent
from polytask.agents.configs.sac import SACConfig
from polytask.agents.qlearning import actor_step, adam, td_target, update_twin_critic
from polytask.errors import require_features
from polytask.nets.mlp import Critic, GaussianActor, soft_update


class SACAgent(Agent):
    """SAC on the ``state`` observation (features only).

    Args:
        obs_shapes: per observation key its shape; ``obs_shapes["state"]`` is (D,).
        action_dim: A; actions in [-1, 1].
        obs_type: must be ``"features"``.
        device: torch device.
        **options: :class:`polytask.agents.configs.sac.SACConfig` (``self.cfg``).

    Raises:
        ConfigError: for ``obs_type`` other than ``features``, or options :class:`SACConfig` refuses.
    """

    config_class = SACConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        require_features(type(self).__name__.removesuffix("Agent").lower(), obs_type, " (for pixels use agent=drqv2)")
        self.device = torch.device(device)
        self.obs_key = "state"
        self.action_dim = action_dim
        self.target_entropy = -float(action_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        dim = int(obs_shapes[self.obs_key][0])
        self.actor = GaussianActor(self._actor_input_dim(dim), action_dim, cfg.hidden_dim, cfg.hidden_dim,
                                   cfg.hidden_depth, False, tuple(cfg.log_std_bounds)).to(self.device)
        self.critic = Critic(dim, action_dim, cfg.hidden_dim, cfg.hidden_dim, cfg.hidden_depth, False,
                             cfg.critic_layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=self.device, requires_grad=True)
        self.actor_opt = adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.lr)
        self.alpha_opt = adam([self.log_alpha], cfg.lr)
        self.train(True)

    def networks_to_compile(self) -> tuple[nn.Module, ...]:
        """Actor, critic and target critic (subclasses add the networks their updates run)."""
        return self.actor, self.critic, self.critic_target

    @property
    def alpha(self) -> torch.Tensor:
        """The temperature α = exp(log α), a scalar tensor (with gradient to log α)."""
        return self.log_alpha.exp()

    def train(self, training: bool = True) -> None:
        self.actor.train(training)
        self.critic.train(training)

    # -- acting ---------------------------------------------------------------------------------
    def _actor_input_dim(self, state_dim: int) -> int:
        """Width of the actor's input for a state of ``state_dim`` (SAC: the state itself)."""
        return state_dim

    def _tensor(self, x: Any) -> torch.Tensor:
        """An array or tensor as a tensor on the agent's device (tensors are not copied when already there)."""
        return torch.as_tensor(x if torch.is_tensor(x) else np.asarray(x), device=self.device)

    def _actor_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """The actor's input float32 (B, ·) from a batch of observations (arrays or tensors): the state."""
        return self._tensor(obs[self.obs_key])

    def execute(self, obs: dict[str, Any], squashed: torch.Tensor) -> torch.Tensor:
        """The executed action for the policy's squashed output (B, A) in (−1, 1): SAC executes it
        as is. ``obs`` holds the batch's observations (tensors or arrays, (B, ...))."""
        return squashed

    def _policy_output(self, obs: dict[str, Any], eval_mode: bool, step: int) -> torch.Tensor:
        """The squashed policy output (B, A): tanh(μ) in eval mode, a sample while training, uniform
        in [-1, 1] before ``num_expl_steps``."""
        x = self._actor_input(obs)
        if eval_mode:
            return self.actor.mean(x)
        if step < self.cfg.num_expl_steps:
            return torch.empty(len(x), self.action_dim, device=self.device).uniform_(-1.0, 1.0)
        return self.actor.sample(x)[0]

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Actions float32 (B, A) in [-1, 1] for a batch of observations (``obs["state"]`` (B, D))."""
        return self.execute(obs, self._policy_output(obs, eval_mode, step)).cpu().numpy().astype(np.float32)

    # -- learning -------------------------------------------------------------------------------
    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, torch.Tensor]:
        """One critic, actor and temperature update, then the Polyak target update.

        Args:
            batch: replay batch (:meth:`polytask.data.replay.ReplayBuffer.sample`): ``obs``/``next_obs``
                dicts of float32 (B, ...) tensors, ``action`` float32 (B, A) (the executed action),
                ``reward`` and ``discount`` float32 (B,).
            step: agent step (the actor waits for ``actor_update_after``).

        Returns:
            metrics (0-d tensors): critic_loss, q, target_q, and once the actor learns actor_loss,
            alpha, alpha_loss, entropy (−log π).
        """
        self.compile_once()
        obs = {k: v.to(self.device) for k, v in batch["obs"].items()}
        next_obs = {k: v.to(self.device) for k, v in batch["next_obs"].items()}
        state, next_state = obs[self.obs_key], next_obs[self.obs_key]
        reward = batch["reward"].to(self.device).unsqueeze(-1)
        discount = batch["discount"].to(self.device).unsqueeze(-1)
        with torch.no_grad():
            next_squashed, next_log_prob = self.actor.sample(self._actor_input(next_obs))
            target = td_target(self.critic_target, next_state, self.execute(next_obs, next_squashed), reward,
                               discount, self.alpha * next_log_prob)
        metrics = update_twin_critic(self.critic, self.critic_opt, state, batch["action"].to(self.device), target)
        if step >= self.cfg.actor_update_after:
            metrics.update(self._update_actor_and_alpha(obs, state))
        soft_update(self.critic, self.critic_target, self.cfg.critic_target_tau)
        return metrics

    def _update_actor_and_alpha(self, obs: dict[str, torch.Tensor], state: torch.Tensor) -> dict[str, torch.Tensor]:
        squashed, log_prob = self.actor.sample(self._actor_input(obs))
        q = torch.min(*self.critic(state, self.execute(obs, squashed)))
        alpha = self.alpha.detach()
        actor_loss = (alpha * log_prob - q).mean()
        actor_step(actor_loss, self.actor_opt)
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            return {"actor_loss": actor_loss.detach(), "alpha": self.alpha, "alpha_loss": alpha_loss.detach(),
                    "entropy": -log_prob.mean()}

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, k).load_state_dict(state[k])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
