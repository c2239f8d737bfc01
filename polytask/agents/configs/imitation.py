"""Options of BC, DrQ-v2 and ROT (and ROT's optimal-transport rewarder)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from polytask.agents.configs.base import AgentConfig, check_schedule, make_options, option, positive, require


@dataclass
class ActorConfig(AgentConfig):
    """The encoder and actor that BC and DrQ-v2 share (same sizes: BC weights load into DrQ-v2)."""

    lr: float = option(1e-4, "Adam learning rate (encoder, actor, and DrQ-v2's critic)")
    feature_dim: int = option(512, "trunk width (pixels; state features with state_trunk)")
    hidden_dim: int = option(1024, "width of the actor MLP")
    hidden_depth: int = option(3, "hidden layers of the actor MLP (hidden_depth + 1 linear layers)")
    state_trunk: bool = option(False, "state features: Linear+LayerNorm+Tanh trunk before the MLPs, as for pixels")
    augment: bool = option(True, "random-shift augmentation of pixels")
    pad: int = option(4, "random-shift size in pixels")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "lr", "feature_dim", "hidden_dim")
        require(self.hidden_depth >= 0 and self.pad >= 0, "agent.hidden_depth and agent.pad must be >= 0")


@dataclass
class BCConfig(ActorConfig):
    """Behavior cloning (:class:`polytask.agents.bc.BCAgent`)."""

    schema_name: ClassVar[str] = "bc"  # cfgs/agent/bc.yaml extends it

    stddev: float = option(0.1, "fixed policy std σ (the NLL loss is an MSE scaled by 1/(2σ²))")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "stddev")


TWIN_Q_REDUCTIONS = ("min", "mean")


@dataclass
class DrQV2Config(ActorConfig):
    """DrQ-v2 (:class:`polytask.agents.drqv2.DrQV2Agent`)."""

    critic_hidden_depth: int = option(2, "hidden layers of the Q MLPs")
    critic_layer_norm: bool = option(False, "LayerNorm after each hidden layer of the Q MLPs")
    critic_target_tau: float = option(0.01, "Polyak rate τ of the target critic")
    twin_q: str = option("min", "how twin Qs combine: min (clipped double Q, DrQ-v2) | mean (less pessimistic, BRO)")
    stddev_schedule: str = option("linear(1.0,0.1,250000)", "exploration std: a number or linear(init,final,steps)")
    stddev_clip: float = option(0.3, "clip of the exploration noise in the updates")
    num_expl_steps: int = option(2000, "uniform random actions before this agent step")
    compile: bool = option(False, "torch.compile the networks' forward passes (in place) at the first update; "
                           "optimiser steps unchanged, no CUDA graphs")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.twin_q in TWIN_Q_REDUCTIONS,
                 f"agent.twin_q must be one of {TWIN_Q_REDUCTIONS} ('min': clipped double Q), got {self.twin_q!r}")
        require(0 < self.critic_target_tau <= 1, f"agent.critic_target_tau must be in (0, 1], got "
                 f"{self.critic_target_tau}")
        require(self.num_expl_steps >= 0, f"agent.num_expl_steps must be >= 0, got {self.num_expl_steps}")
        check_schedule("stddev_schedule", self.stddev_schedule)


@dataclass
class OTConfig:
    """ROT's optimal-transport rewarder (:class:`polytask.rewards.ot.OTRewarder`); set at the top
    level (``ot.eps=...``)."""

    schema_name: ClassVar[str] = "ot"  # the top-level ``ot`` group

    eps: float = option(0.01, "Sinkhorn entropic regularisation ε")
    num_iters: int = option(100, "Sinkhorn iterations")
    target_return: float = option(10.0, "the first episode's OT rewards are scaled to sum to this magnitude")
    update_target_every: int = option(10_000, "pixels: agent steps between refreshes of the reward encoder")


BC_WEIGHT_TYPES = ("qfilter", "schedule")


@dataclass
class ROTConfig(DrQV2Config):
    """ROT on DrQ-v2 (:class:`polytask.agents.rot.ROTAgent`); irl, load_bc, bc_regularize and ot are
    set at the top level."""

    schema_name: ClassVar[str] = "drqv2"  # cfgs/agent/drqv2.yaml extends it

    irl: bool = option(False, "rewards from optimal transport to the demos; false: the env's reward", "irl")
    load_bc: bool = option(False, "start from the BC run's weights (also the frozen policy of the Q-filter)",
                           "load_bc")
    bc_regularize: bool = option(False, "add the BC term to the actor loss (the Q-filter needs load_bc)",
                                 "bc_regularize")
    ot: dict[str, Any] = option({}, "the OT rewarder's options (OTConfig; top-level ot.*)", "ot")
    bc_weight_type: str = option("qfilter", "λ of the BC term: qfilter (soft Q-filter) | schedule (bc_weight_schedule)")
    bc_weight_schedule: str = option("linear(1.0,0.1,20000)", "λ with bc_weight_type=schedule")
    bc_alpha: float = option(2.5, "weight α of the BC term")
    bc_stddev: float = option(0.1, "σ of the BC term's Gaussian likelihood (BC's fixed std)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.bc_weight_type in BC_WEIGHT_TYPES,
                 f"agent.bc_weight_type must be one of {BC_WEIGHT_TYPES}, got {self.bc_weight_type!r}")
        require(not (self.bc_regularize and self.bc_weight_type == "qfilter" and not self.load_bc),
                 "bc_regularize=true with the soft Q-filter needs the BC policy: add load_bc=true "
                 "(or set agent.bc_weight_type=schedule)")
        check_schedule("bc_weight_schedule", self.bc_weight_schedule)
        positive(self, "bc_stddev")
        ot = self.ot if isinstance(self.ot, OTConfig) else make_options(OTConfig, self.ot, "ot")
        self.ot = dataclasses.asdict(ot)
