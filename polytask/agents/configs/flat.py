"""Options of the flat (single-step) action prior trained on play data and of SAC started from it
("BC + SAC", SPiRL's "flat prior" baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import AgentConfig, option, positive, require
from polytask.agents.configs.skills import SpirlConfig


@dataclass
class FlatPriorConfig(AgentConfig):
    """The flat prior π(a|s) (:class:`polytask.agents.flat.FlatPriorAgent`): SAC's tanh-Gaussian actor
    trained by maximum likelihood; its sizes are SAC's defaults, so ``agent=bc_sac`` starts from it."""

    schema_name: ClassVar[str] = "flat_prior"  # cfgs/agent/flat_prior.yaml extends it

    hidden_dim: int = option(256, "MLP width (SAC's actor)")
    hidden_depth: int = option(2, "hidden layers of the MLP (SAC's actor)")
    log_std_bounds: list[float] = option([-5.0, 2.0], "range of log σ (SAC's actor)")
    lr: float = option(1e-3, "Adam learning rate")
    action_clip: float = option(0.999, "data actions are clipped to ±action_clip before atanh (a ±1 action has "
                                "no finite pre-tanh value)")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "lr", "hidden_dim")
        require(0.0 < self.action_clip < 1.0, f"agent.action_clip must be in (0, 1), got {self.action_clip}")
        require(len(self.log_std_bounds) == 2 and self.log_std_bounds[0] < self.log_std_bounds[1],
                 f"agent.log_std_bounds must be [low, high] with low < high, got {list(self.log_std_bounds)}")


@dataclass
class BCSACConfig(SpirlConfig):
    """SAC whose actor starts as the flat prior (:class:`polytask.agents.flat.BCSACAgent`): "BC + SAC",
    or with ``kl_to_prior`` SPiRL's flat-prior baseline. The actor has the prior's sizes and log σ
    bounds (``hidden_dim`` and ``hidden_depth`` size the critic; ``log_std_bounds`` and ``bound`` are
    unused, ``squash`` must stay ``tanh``); ``target_divergence`` applies with ``kl_to_prior``,
    ``target_entropy`` without."""

    schema_name: ClassVar[str] = "bc_sac"  # cfgs/agent/bc_sac.yaml extends it

    kl_to_prior: bool = option(False, "false: SAC's entropy term (BC + SAC); true: α·KL(π ‖ flat prior) instead "
                               "(SPiRL's flat-prior baseline)")
    eval_mean_skill: bool = option(True, "true: evaluate with tanh(mean) (SAC's); false: draw actions from π")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.squash == "tanh", f"agent.squash={self.squash!r}: BC + SAC acts in the env's action space "
                "with tanh(u), as its flat prior was trained; leave agent.squash=tanh")
