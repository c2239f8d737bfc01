"""Options of PolyTask's distillation student."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import AgentConfig, option, positive


@dataclass
class DistillConfig(AgentConfig):
    """PolyTask's goal-conditioned student (:class:`polytask.agents.distill.DistillAgent`)."""

    schema_name: ClassVar[str] = "distill"  # cfgs/agent/distill.yaml extends it

    lr: float = option(5e-5, "Adam learning rate")
    feature_dim: int = option(512, "pixel trunk width")
    hidden_dim: int = option(1024, "width of the actor MLP")
    hidden_depth: int = option(3, "hidden layers of the actor MLP")
    goal_feature_dim: int = option(64, "goal-image features (goal_modality=pixels only)")
    augment: bool = option(True, "random-shift augmentation of pixels")
    pad: int = option(4, "random-shift size in pixels")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "lr", "feature_dim", "hidden_dim", "goal_feature_dim")
