"""Options of EXTRACT's skill model and its hybrid skill-space SAC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import AgentConfig, option, require
from polytask.agents.configs.sac import SACConfig


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
    finetune_on: str | None = option(None, "demos: start from the play-trained model (extract_model) and train on "
                                     "the run's demos, labelled with its skills; null: train on the play data",
                                     "finetune_on")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.finetune_on in (None, "demos"), f"finetune_on must be null or demos, got {self.finetune_on!r}")
        for key in ("num_skills", "z_dim", "max_skill_len"):
            require(getattr(self, key) >= 1, f"agent.{key} must be >= 1, got {getattr(self, key)}")
        require(self.z_bound > 0, f"agent.z_bound must be > 0, got {self.z_bound}")
        require(0.0 < self.progress_done <= 1.0, f"agent.progress_done must be in (0, 1], got {self.progress_done}")


@dataclass
class ExtractSACConfig(SACConfig):
    """EXTRACT's hybrid skill-space SAC (:class:`polytask.agents.extract_rl.ExtractSACAgent`);
    ``hidden_dim``/``hidden_depth`` size the critic (the policy has the skill model's sizes);
    ``target_entropy`` and ``log_std_bounds`` are unused (the KLs replace the entropy)."""

    schema_name: ClassVar[str] = "extract"  # cfgs/agent/extract.yaml extends it

    init_temperature: float = option(0.01, "α, the weight of KL(π_z ‖ p_z) (EXTRACT's kitchen: 0.01)")
    init_temperature_d: float = option(0.1, "α_d, the weight of KL(π_d ‖ p_k) (EXTRACT's kitchen: 0.1)")
    target_divergence: float | None = option(None, "nats of E_k KL(π_z ‖ p_z) α is tuned toward; null: α fixed")
    target_divergence_d: float | None = option(None, "nats of KL(π_d ‖ p_k) α_d is tuned toward; null: α_d fixed")
    progress_done: float = option(0.9, "a plan ends at its first step whose predicted progress reaches this")
    max_skill_len: int = option(30, "the most env steps one skill runs")
    argument_kl_clip: float | None = option(
        100.0, "nats: KL(π_z ‖ p_z) clipped per state and skill (the prior is very narrow at some states); "
        "null: off (a deviation from EXTRACT, as SkiLD's posterior_kl_clip)")
    eval_mean_skill: bool = option(False, "eval acts with the most likely k and the mean argument; false: "
                                   "draws (k, z) ~ π as training does")
    num_expl_steps: int = option(0, "uniform random (k, z) before this agent step (0: the priors act from the start)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("init_temperature_d", "target_divergence", "target_divergence_d", "argument_kl_clip"):
            value = getattr(self, key)
            require(value is None or value > 0, f"agent.{key} must be > 0 (or null), got {value}")
        require(0.0 < self.progress_done <= 1.0, f"agent.progress_done must be in (0, 1], got {self.progress_done}")
        require(self.max_skill_len >= 1, f"agent.max_skill_len must be >= 1, got {self.max_skill_len}")
