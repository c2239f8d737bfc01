"""EXTRACT's hybrid skill-space SAC (Zhang et al. 2024, "EXTRACT: Efficient Policy Learning by
Extracting Transferable Robot Skills from Offline Data", §3.3) over a discrete skill k and its
continuous argument z, with the frozen skill model of :mod:`polytask.agents.extract`.

The policy π(k, z | s) = π_d(k | s)·π_z(z | s, k): π_d a categorical (logits MLP), π_z a Gaussian over
u with z = bound·tanh(u), copies of the skill model's priors p(k | s) and p(u | s, k), so training
starts from the priors. The critic has one Q head per skill: for a state s and an argument z it
outputs Q_1..Q_K(s, z) (twin critics, Polyak targets), and Q(s, k, z) is head k. The decoder runs as
an env wrapper (:class:`polytask.suites.skills.HybridSkillWrapper`): a plan of actions until the
predicted progress reaches ``progress_done`` (at most ``max_skill_len`` steps), rewards summed, so the
replay, trainer and resume are the project's SAC ones. The action stored and executed is one vector
[one-hot(k), tanh(u)] in [-1, 1]^(K+Z).

With the analytic KLs KL_d(s) = KL(π_d(·|s) ‖ p(·|s)) and KL_z,k(s) = KL(π_z(·|s, k) ‖ p(·|s, k))
(between the unsquashed Gaussians over u; a shared bijection leaves a KL unchanged), and
z_k ~ π_z(·|s, k) reparameterised for every k, the soft value is

    V(s) = Σ_k π_d(k|s)·[min(Q1, Q2)_k(s, z_k) − α·KL_z,k(s)] − α_d·KL_d(s)

(the expectation over the discrete k is exact, so π_d gets its gradient without a score-function or
Gumbel estimator). Actor loss ``−V(s)`` = ``Σ_k π_d(k|s)[−Q_k + α·KL_z,k + α_d·KL_d]``; critic target
``y = R + γ·V'(s')`` with the target critics; temperatures fixed (EXTRACT's kitchen: α 0.01, α_d 0.1)
or each tuned toward a target divergence as SPiRL's (:func:`polytask.agents.skill_rl.temperature_steps`,
α on E_k~π_d[KL_z,k]).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polytask.agents.configs.extract import ExtractSACConfig
from polytask.agents.extract import ExtractModel
from polytask.agents.frozen import freeze
from polytask.agents.qlearning import actor_step, adam, update_twin_critic
from polytask.agents.sac import SACAgent
from polytask.agents.skill_rl import clip_kl, temperature_steps
from polytask.nets.mlp import mlp, orthogonal_init, soft_update
from polytask.nets.skills import gaussian_kl, gaussian_nll, rsample
from polytask.suites.skills import HybridSkillWrapper


#: the sizes an EXTRACT skill model's spec carries besides its weights (``model``)
class SkillCritic(nn.Module):
    """Twin critics with one Q head per skill on [s, tanh(u)].

    ``forward(h, action)``: h float32 (B, D), action float32 (B, K + Z) = [one-hot(k), tanh(u)] ->
    (Q1, Q2)(s, k, z), each float32 (B, 1) (head k; the one-hot selects it), so the project's
    :func:`polytask.agents.qlearning.update_twin_critic` trains it. ``heads(h, squashed)``: float32
    (..., D) and (..., Z) -> both critics' heads, each float32 (..., K).
    """

    def __init__(self, state_dim: int, num_skills: int, z_dim: int, hidden_dim: int, hidden_depth: int):
        super().__init__()
        self.num_skills = num_skills
        self.q1 = mlp(state_dim + z_dim, hidden_dim, num_skills, hidden_depth)
        self.q2 = mlp(state_dim + z_dim, hidden_dim, num_skills, hidden_depth)
        self.apply(orthogonal_init)

    def heads(self, h: torch.Tensor, squashed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([h, squashed], dim=-1)
        return self.q1(x), self.q2(x)

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        onehot, squashed = action[:, :self.num_skills], action[:, self.num_skills:]
        q1, q2 = self.heads(h, squashed)
        return (q1 * onehot).sum(-1, keepdim=True), (q2 * onehot).sum(-1, keepdim=True)


class ExtractSACAgent(SACAgent):
    """EXTRACT's hybrid skill-space SAC (see the module docstring).

    Built for the suite env's spaces (``action_dim`` is the env's A, the decoder's output); it acts in
    :meth:`wrap_env` of that env, whose actions are float32 (B, K + Z) = [one-hot(k), z / bound].

    Args:
        obs_shapes, obs_type, device: as :class:`SACAgent` (features only).
        action_dim: A of the env the skills act in.
        extract_model: the frozen skill model (the run input ``extract_model``:
            :func:`polytask.training.skill_inputs.extract_spec` of an exported ``extract_skill`` file):
            normaliser, decoder, priors and their sizes.
        **options: :class:`polytask.agents.configs.extract.ExtractSACConfig` (``self.cfg``): SAC's and
            the temperatures α, α_d, their target divergences, the plan's end (``progress_done``,
            ``max_skill_len``), ``argument_kl_clip`` and ``eval_mean_skill``. KL(π_z ‖ p_z) is clipped
            at ``argument_kl_clip`` nats per state and skill: the argument prior, fitted on a few hundred
            segments, is very narrow at some states (log σ at its floor, −10), where a small move of π_z
            gives KLs of 1e9 nats that swamp the critic (an unclipped kitchen run diverged after ~2,000
            skills); clipped terms give no pull toward the prior (as SkiLD's ``posterior_kl_clip``; a
            deviation from EXTRACT).

    Raises:
        ValueError: without a skill model, or one that does not fit the env's state and action sizes.
    """

    state_init_args = ("extract_model",)

    @classmethod
    def inputs(cls, options) -> tuple[str, ...]:
        """The frozen ``extract_model`` (the ``extract_skill`` run of the suite, made first when missing)."""
        return ("extract_model",)

    config_class = ExtractSACConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", extract_model: dict[str, Any] | None = None, **options: Any):
        if extract_model is None:
            raise ValueError("ExtractSACAgent needs the EXTRACT skill model (the weights of agent=extract_skill)")
        self._model_spec = extract_model
        self.num_skills, self.z_dim = int(extract_model["num_skills"]), int(extract_model["z_dim"])
        self.bound = float(extract_model["z_bound"])
        super().__init__(obs_shapes, self.num_skills + self.z_dim, obs_type, device, **options)
        cfg = self.cfg
        self.env_action_dim = int(action_dim)
        dim = int(obs_shapes[self.obs_key][0])
        model = ExtractModel(dim, self.env_action_dim, self.num_skills, self.z_dim, int(extract_model["hidden_dim"]),
                             int(extract_model["hidden_depth"]))
        try:
            model.load_state_dict(extract_model["model"])
        except RuntimeError as e:
            raise ValueError(f"the EXTRACT skill model does not fit {dim}-d states and {action_dim}-d actions: {e}") \
                from e
        self.normalizer, self.decoder, self.skill_prior, self.argument_prior = (
            freeze(m.to(self.device)) for m in (model.normalizer, model.decoder, model.skill_prior,
                                                 model.argument_prior))
        # π_d and π_z start as the priors
        self.actor = nn.ModuleDict({"skill": copy.deepcopy(self.skill_prior),
                                    "argument": copy.deepcopy(self.argument_prior)}).requires_grad_(True)
        self.critic = SkillCritic(dim, self.num_skills, self.z_dim, cfg.hidden_dim, cfg.hidden_depth).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.lr)
        self.log_alpha_d = torch.tensor(math.log(cfg.init_temperature_d), device=self.device, requires_grad=True)
        self.alpha_d_opt = adam([self.log_alpha_d], cfg.lr)
        self.targets = {"argument": cfg.target_divergence, "skill": cfg.target_divergence_d}
        self.train(True)

    # -- the skill-space env --------------------------------------------------------------------
    def wrap_env(self, env: gym.Env) -> gym.Env:
        """``env`` with (k, z) as actions: :class:`HybridSkillWrapper` running the frozen decoder's plans."""
        return HybridSkillWrapper(env, self.decode, self.num_skills, self.z_dim, self.bound, self.cfg.progress_done,
                                  self.cfg.max_skill_len)

    @torch.no_grad()
    def decode(self, skill: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frozen decoder's plans for skills int64 (B,) and arguments float32 (B, Z) in ±bound: actions
        float32 (B, L, A) clipped to [-1, 1] and progress float32 (B, L), L = ``max_skill_len``."""
        onehot = F.one_hot(self._tensor(np.asarray(skill)).long(), self.num_skills).float()
        action, progress = self.decoder(self._tensor(np.asarray(z, np.float32)), onehot, self.cfg.max_skill_len)
        return action.clamp(-1.0, 1.0).cpu().numpy(), progress.cpu().numpy()

    # -- the policy -----------------------------------------------------------------------------
    def _actor_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """The normalised state float32 (B, D) (the priors' input)."""
        return self.normalizer(self._tensor(obs[self.obs_key]).float())

    def _per_skill(self, x: torch.Tensor) -> torch.Tensor:
        """[s, one-hot(k)] for every k: float32 (B, K, D + K)."""
        eye = torch.eye(self.num_skills, device=x.device).expand(len(x), -1, -1)
        return torch.cat([x[:, None].expand(-1, self.num_skills, -1), eye], dim=-1)

    def distributions(self, x: torch.Tensor, policy: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """π's (``policy``) or the priors' parameters at normalised states x (B, D): skill log-probabilities
        float32 (B, K) and, for every k, the mean and log σ of u float32 (B, K, Z)."""
        skill_net, argument_net = ((self.actor["skill"], self.actor["argument"]) if policy else
                                   (self.skill_prior, self.argument_prior))
        return (torch.log_softmax(skill_net(x), -1), *argument_net(self._per_skill(x)))

    def log_prob(self, x: torch.Tensor, skill: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log π_d(k | s), log π_z(z | s, k))``, float32 (B,) each, for skills int64 (B,) and unsquashed
        arguments u float32 (B, Z) at normalised states x (B, D); z = bound·tanh(u), so log π_z includes
        −Σ log(bound·(1 − tanh²u)). Their sum is the joint log π(k, z | s)."""
        log_pk, mean, log_std = self.distributions(x)
        rows = torch.arange(len(x), device=x.device)
        log_pu = -gaussian_nll(u, mean[rows, skill], log_std[rows, skill])
        log_det = (math.log(self.bound) + 2 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return log_pk[rows, skill], log_pu - log_det

    def sample(self, x: torch.Tensor, mean: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, u) ~ π(·|s) at normalised states x (B, D): skills int64 (B,) and unsquashed arguments
        float32 (B, Z) (``mean``: the most likely k and the mean u)."""
        log_pk, mu, log_std = self.distributions(x)
        skill = log_pk.argmax(-1) if mean else torch.distributions.Categorical(logits=log_pk).sample()
        rows = torch.arange(len(x), device=x.device)
        u = mu[rows, skill] if mean else rsample(mu[rows, skill], log_std[rows, skill])
        return skill, u

    def encode(self, skill: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The action vector float32 (B, K + Z) = [one-hot(k), tanh(u)]."""
        return torch.cat([F.one_hot(skill, self.num_skills).float(), torch.tanh(u)], dim=-1)

    def _policy_output(self, obs: dict[str, Any], eval_mode: bool, step: int) -> torch.Tensor:
        """[one-hot(k), tanh(u)] with (k, u) ~ π(·|s) (``eval_mean_skill`` in eval mode: the most likely k
        and mean u); uniform k and tanh(u) in [-1, 1] while training before ``num_expl_steps``."""
        x = self._actor_input(obs)
        if not eval_mode and step < self.cfg.num_expl_steps:
            skill = torch.randint(self.num_skills, (len(x),), device=self.device)
            return torch.cat([F.one_hot(skill, self.num_skills).float(),
                              torch.empty(len(x), self.z_dim, device=self.device).uniform_(-1.0, 1.0)], -1)
        return self.encode(*self.sample(x, mean=eval_mode and self.cfg.eval_mean_skill))

    # -- the soft value -------------------------------------------------------------------------
    def divergences(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """At normalised states x (B, D): π_d's probabilities (B, K), KL_d (B,) = KL(π_d ‖ p_k), KL_z
        (B, K) = KL(π_z(·|s, k) ‖ p_z(·|s, k)) per k (nats, analytic), and z_k's squashed tanh(u_k) ~
        π_z(·|s, k) (B, K, Z), reparameterised. KL_z is clipped at ``argument_kl_clip``."""
        log_pk, mean, log_std = self.distributions(x)
        prior_log_pk, prior_mean, prior_log_std = self.distributions(x, policy=False)
        probs = log_pk.exp()
        kl_d = (probs * (log_pk - prior_log_pk)).sum(-1)
        kl_z = clip_kl(gaussian_kl(mean, log_std, prior_mean, prior_log_std), self.cfg.argument_kl_clip)
        return probs, kl_d, kl_z, torch.tanh(rsample(mean, log_std))

    def soft_value(self, critic: SkillCritic, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """V(s) float32 (B,) of the module docstring with ``critic``'s heads, and its parts: ``probs``
        (B, K), ``kl_d`` (B,), ``kl_z`` (B, K), ``q`` (B, K) = min(Q1, Q2)_k(s, z_k)."""
        probs, kl_d, kl_z, squashed = self.divergences(x)
        b, k = probs.shape
        q1, q2 = critic.heads(x[:, None].expand(-1, k, -1).reshape(b * k, -1), squashed.reshape(b * k, -1))
        q = torch.min(q1, q2).view(b, k, k).diagonal(dim1=1, dim2=2)  # head k at z_k
        alpha, alpha_d = self.log_alpha.detach().exp(), self.log_alpha_d.detach().exp()
        value = (probs * (q - alpha * kl_z)).sum(-1) - alpha_d * kl_d
        return value, {"probs": probs, "kl_d": kl_d, "kl_z": kl_z, "q": q}

    # -- learning -------------------------------------------------------------------------------
    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, float]:
        """One critic, actor and temperature update on a replay batch of skill transitions (``obs``/
        ``next_obs`` dicts of float32 (B, ...), ``action`` float32 (B, K + Z), ``reward`` (summed over the
        skill) and ``discount`` (γ per skill, 0 after termination) float32 (B,)), then the Polyak update.

        Returns:
            critic_loss, q, target_q; once the actor learns actor_loss, skill_entropy (nats of π_d),
            ``kl_skill``/``kl_argument`` (nats), ``alpha_skill``/``alpha_argument`` (and their losses
            when tuned).
        """
        self.compile_once()
        obs = {k: v.to(self.device) for k, v in batch["obs"].items()}
        next_obs = {k: v.to(self.device) for k, v in batch["next_obs"].items()}
        x, next_x = self._actor_input(obs), self._actor_input(next_obs)
        with torch.no_grad():
            next_value = self.soft_value(self.critic_target, next_x)[0]
            target = batch["reward"].to(self.device) + batch["discount"].to(self.device) * next_value
        metrics = update_twin_critic(self.critic, self.critic_opt, x, batch["action"].to(self.device),
                                     target.unsqueeze(-1))
        if step >= self.cfg.actor_update_after:
            metrics.update(self._update_actor_and_alpha(obs, x))
        soft_update(self.critic, self.critic_target, self.cfg.critic_target_tau)
        return metrics

    def _update_actor_and_alpha(self, obs: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, float]:
        value, parts = self.soft_value(self.critic, x)
        actor_loss = -value.mean()
        actor_step(actor_loss, self.actor_opt)
        probs = parts["probs"].detach()
        divs = {"argument": (probs * parts["kl_z"].detach()).sum(-1), "skill": parts["kl_d"].detach()}
        ones = torch.ones(len(x), device=self.device)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean().detach()
        return {"actor_loss": actor_loss.detach(), "skill_entropy": entropy,
                **temperature_steps(divs, {"argument": ones, "skill": ones},
                                    {"argument": self.log_alpha, "skill": self.log_alpha_d}, self.targets,
                                    {"argument": self.alpha_opt, "skill": self.alpha_d_opt})}

    def networks_to_compile(self) -> tuple[nn.Module, ...]:
        """π_d, π_z, the critics and the frozen priors (the update runs each)."""
        return (self.actor["skill"], self.actor["argument"], self.critic, self.critic_target, self.skill_prior,
                self.argument_prior)

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """SAC's parts, α_d and its optimiser, and the skill model spec (so an exported file rebuilds the
        agent on its own)."""
        return {**super().state_dict(), "log_alpha_d": self.log_alpha_d.detach().clone(),
                "alpha_d_opt": self.alpha_d_opt.state_dict(), "extract_model": self._model_spec}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.alpha_d_opt.load_state_dict(state["alpha_d_opt"])
        with torch.no_grad():
            self.log_alpha_d.copy_(state["log_alpha_d"])
