"""Options of collective learning's SAC students (``train_collective.py mode=train_student`` and
``mode=finetune_student``; their yamls are ``cfgs/mode/<mode>.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import option, require
from polytask.agents.configs.sac import SACConfig


@dataclass
class ShapedSACConfig(SACConfig):
    """SAC with the collective's shaping bonus (:class:`polytask.agents.collective_sac.ShapedSACAgent`)."""

    schema_name: ClassVar[str] = "sac_shaped"  # cfgs/mode/train_student.yaml extends it

    hold_until: int = option(8000, "shaping weight 1 until this agent step")
    zero_at: int = option(50000, "... then linear to 0 at this agent step")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.hold_until <= self.zero_at, f"the shaping schedule needs 0 <= agent.hold_until <= "
                f"agent.zero_at, got hold_until={self.hold_until}, zero_at={self.zero_at}")


@dataclass
class CollectiveSACConfig(SACConfig):
    """SAC whose actor starts as the collective actor (:class:`polytask.agents.collective_sac.CollectiveSACAgent`);
    ``hidden_dim``/``hidden_depth`` size the critics (the actor has the collective's sizes)."""

    schema_name: ClassVar[str] = "sac_finetune"  # cfgs/mode/finetune_student.yaml extends it
