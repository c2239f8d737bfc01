"""SAC students of collective learning (the transformer-based collective learning framework: a new
task learnt with the help of a collective policy distilled from many single-task workers).

- :class:`ShapedSACAgent` (``mode=train_student``): SAC on the state whose critic target gains the
  shaping bonus of the collective policy,
  ``y = r + w(t)·q(s, a) + γ·(min Q'(s', a') − α·log π(a'|s'))`` with
  ``q(s, a) = Π_i exp(−½((a_i − tanh μ_i)/σ_i)²)`` (:func:`polytask.collective.shaping.shaping_bonus`),
  μ, σ the collective actor's on the embedding of the student's own last W steps and the state,
  and ``w(t)`` 1 until ``hold_until`` agent steps, then linear to 0 at ``zero_at``
  (:func:`polytask.collective.shaping.shaping_weight`).
- :class:`CollectiveSACAgent` (``mode=finetune_student``): SAC whose actor *is* a copy of the
  collective actor (same sizes and weights) on [embedding, state]; the embedding comes from the
  frozen transformer on the student's last W steps, so the fine-tuned actor sees the input it was
  distilled on. Critics start fresh.

Both act through :class:`polytask.collective.policy.TrajectoryEmbedding` (:meth:`wrap_env`), which adds
the embedding to every observation; the replay buffer stores it with the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from polytask.agents.configs.collective import CollectiveSACConfig, ShapedSACConfig
from polytask.agents.qlearning import adam
from polytask.agents.sac import SACAgent
from polytask.collective.policy import EMBEDDING_KEY, Collective, TrajectoryEmbedding
from polytask.errors import ConfigError
from polytask.nets.mlp import GaussianActor


class _CollectiveInput:
    """What both students share: the frozen collective (from the ``collective`` run input, its weights
    as plain data), kept in the agent's state so that a weights file rebuilds the agent alone."""

    state_init_args: ClassVar[tuple[str, ...]] = ("collective",)

    @classmethod
    def inputs(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """``collective``: the weights of ``mode=distill_collective`` (``collective.weights`` or the
        conventional path of ``collective.tasks``)."""
        return ("collective",)

    def _set_collective(self, collective: dict[str, Any] | None, device: torch.device | str) -> None:
        if collective is None:
            raise ConfigError(f"{type(self).__name__} needs the collective's weights (the `collective` run input)")
        self.collective = Collective(collective, device)
        if self.collective.actor is None:
            raise ConfigError("the collective's weights hold a transformer only: run mode=distill_collective first")

    def wrap_env(self, env):
        """``env`` with the collective's embedding of the last W steps in every observation."""
        return TrajectoryEmbedding(env, self.collective)

    def _with_collective(self, state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "collective": self.collective.state_dict()}


class ShapedSACAgent(_CollectiveInput, SACAgent):
    """SAC with the collective's shaping bonus in the critic target (see the module docstring).

    Args:
        collective: the collective's weights as plain data (run input).
        **options: :class:`polytask.agents.configs.collective.ShapedSACConfig` (``self.cfg``): SAC's, and
            the shaping weight's schedule in agent steps (``hold_until``, ``zero_at``).

    Raises:
        ConfigError: without a collective, or one without an actor; options the config refuses.
    """

    config_class = ShapedSACConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", collective: dict[str, Any] | None = None, **options: Any):
        super().__init__(obs_shapes, action_dim, obs_type, device, **options)
        self._set_collective(collective, self.device)

    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, float]:
        """:meth:`SACAgent.update` with reward ``r + w(step)·q(s, a)`` (1-step returns: the bonus is
        added to the transition's own reward); adds ``shaping_weight`` and ``shaping_bonus`` (batch mean)."""
        from polytask.collective.shaping import shaping_bonus, shaping_weight

        weight = shaping_weight(step, self.cfg.hold_until, self.cfg.zero_at)
        obs = batch["obs"]
        mean, log_std = self.collective.gaussian(obs[EMBEDDING_KEY].to(self.device), obs["state"].to(self.device))
        bonus = shaping_bonus(batch["action"].to(self.device), mean, log_std)
        shaped = {**batch, "reward": batch["reward"].to(self.device) + weight * bonus}
        metrics = super().update(shaped, step)
        return {**metrics, "shaping_weight": weight, "shaping_bonus": bonus.mean()}

    def state_dict(self) -> dict[str, Any]:
        return self._with_collective(super().state_dict())


class CollectiveSACAgent(_CollectiveInput, SACAgent):
    """SAC whose actor starts as the collective actor, on [embedding, state] (see the module docstring).
    The critics have SAC's sizes (``hidden_dim``, ``hidden_depth``); the actor has the collective's.

    Args:
        collective: the collective's weights as plain data (run input).
        **options: :class:`polytask.agents.configs.collective.CollectiveSACConfig` (SAC's; ``lr`` also for
            the new actor's optimiser).

    Raises:
        ConfigError: without a collective, or one without an actor.
    """

    config_class = CollectiveSACConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", collective: dict[str, Any] | None = None, **options: Any):
        self._set_collective(collective, device)  # first: the actor's input width depends on it
        super().__init__(obs_shapes, action_dim, obs_type, device, **options)
        source = self.collective.actor
        self.actor = GaussianActor(source.embed_dim + source.obs_dim, source.action_dim, source.hidden_dim,
                                   source.hidden_dim, source.hidden_depth, False, source.log_std_bounds).to(self.device)
        self.actor.load_state_dict(source.gaussian_actor_state_dict())  # its state normalisation folded in
        self.actor_opt = adam(self.actor.parameters(), self.cfg.lr)
        self.train(True)

    def _actor_input_dim(self, state_dim: int) -> int:
        return self.collective.embed_dim + state_dim

    def _actor_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """[embedding, state] float32 (B, E + D)."""
        return torch.cat([self._tensor(obs[EMBEDDING_KEY]), self._tensor(obs[self.obs_key])], dim=-1)

    def state_dict(self) -> dict[str, Any]:
        return self._with_collective(super().state_dict())
