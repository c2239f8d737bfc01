"""The flat baselines of SPiRL (Pertsch et al. 2020, "Accelerating RL with Learned Skill Priors",
Sec. 4) and EXTRACT (Zhang et al. 2024): a single-step action prior learned from play data, and SAC
started from it.

- :class:`FlatPriorAgent` (``agent=flat_prior``): SAC's tanh-squashed Gaussian actor π(a | s)
  (:class:`polytask.nets.mlp.GaussianActor`), u ~ N(μ(s), σ(s)²), a = tanh(u), trained by maximum
  likelihood on play data (or demos):

      −log π(a | s) = −log N(atanh(a); μ(s), σ(s)²) + Σ_i log(1 − a_i²),

  the data actions clipped to ±``action_clip`` first. It is SPiRL's skill prior with windows of one
  step, so the skill-prior trainer trains it. SPiRL fits an unsquashed Gaussian; the squashed one
  here is exactly the policy SAC acts with, so SAC starts from it without a change of distribution.
- :class:`BCSACAgent` (``agent=bc_sac``): SAC whose actor starts as a copy of the flat prior. By default
  SAC's own entropy-regularised losses ("BC + SAC"); with ``kl_to_prior`` SPiRL's flat-prior baseline:
  the losses of :class:`polytask.agents.skill_rl.SkillSACAgent` with the frozen flat prior as the prior
  (actor loss −min Q + α·KL(π ‖ p), analytic KL of the unsquashed Gaussians, which equals the KL of the
  squashed ones; α fixed or tuned toward ``target_divergence``), in the env's own action space.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from polytask.agents.base import Agent, LossAgent
from polytask.agents.configs.flat import BCSACConfig, FlatPriorConfig
from polytask.agents.frozen import freeze
from polytask.agents.sac import SACAgent
from polytask.agents.skill_rl import SkillSACAgent
from polytask.errors import require_features
from polytask.nets.mlp import GaussianActor
from polytask.nets.skills import gaussian_nll


def flat_actor(obs_dim: int, action_dim: int, hidden_dim: int, hidden_depth: int,
               log_std_bounds: tuple[float, float]) -> GaussianActor:
    """SAC's actor network on raw state features float32 (B, D) (no trunk), as :class:`SACAgent` builds it."""
    return GaussianActor(obs_dim, action_dim, hidden_dim, hidden_dim, hidden_depth, False, tuple(log_std_bounds))


