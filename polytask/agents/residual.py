"""Policy Decorator (Yuan et al. 2024): a residual SAC policy on top of a frozen base policy.

Action composition. The SAC actor on the current state s gives u ~ N(μ(s), σ(s)²) and its usual
tanh-squashed output r = tanh(u) ∈ (−1, 1)^A (:class:`polytask.nets.mlp.GaussianActor`). The
executed action is

    a = clip(a_base(s) + α·r, −1, 1),     α = ``res_scale``,

with a_base(s) the frozen base policy's action, itself clipped to the action space [−1, 1]. So
|a − a_base| ≤ α in every dimension. SAC's entropy term is the log-likelihood of r (tanh-corrected,
as in plain SAC); the shift by a_base and the scaling by α only add the constant Σ log α to it
(clipping aside), so the target entropy −|A| refers to r. The critic scores the executed action:
Q(s, a) (actor loss ``α_T·log π(r|s) − Q(s, clip(a_base + α·r))``, critic target with
a' = clip(a_base(s') + α·r'), r' ~ π(·|s')).

Progressive exploration: while training at agent step t the residual is switched on with
probability min(t/H, 1), H = ``prog_explore`` (per step; H ≤ 0: always on); otherwise r = 0 is used,
so a = a_base is executed and stored. Evaluation executes clip(a_base + α·tanh(μ(s))).

Base actions are computed once, when an observation arrives (:meth:`ResidualAgent.observe`, called
by the online trainer for every observation, the last of an episode included) and stored with it
in the replay buffer as the observation key ``base_action`` (float32 (A,)). A sampled batch so has
``obs["base_action"]`` and ``next_obs["base_action"]`` (the n-step next observation's own base
action), and updates never run the base policy.
"""

from __future__ import annotations

import copy
import itertools
import logging
from typing import Any

import numpy as np
import torch

from polytask.agents.configs.sac import ResidualConfig
from polytask.agents.frozen import fingerprint, freeze, policy_modules
from polytask.agents.sac import SACAgent
from polytask.errors import PolyTaskError

log = logging.getLogger("polytask")

#: the observation key under which base actions are stored in the replay buffer
BASE_ACTION_KEY = "base_action"


class FrozenPolicyChangedError(PolyTaskError, RuntimeError):
    """The frozen base policy's weights differ from the ones it was loaded with."""


def _copy_sharing_weights(agent: Any) -> Any:
    """A deep copy of ``agent`` whose networks share their parameter and buffer tensors with the
    original: same weights, separate per-episode memory (observation history, action chunks)."""
    memo = {id(t): t for m in policy_modules(agent).values() for t in itertools.chain(m.parameters(), m.buffers())}
    try:
        return copy.deepcopy(agent, memo)
    except Exception as e:  # an agent holding something that cannot be copied: share it (and its memory)
        log.warning(f"Could not copy the base policy for evaluation ({type(e).__name__}: {e}); evaluation "
                    "episodes share its memory with the training episode")
        return agent


