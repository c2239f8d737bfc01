"""Skill-space SAC of SPiRL (Pertsch et al. 2020, "Accelerating RL with Learned Skill Priors",
Sec. 3.3) and SkiLD (Pertsch et al. 2021, "Demonstration-Guided RL with Learned Skills", Sec. 4).

The high-level policy π(z | s) picks a skill z every H env steps; the frozen skill decoder of the
skill model acts for those H steps. That part is an env wrapper (:meth:`SkillSACAgent.wrap_env`:
:class:`polytask.suites.skills.SkillWrapper`, rewards summed over the skill), so skill-space SAC is
the project's SAC on the wrapped env, with the online trainer, replay buffer and resume as they are.
A replay transition is (s at the skill's start, z, summed reward, s after the skill); γ applies once
per skill.

Policy: u ~ N(μ(s), σ(s)²), z = bound·tanh(u) (bound 2: skills squashed to ±2; ``squash=scaled``:
z = bound·tanh(u / bound), about u where |u| ≪ bound). The stored and executed action is z / bound ∈
(−1, 1)^Z, which the wrapper scales by ``bound``. The policy network
is a copy of the skill prior's (same sizes, same state normaliser), so training starts from the prior.
KL terms are analytic, between the policy's unsquashed Gaussian N(μ, σ²) and the prior's (and
posterior's) Gaussians (:func:`polytask.nets.skills.gaussian_kl`; the upstream code estimated some
from samples).

- SPiRL (:class:`SkillSACAgent`): actor loss ``E[−min(Q1, Q2)(s, z) + α·KL(π(·|s) ‖ p(·|s))]``; critic
  target ``y = R + γ·(min(Q1', Q2')(s', z') − α·KL(π(·|s') ‖ p(·|s')))``, z' ~ π(·|s'); temperature loss
  ``α·(δ − KL)`` (gradient through log α, the divergence detached), so α grows while the KL is above the
  target divergence δ (SPiRL: kitchen 5, maze 1). ``target_divergence=None`` keeps α fixed.
- SkiLD (:class:`SkiLDAgent`): with the frozen demo discriminator D(s) and skill posterior q(z | s),
  reward ``λ·r + (1 − λ)·(log D(s) − log(1 − D(s)))`` (λ 0.9; ``imitation``: the discriminator term
  alone), regulariser ``(1 − D(s))·α·KL(π ‖ p) + D(s)·α_q·KL(π ‖ q)`` in the actor loss and the
  critic target (there at s'), and each temperature tuned toward its own target divergence with its
  loss weighted as its term is (1 − D for α, D for α_q), as in SkiLD's code. The discriminator reward
  is computed in the update from the stored skill-start states s (no reward wrapper), so changing it
  needs no new data.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from polytask.agents.configs.skills import SkiLDConfig, SpirlConfig
from polytask.agents.frozen import freeze
from polytask.agents.qlearning import actor_step, adam, td_target, update_twin_critic
from polytask.agents.sac import SACAgent
from polytask.agents.sequence import MinMaxNormalizer
from polytask.agents.skills import SkillModel
from polytask.nets.mlp import mlp, soft_update
from polytask.nets.skills import GaussianMLP, gaussian_kl, rsample
from polytask.suites.skills import SkillWrapper


#: the sizes a skill model's spec carries besides its weights (``model``)
def temperature_steps(divs: dict[str, torch.Tensor], weights: dict[str, torch.Tensor],
                      log_temps: dict[str, torch.Tensor], targets: dict[str, float | None],
                      opts: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """One step per KL term on its temperature's loss ``α·w·(δ − KL)`` (the divergence detached; the
    gradient goes through log α), so α grows while the weighted KL is above its target δ; a term whose
    target is None keeps its α.

    Args:
        divs: per term its KL, float32 (B,) (nats); weights: per term its weight (B,).
        log_temps: per term its log α (scalar tensor with gradient); targets: δ per term (nats) or None;
        opts: per term the optimiser of its log α.

    Returns:
        per term ``kl_<term>`` (batch mean), ``alpha_<term>`` and, when tuned, ``alpha_loss_<term>``.
    """
    metrics = {}
    for k, div in divs.items():
        metrics[f"kl_{k}"] = div.detach().mean()
        metrics[f"alpha_{k}"] = log_temps[k].detach().exp()
        if targets[k] is None:
            continue
        loss = (log_temps[k].exp() * weights[k] * (targets[k] - div.detach())).mean()
        opts[k].zero_grad(set_to_none=True)
        loss.backward()
        opts[k].step()
        metrics[f"alpha_loss_{k}"] = loss.detach()
    return metrics


def clip_kl(kl: torch.Tensor, clip: float | None) -> torch.Tensor:
    """``min(KL, clip)`` elementwise (nats; float32 (B,) or (B, K)); ``clip=None`` leaves it. A state whose KL is
    clipped gets no gradient from the term: there the reference (a prior or posterior fitted offline)
    is so narrow that its KL would swamp the loss (a deviation from SPiRL/SkiLD, see the options)."""
    return kl if clip is None else kl.clamp(max=clip)


class SkillSACAgent(SACAgent):
    """SPiRL's skill-space SAC (see the module docstring).

    Built for the suite env's spaces (``action_dim`` is the env's A, the decoder's output); it acts in
    :meth:`wrap_env` of that env, whose actions are skills, float32 (B, Z) in [-1, 1] (×``bound``).

    Args:
        obs_shapes, obs_type, device: as :class:`SACAgent` (features only).
        action_dim: A of the env the skills act in.
        skill_model: the frozen skill model (the run input ``skill_model``:
            :func:`polytask.training.skill_inputs.skill_spec` of an exported ``skill_prior`` file):
            decoder, prior and state normaliser; its sizes.
        **options: :class:`polytask.agents.configs.skills.SpirlConfig` (``self.cfg``): ``target_divergence``
            δ (None: α fixed), ``bound``, ``eval_mean_skill`` and SAC's options (``init_temperature``
            = the initial α, ``num_expl_steps``: uniform random skills before that step);
            ``target_entropy`` and ``log_std_bounds`` are unused (the KL replaces the entropy, the
            prior's log σ bounds hold).

    Raises:
        ValueError: without a skill model, or one that does not fit the spaces.
    """

    config_class = SpirlConfig
    state_init_args = ("skill_model",)

    @classmethod
    def inputs(cls, options) -> tuple[str, ...]:
        """The frozen ``skill_model`` (the ``skill_prior`` run of the suite, made first when missing)."""
        return ("skill_model",)

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", skill_model: dict[str, Any] | None = None, **options):
        if skill_model is None:
            raise ValueError(f"{type(self).__name__} needs a skill model (the weights of agent=skill_prior)")
        self._skill_spec = skill_model
        z_dim = int(skill_model["z_dim"])
        super().__init__(obs_shapes, z_dim, obs_type, device, **options)
        self.env_action_dim, self.horizon = int(action_dim), int(skill_model["horizon"])
        self.bound = float(self.cfg.bound)
        dim = int(obs_shapes[self.obs_key][0])
        skills = SkillModel(dim, self.env_action_dim, z_dim, int(skill_model["hidden_dim"]),
                            int(skill_model["hidden_depth"]))
        try:
            skills.load_state_dict(skill_model["model"])
        except RuntimeError as e:
            raise ValueError(f"the skill model does not fit {dim}-d states and {action_dim}-d actions: {e}") from e
        self.normalizer, self.decoder, self.prior = (freeze(m.to(self.device)) for m in
                                                     (skills.normalizer, skills.decoder, skills.prior))
        self.actor = copy.deepcopy(self.prior).requires_grad_(True)  # π starts as the prior
        self.actor_opt = adam(self.actor.parameters(), self.cfg.lr)
        self.train(True)

    # -- the skill-space env --------------------------------------------------------------------
    def wrap_env(self, env: gym.Env) -> gym.Env:
        """``env`` with skills as actions: :class:`SkillWrapper` running the frozen decoder for H steps,
        its ±bound skill space rescaled to the [-1, 1] this agent acts in."""
        return gym.wrappers.RescaleAction(SkillWrapper(env, self.decode, self.horizon, self.action_dim, self.bound),
                                          np.float32(-1.0), np.float32(1.0))

    @torch.no_grad()
    def decode(self, obs: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
        """The frozen decoder's env action float32 (A,) in [-1, 1] for ``obs["state"]`` (D,) and a skill z (Z,)."""
        state = self._tensor(np.asarray(obs[self.obs_key], np.float32))
        z = self._tensor(np.asarray(z, np.float32))
        return self.decoder(self.normalizer(state), z).clamp(-1.0, 1.0).cpu().numpy()

    # -- acting ---------------------------------------------------------------------------------
    def _actor_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """The normalised state float32 (B, D) (the prior's input)."""
        return self.normalizer(self._tensor(obs[self.obs_key]).float())

    def _policy_output(self, obs: dict[str, Any], eval_mode: bool, step: int) -> torch.Tensor:
        """:meth:`squash` (u), u ~ π(·|s) (uniform in [-1, 1] while training before ``num_expl_steps``);
        squash(μ(s)) in eval mode with ``eval_mean_skill``."""
        x = self._actor_input(obs)
        if not eval_mode and step < self.cfg.num_expl_steps:
            return torch.empty(len(x), self.action_dim, device=self.device).uniform_(-1.0, 1.0)
        mean, log_std = self.actor(x)
        return self.squash(mean if eval_mode and self.cfg.eval_mean_skill else rsample(mean, log_std))

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """The stored action in (−1, 1) for Gaussian samples u float32 (B, Z); the skill is ``bound`` × it.
        ``squash=tanh``: tanh(u) (SPiRL); ``squash=scaled``: tanh(u / bound), so the skill bound·tanh(u / bound)
        is about u where |u| ≪ bound: the policy's Gaussian is then (nearly) the skill distribution its KL
        terms compare with the prior and posterior, and a policy copied from either acts as it does."""
        return torch.tanh(u / self.bound if self.cfg.squash == "scaled" else u)

    # -- the regulariser ------------------------------------------------------------------------
    def divergences(self, x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> dict[str, torch.Tensor]:
        """Analytic KL (nats, float32 (B,)) of the policy's unsquashed Gaussian ``(mean, log_std)``
        (B, Z) at normalised states ``x`` to each reference: ``{"prior": KL(π ‖ p)}``, clipped at
        ``prior_kl_clip`` nats per state."""
        return {"prior": clip_kl(gaussian_kl(mean, log_std, *self.prior(x)), self.cfg.prior_kl_clip)}

    def kl_weights(self, obs: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per divergence its weight float32 (B,) at the batch's states: 1 for SPiRL's prior term."""
        return {"prior": torch.ones(len(x), device=self.device)}

    def temperatures(self) -> dict[str, torch.Tensor]:
        """Per divergence its log temperature (scalar tensor): ``{"prior": log α}``."""
        return {"prior": self.log_alpha}

    def _targets(self) -> dict[str, float | None]:
        return {"prior": self.cfg.target_divergence}

    def _temperature_opts(self) -> dict[str, torch.optim.Optimizer]:
        return {"prior": self.alpha_opt}

    def regulariser(self, obs: dict[str, torch.Tensor], x: torch.Tensor, mean: torch.Tensor,
                    log_std: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(Σ_k α_k·w_k·KL_k, divergences, weights)``: the weighted regulariser float32 (B, 1) with the
        temperatures detached, and per term its KL and weight (B,)."""
        divs, weights = self.divergences(x, mean, log_std), self.kl_weights(obs, x)
        temps = self.temperatures()
        total = sum(temps[k].detach().exp() * weights[k] * divs[k] for k in divs)
        return total.unsqueeze(-1), divs, weights

    def reward(self, obs: dict[str, torch.Tensor], reward: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The reward learnt from, float32 (B,), for a batch's summed skill rewards (B,) at its skill-start
        ``obs``, and metrics about it: SPiRL learns from the env's."""
        return reward, {}

    # -- learning -------------------------------------------------------------------------------
    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, float]:
        """One critic, actor and temperature update on a replay batch of skill transitions (``obs``/
        ``next_obs`` dicts of float32 (B, ...), ``action`` float32 (B, Z) in [-1, 1], ``reward`` (the sum
        over the skill) and ``discount`` (γ per skill, 0 after termination) float32 (B,)), then the Polyak
        target update.

        Returns:
            critic_loss, q, target_q, reward; once the actor learns actor_loss and per term
            ``kl_<term>`` (nats), ``alpha_<term>`` and ``alpha_loss_<term>``.
        """
        self.compile_once()
        obs = {k: v.to(self.device) for k, v in batch["obs"].items()}
        next_obs = {k: v.to(self.device) for k, v in batch["next_obs"].items()}
        x, next_x = self._actor_input(obs), self._actor_input(next_obs)
        reward, metrics = self.reward(obs, batch["reward"].to(self.device))
        discount = batch["discount"].to(self.device).unsqueeze(-1)
        with torch.no_grad():
            next_mean, next_log_std = self.actor(next_x)
            next_action = self.squash(rsample(next_mean, next_log_std))
            next_reg = self.regulariser(next_obs, next_x, next_mean, next_log_std)[0]
            target = td_target(self.critic_target, next_x, next_action, reward.unsqueeze(-1), discount, next_reg)
        metrics.update(update_twin_critic(self.critic, self.critic_opt, x, batch["action"].to(self.device), target))
        if step >= self.cfg.actor_update_after:
            metrics.update(self._update_actor_and_alpha(obs, x))
        soft_update(self.critic, self.critic_target, self.cfg.critic_target_tau)
        return metrics

    def _update_actor_and_alpha(self, obs: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, float]:
        mean, log_std = self.actor(x)
        action = self.squash(rsample(mean, log_std))
        q = torch.min(*self.critic(x, action))
        reg, divs, weights = self.regulariser(obs, x, mean, log_std)
        actor_loss = (reg - q).mean()
        actor_step(actor_loss, self.actor_opt)
        return {"actor_loss": actor_loss.detach(), **temperature_steps(divs, weights, self.temperatures(),
                                                                     self._targets(), self._temperature_opts())}

    def networks_to_compile(self) -> tuple[torch.nn.Module, ...]:
        """SAC's networks and the frozen prior (its KL term runs in every update)."""
        return (*super().networks_to_compile(), self.prior)

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """SAC's parts and the skill model spec (so an exported file rebuilds the agent on its own)."""
        return {**super().state_dict(), "skill_model": self._skill_spec}


class SkiLDAgent(SkillSACAgent):
    """SkiLD's skill-space SAC: :class:`SkillSACAgent` with the demo discriminator's reward and the
    (1 − D)·KL(π ‖ p) + D·KL(π ‖ q) regulariser (see the module docstring).

    Args (besides :class:`SkillSACAgent`'s; the skill model comes from the posterior's file):
        skill_posterior: the run input ``skill_posterior``: :func:`polytask.training.skill_inputs.skill_spec`
            of an exported ``skill_posterior`` file with its ``posterior``.
        demo_discriminator: an exported ``demo_discriminator`` file's ``{"net", "normalizer",
            "hidden_dim", "hidden_depth"}`` (the run input ``demo_discriminator``).
        **options: :class:`polytask.agents.configs.skills.SkiLDConfig` (``self.cfg``). KL(π ‖ q) is clipped
            at ``posterior_kl_clip`` nats per state: the posterior, trained on a few demos, is very
            narrow off them (σ down to e⁻¹⁰), where the KL reaches 1e7 nats and, even weighted by
            D ≈ 0, would swamp the loss; clipped states get no pull toward the posterior (a deviation
            from SkiLD, whose image-based posterior was not that narrow).

    Raises:
        ValueError: for missing inputs, or ones that do not fit the spaces.
    """

    config_class = SkiLDConfig
    state_init_args = ("skill_posterior", "demo_discriminator")

    @classmethod
    def inputs(cls, options) -> tuple[str, ...]:
        """The ``skill_posterior`` (holding the skill model) and the ``demo_discriminator`` of the run's
        suite, task, demo count and seed (made first when missing)."""
        return ("skill_posterior", "demo_discriminator")

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", skill_posterior: dict[str, Any] | None = None,
                 demo_discriminator: dict[str, Any] | None = None, **options):
        if skill_posterior is None or demo_discriminator is None:
            raise ValueError("SkiLD needs the skill posterior and the demo discriminator (agent=skill_posterior, "
                             "agent=demo_discriminator)")
        super().__init__(obs_shapes, action_dim, obs_type, device, skill_model=skill_posterior, **options)
        self._posterior_spec, self._discriminator_spec = skill_posterior, demo_discriminator
        dim = int(obs_shapes[self.obs_key][0])
        self.posterior = GaussianMLP(dim, self.action_dim, int(skill_posterior["hidden_dim"]),
                                     int(skill_posterior["hidden_depth"]))
        self.disc_normalizer = MinMaxNormalizer(dim)
        self.discriminator = mlp(dim, int(demo_discriminator["hidden_dim"]), 1, int(demo_discriminator["hidden_depth"]))
        try:
            self.posterior.load_state_dict(skill_posterior["posterior"])
            self.discriminator.load_state_dict(demo_discriminator["net"])
            self.disc_normalizer.load_state_dict(demo_discriminator["normalizer"])
        except RuntimeError as e:
            raise ValueError(f"the skill posterior or discriminator does not fit {dim}-d states: {e}") from e
        for m in ("posterior", "disc_normalizer", "discriminator"):
            setattr(self, m, freeze(getattr(self, m).to(self.device)))
        if self.cfg.init_from == "posterior":
            self.actor.load_state_dict(self.posterior.state_dict())
        self.env_reward_weight = 0.0 if self.cfg.imitation else float(self.cfg.env_reward_weight)
        self.log_alpha_q = torch.tensor(math.log(self.cfg.init_temperature_q), device=self.device, requires_grad=True)
        self.alpha_q_opt = adam([self.log_alpha_q], self.cfg.lr)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        del state["skill_model"]  # the posterior's spec holds it
        return {**state, "skill_posterior": self._posterior_spec, "demo_discriminator": self._discriminator_spec,
                "log_alpha_q": self.log_alpha_q.detach().clone(), "alpha_q_opt": self.alpha_q_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.alpha_q_opt.load_state_dict(state["alpha_q_opt"])
        with torch.no_grad():
            self.log_alpha_q.copy_(state["log_alpha_q"])

    def networks_to_compile(self) -> tuple[torch.nn.Module, ...]:
        """The skill-space SAC's networks, the posterior and the discriminator."""
        return (*super().networks_to_compile(), self.posterior, self.discriminator)

    def demo_logit(self, state: torch.Tensor) -> torch.Tensor:
        """log D(s) − log(1 − D(s)), the discriminator's logit, float32 (B,) for raw states (B, D)."""
        return self.discriminator(self.disc_normalizer(state.float())).squeeze(-1)

    def reward(self, obs: dict[str, torch.Tensor], reward: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """λ·r + (1 − λ)·(log D(s) − log(1 − D(s))) at the skill-start states s, the logit clamped to
        ±``demo_logit_clip`` when set (as GAIL implementations bound theirs: an overconfident
        discriminator's logit reaches −100 off the demos, swamping env rewards of 1 per subtask)."""
        with torch.no_grad():
            logit = self.demo_logit(obs[self.obs_key])
            if self.cfg.demo_logit_clip is not None:
                logit = logit.clamp(-self.cfg.demo_logit_clip, self.cfg.demo_logit_clip)
        lam = self.env_reward_weight
        return lam * reward + (1.0 - lam) * logit, {"env_reward": reward.mean(),
                                                    "demo_reward": logit.mean()}

    def divergences(self, x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"prior": KL(π ‖ p), "posterior": KL(π ‖ q)}``, analytic, float32 (B,) each (the second
        clipped at ``posterior_kl_clip``)."""
        kl_q = clip_kl(gaussian_kl(mean, log_std, *self.posterior(x)), self.cfg.posterior_kl_clip)
        return {**super().divergences(x, mean, log_std), "posterior": kl_q}

    def kl_weights(self, obs: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"prior": 1 − D(s), "posterior": D(s)}``, float32 (B,)."""
        with torch.no_grad():
            d = torch.sigmoid(self.demo_logit(obs[self.obs_key]))
        return {"prior": 1.0 - d, "posterior": d}

    def temperatures(self) -> dict[str, torch.Tensor]:
        return {"prior": self.log_alpha, "posterior": self.log_alpha_q}

    def _targets(self) -> dict[str, float | None]:
        return {"prior": self.cfg.target_divergence, "posterior": self.cfg.target_divergence_q}

    def _temperature_opts(self) -> dict[str, torch.optim.Optimizer]:
        return {"prior": self.alpha_opt, "posterior": self.alpha_q_opt}