class FlatPriorAgent(LossAgent):
    """The flat prior π(a | s) (see the module docstring), trained with Adam on one-step windows.

    Args:
        obs_shapes: uses ``obs_shapes["state"]`` (D,).
        action_dim: A; actions in [-1, 1].
        obs_type: must be ``"features"``.
        device: torch device.
        **options: :class:`polytask.agents.configs.flat.FlatPriorConfig` (``self.cfg``).
    """

    config_class = FlatPriorConfig
    name = "flat_prior"
    #: training windows of :meth:`polytask.data.buffer.DemoBuffer.sample_windows`: one state and its action
    window = (1, 1, 0)

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        require_features(self.name, obs_type)
        self.device = torch.device(device)
        self.obs_dim, self.action_dim = int(obs_shapes["state"][0]), action_dim
        self.model = flat_actor(self.obs_dim, action_dim, cfg.hidden_dim, cfg.hidden_depth,
                                cfg.log_std_bounds).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    def fit_dataset(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Nothing to fit: the prior sees raw states, as SAC's actor does."""

    def nll(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """−log π(a | s) in nats, float32 (B,), for raw states float32 (B, D) and actions float32 (B, A)
        in [-1, 1] (clipped to ±``action_clip``)."""
        a = action.to(self.device, torch.float32).clamp(-self.cfg.action_clip, self.cfg.action_clip)
        mean, log_std = self.model(state.to(self.device, torch.float32))
        return gaussian_nll(torch.atanh(a), mean, log_std) + torch.log1p(-a.pow(2)).sum(-1)

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The mean NLL on ``state`` float32 (B, 1, D) and ``action`` float32 (B, 1, A) (one-step windows;
        (B, D) and (B, A) work alike).

        Returns:
            the loss and ``nll`` (nats per step), ``mse`` (of the mean action tanh(μ), per entry) and
            ``std`` (mean σ of the pre-tanh Gaussian).
        """
        state = batch["state"].reshape(-1, self.obs_dim).to(self.device, torch.float32)
        action = batch["action"].reshape(-1, self.action_dim).to(self.device, torch.float32)
        nll = self.nll(state, action).mean()
        with torch.no_grad():
            mean, log_std = self.model(state)
            mse = (torch.tanh(mean) - action).pow(2).mean()
        return nll, {"nll": nll.item(), "mse": mse.item(), "std": log_std.exp().mean().item()}

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """The mean action tanh(μ(s)) in eval mode, else a sample tanh(u), u ~ N(μ, σ²), for ``obs["state"]``
        float32 (B, D): float32 (B, A) in [-1, 1]."""
        state = torch.as_tensor(np.asarray(obs["state"], np.float32), device=self.device)
        action = self.model.mean(state) if eval_mode else self.model.sample(state)[0]
        return action.cpu().numpy().astype(np.float32)


class BCSACAgent(SkillSACAgent):
    """SAC started from the flat prior (see the module docstring): SAC on the env's actions and raw
    states, its actor a copy of the prior's network, with SAC's losses, or with ``kl_to_prior``
    :class:`SkillSACAgent`'s KL-regularised ones against the frozen prior.

    Args:
        obs_shapes, action_dim, obs_type, device: as :class:`SACAgent` (features only).
        flat_prior: the run input ``flat_prior`` (:func:`polytask.training.skill_inputs.flat_prior_spec` of
            an exported ``flat_prior`` file): ``{"model": GaussianActor state dict, hidden_dim, hidden_depth,
            log_std_bounds}``.
        **options: :class:`polytask.agents.configs.flat.BCSACConfig` (``self.cfg``).

    Raises:
        ValueError: without a flat prior, or one that does not fit the env's state and action sizes.
    """

    config_class = BCSACConfig
    state_init_args = ("flat_prior",)
    wrap_env = Agent.wrap_env  # the env's own actions
    _actor_input = SACAgent._actor_input  # the raw state, as the flat prior saw it

    @classmethod
    def inputs(cls, options) -> tuple[str, ...]:
        """The ``flat_prior`` (the ``flat_prior`` run of the suite, made first when missing)."""
        return ("flat_prior",)

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", flat_prior: dict[str, Any] | None = None, **options):
        if flat_prior is None:
            raise ValueError("BCSACAgent needs the flat prior (the weights of agent=flat_prior)")
        self._prior_spec = flat_prior
        # SAC's networks and optimisers; SkillSACAgent's constructor (a skill model) does not apply
        SACAgent.__init__(self, obs_shapes, action_dim, obs_type, device, **options)
        dim = int(obs_shapes[self.obs_key][0])
        prior = flat_actor(dim, action_dim, int(flat_prior["hidden_dim"]), int(flat_prior["hidden_depth"]),
                           flat_prior["log_std_bounds"])
        try:
            prior.load_state_dict(flat_prior["model"])
        except RuntimeError as e:
            raise ValueError(f"the flat prior does not fit {dim}-d states and {action_dim}-d actions: {e}") from e
        self.prior = freeze(prior.to(self.device))
        self.actor = copy.deepcopy(self.prior).requires_grad_(True)  # π starts as the prior
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.cfg.lr)
        self.train(True)

    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, Any]:
        """SAC's update (:meth:`SACAgent.update`), or with ``kl_to_prior`` :meth:`SkillSACAgent.update`
        (regulariser α·KL(π ‖ p) in the critic target and the actor loss); see there for the batch and
        the metrics."""
        return (SkillSACAgent if self.cfg.kl_to_prior else SACAgent).update(self, batch, step)

    def _update_actor_and_alpha(self, obs: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, Any]:
        return (SkillSACAgent if self.cfg.kl_to_prior else SACAgent)._update_actor_and_alpha(self, obs, x)

    def state_dict(self) -> dict[str, Any]:
        """SAC's parts and the flat prior's spec (so an exported file rebuilds the agent on its own)."""
        return {**SACAgent.state_dict(self), "flat_prior": self._prior_spec}