class ResidualAgent(SACAgent):
    """Residual SAC around a frozen base policy (see the module doc for the exact composition).

    Args:
        obs_shapes, action_dim, obs_type, device: as :class:`SACAgent` (features only).
        base_policy: the base agent, with ``act(obs, eval_mode=True) -> float32 (B, A)``; obs holds
            the env's keys (B, ...) plus ``task_id``, ``env_index`` int64 (B,) and ``is_first`` bool
            (B,), so policies with memory work. It is frozen here (eval mode, no gradients) and its
            weights' fingerprint is kept (:meth:`check_frozen`).
        **options: :class:`polytask.agents.configs.sac.ResidualConfig` (``self.cfg``): res_scale α,
            prog_explore H, zero_init (the mean residual starts at 0, so the untrained decorated policy
            acts as its base), actor_input (``"obs_base_action"``: the actor also sees the base action,
            so it can correct a stochastic base's sampled mode), and the SAC options
            (``num_expl_steps``: uniform random residuals r before that step).
    """

    @classmethod
    def inputs(cls, options) -> tuple[str, ...]:
        """The frozen ``base_policy`` (from the run's ``base_policy`` weights file)."""
        return ("base_policy",)

    config_class = ResidualConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", base_policy: Any = None, **options):
        if base_policy is None:
            raise ValueError("ResidualAgent needs the frozen base policy (base_policy=<agent>)")
        super().__init__(obs_shapes, action_dim, obs_type, device, **options)
        self.res_scale, self.prog_explore = float(self.cfg.res_scale), int(self.cfg.prog_explore)
        self.base = freeze(base_policy)
        self.base_fingerprint = fingerprint(self.base)
        self._base_eval = _copy_sharing_weights(self.base)  # evaluation episodes keep their own memory
        self.extra_obs_shapes = {BASE_ACTION_KEY: (action_dim,)}
        if self.cfg.zero_init:  # start as the base policy: mean residual tanh(0) = 0
            last = self.actor.policy[-1]
            with torch.no_grad():
                last.weight[:action_dim].zero_()
                last.bias[:action_dim].zero_()

    def _actor_input_dim(self, state_dim: int) -> int:
        return state_dim + (self.action_dim if self.cfg.actor_input == "obs_base_action" else 0)

    def _actor_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """The state (B, D), with ``actor_input="obs_base_action"`` followed by the base action (B, A)."""
        state = super()._actor_input(obs)
        if self.cfg.actor_input == "obs":
            return state
        return torch.cat([state, self._tensor(obs[BASE_ACTION_KEY]).to(state.dtype)], dim=-1)

    def residual_probability(self, step: int) -> float:
        """Progressive exploration: min(step/H, 1) (1 for H ≤ 0)."""
        return 1.0 if self.prog_explore <= 0 else min(step / self.prog_explore, 1.0)

    @torch.no_grad()
    def observe(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-observation extras stored in the replay buffer: ``{"base_action": float32 (B, A)}``,
        the base policy's action (clipped to [-1, 1]) for a batch of observations arriving in the
        training env (with ``env_index``, ``is_first``)."""
        base = np.asarray(self.base.act(obs, eval_mode=True), np.float32)
        return {BASE_ACTION_KEY: np.clip(base, -1.0, 1.0)}

    def execute(self, obs: dict[str, Any], squashed: torch.Tensor) -> torch.Tensor:
        """clip(a_base + α·r, −1, 1), float32 (B, A), from ``obs["base_action"]`` (B, A) and r (B, A)."""
        return (self._tensor(obs[BASE_ACTION_KEY]).to(squashed.dtype) + self.res_scale * squashed).clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Executed actions float32 (B, A). Uses ``obs["base_action"]`` when the trainer stored it
        (:meth:`observe`), else asks the base policy (evaluation: a separate copy of it, so eval
        episodes do not disturb a training episode's base memory)."""
        if BASE_ACTION_KEY not in obs:
            base_agent = self._base_eval if eval_mode else self.base
            base = np.clip(np.asarray(base_agent.act(obs, eval_mode=True), np.float32), -1.0, 1.0)
            obs = {**obs, BASE_ACTION_KEY: base}
        residual = self._policy_output(obs, eval_mode, step)
        if not eval_mode:
            on = torch.rand(len(residual)) < self.residual_probability(step)
            residual = residual * on.to(residual.device, residual.dtype).unsqueeze(-1)
        return self.execute(obs, residual).cpu().numpy().astype(np.float32)

    def train(self, training: bool = True) -> None:
        super().train(training)  # the base policy stays in eval mode

    def check_frozen(self) -> None:
        """Raise :class:`FrozenPolicyChangedError` (and log it) if the base weights changed since
        loading."""
        now = fingerprint(self.base)
        if now != self.base_fingerprint:
            msg = (f"The frozen base policy's weights CHANGED during training (fingerprint "
                   f"{self.base_fingerprint[:12]} "
                   f"at load, {now[:12]} now): the residual was trained on a moving base. This is a bug; "
                   "please report it with the run's config.")
            log.error(msg)
            raise FrozenPolicyChangedError(msg)
        log.info("Frozen base policy weights unchanged (fingerprint checked)")

    def state_dict(self) -> dict[str, Any]:
        """The SAC parts and the base's fingerprint (the base itself is re-loaded from its file)."""
        return {**super().state_dict(), "base_fingerprint": self.base_fingerprint,
                "res_scale": self.res_scale, "prog_explore": self.prog_explore}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the SAC parts.

        Raises:
            FrozenPolicyChangedError: if the saved state was trained on a base with other weights.
        """
        if state.get("base_fingerprint", self.base_fingerprint) != self.base_fingerprint:
            raise FrozenPolicyChangedError(
                "This residual policy was trained on a base policy with other weights than the one given now "
                f"(fingerprint {state['base_fingerprint'][:12]} saved, {self.base_fingerprint[:12]} loaded). Pass the "
                "base_policy file the run started with, or start over with resume=never.")
        super().load_state_dict(state)
