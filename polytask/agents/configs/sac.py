"""Options of SAC and Policy Decorator's residual SAC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import AgentConfig, option, positive, require


@dataclass
class SACConfig(AgentConfig):
    """SAC with automatic entropy tuning (:class:`polytask.agents.sac.SACAgent`)."""

    schema_name: ClassVar[str] = "sac"  # cfgs/agent/sac.yaml extends it

    lr: float = option(3e-4, "Adam learning rate of actor, critics and temperature")
    hidden_dim: int = option(256, "width of the actor and critic MLPs")
    hidden_depth: int = option(2, "hidden layers of the actor and critic MLPs")
    critic_layer_norm: bool = option(False, "LayerNorm after each hidden layer of the Q MLPs (against Q divergence "
                                     "on actions far from the data: Ball et al. 2023)")
    critic_target_tau: float = option(0.005, "Polyak rate τ of the target critics")
    init_temperature: float = option(1.0, "initial temperature α")
    target_entropy: float | None = option(None, "target entropy H̄; null: -|A|")
    log_std_bounds: list[float] = option([-5.0, 2.0], "range of the actor's log σ")
    num_expl_steps: int = option(5000, "uniform random actions before this agent step")
    actor_update_after: int = option(0, "agent step from which actor and α learn (before it: critics only)")
    compile: bool = option(False, "torch.compile the networks' forward passes (in place) at the first update; "
                           "optimiser steps unchanged, no CUDA graphs")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "lr", "hidden_dim", "init_temperature")
        require(0 < self.critic_target_tau <= 1, f"agent.critic_target_tau must be in (0, 1], got "
                 f"{self.critic_target_tau}")
        require(len(self.log_std_bounds) == 2 and self.log_std_bounds[0] < self.log_std_bounds[1],
                 f"agent.log_std_bounds must be [low, high] with low < high, got {list(self.log_std_bounds)}")
        require(self.num_expl_steps >= 0 and self.actor_update_after >= 0,
                 "agent.num_expl_steps and agent.actor_update_after must be >= 0")


RESIDUAL_ACTOR_INPUTS = ("obs", "obs_base_action")


@dataclass
class ResidualConfig(SACConfig):
    """Policy Decorator's residual SAC (:class:`polytask.agents.residual.ResidualAgent`); res_scale and
    prog_explore are set at the top level."""

    schema_name: ClassVar[str] = "residual"  # cfgs/agent/residual.yaml extends it

    res_scale: float = option(0.1, "α: |a - a_base| <= res_scale per action dimension", "res_scale")
    prog_explore: int = option(100_000, "H in agent steps: the residual is on with probability min(step/H, 1); "
                               "<= 0: always", "prog_explore")
    zero_init: bool = option(True, "the mean residual starts at 0: the untrained policy acts as its base")
    actor_input: str = option("obs", "what the residual actor sees: obs | obs_base_action")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "res_scale")
        require(self.actor_input in RESIDUAL_ACTOR_INPUTS,
                 f"agent.actor_input must be one of {RESIDUAL_ACTOR_INPUTS}, got {self.actor_input!r}")
