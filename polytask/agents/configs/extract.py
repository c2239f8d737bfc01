"""Options of EXTRACT's skill model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import AgentConfig, option, require


@dataclass
class ExtractSkillConfig(AgentConfig):
    """EXTRACT's skill model (:class:`polytask.agents.extract.ExtractSkillAgent`)."""

    schema_name: ClassVar[str] = "extract_skill"  # cfgs/agent/extract_skill.yaml extends it

    num_skills: int = option(8, "K: the discovered skills (must match the labelled data: extract.k)", "extract.k")
    z_dim: int = option(5, "argument size")
    z_bound: float = option(2.0, "arguments lie in (-z_bound, z_bound)")
    hidden_dim: int = option(128, "LSTM and MLP width")
    hidden_depth: int = option(3, "hidden layers of the prior MLPs")
    lr: float = option(1e-3, "Adam learning rate")
    beta: float = option(1e-3, "KL weight")
    max_skill_len: int = option(30, "acting: the longest plan decoded (the longest segment)")
    progress_done: float = option(0.9, "acting: a plan ends at the first step whose predicted progress reaches this")
    eval_mean_skill: bool = option(False, "true: act with the most likely skill and the prior's mean argument")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("num_skills", "z_dim", "max_skill_len"):
            require(getattr(self, key) >= 1, f"agent.{key} must be >= 1, got {getattr(self, key)}")
        require(self.z_bound > 0, f"agent.z_bound must be > 0, got {self.z_bound}")
        require(0.0 < self.progress_done <= 1.0, f"agent.progress_done must be in (0, 1], got {self.progress_done}")
