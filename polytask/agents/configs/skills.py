"""Options of the SPiRL/SkiLD skill models and skill-space SAC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import AgentConfig, option, positive, require
from polytask.agents.configs.sac import SACConfig


@dataclass
class SkillConfig(AgentConfig):
    """The closed-loop skill model that SPiRL's agents share (:class:`polytask.agents.skills.SkillAgent`)."""

    z_dim: int = option(10, "skill size Z")
    horizon: int = option(10, "H: steps per skill")
    hidden_dim: int = option(128, "LSTM and MLP width")
    hidden_depth: int = option(3, "hidden layers of the decoder, prior and posterior MLPs")
    eval_mean_skill: bool = option(False, "true: act with the mean skill in evaluation")
    lr: float = option(1e-3, "learning rate")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.horizon >= 1 and self.z_dim >= 1,
                 f"agent.horizon and agent.z_dim must be >= 1, got {self.horizon} and {self.z_dim}")
        positive(self, "lr", "hidden_dim")


@dataclass
class SkillPriorConfig(SkillConfig):
    """SPiRL's skill VAE and prior p(z|s) (:class:`polytask.agents.skills.SkillPriorAgent`; RAdam)."""

    schema_name: ClassVar[str] = "skill_prior"  # cfgs/agent/skill_prior.yaml extends it

    beta: float = option(5e-4, "KL weight (SPiRL kitchen 5e-4, maze 1e-2)")


@dataclass
class SkillPosteriorConfig(SkillConfig):
    """SkiLD's skill posterior q(z|s) on the demos (:class:`polytask.agents.skills.SkillPosteriorAgent`);
    the sizes must match the skill model's."""

    schema_name: ClassVar[str] = "skill_posterior"  # cfgs/agent/skill_posterior.yaml extends it


@dataclass
class DemoDiscriminatorConfig(AgentConfig):
    """SkiLD's demo discriminator D(s) (:class:`polytask.agents.skills.DemoDiscriminatorAgent`)."""

    schema_name: ClassVar[str] = "demo_discriminator"  # cfgs/agent/demo_discriminator.yaml extends it

    lr: float = option(1e-3, "Adam learning rate")
    hidden_dim: int = option(32, "MLP width")
    hidden_depth: int = option(2, "MLP hidden layers")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "lr", "hidden_dim")


#: how skill-space SAC maps its Gaussian sample u to the stored action in [-1, 1] (the skill is bound × it)
SQUASHES = ("tanh", "scaled")


@dataclass
class SpirlConfig(SACConfig):
    """SPiRL's skill-space SAC (:class:`polytask.agents.skill_rl.SkillSACAgent`); target_entropy and
    log_std_bounds are unused (the KL replaces the entropy)."""

    schema_name: ClassVar[str] = "spirl"  # cfgs/agent/spirl.yaml extends it

    target_divergence: float | None = option(1.0, "nats of KL(π ‖ prior) α is tuned toward (SPiRL: maze 1, "
                                                "kitchen 5); null: α fixed")
    bound: float = option(2.0, "skills are bound·tanh(u) (squash=tanh) or bound·tanh(u / bound) (squash=scaled)")
    squash: str = option("tanh", "tanh: z = bound·tanh(u) (SPiRL's); scaled: z = bound·tanh(u / bound), about u "
                         "where |u| << bound, so a policy initialised as the prior or posterior acts as it")
    prior_kl_clip: float | None = option(100.0, "nats: KL(π ‖ prior) clipped per state (the prior can be "
                                          "extremely narrow off the play data); null: not clipped")
    eval_mean_skill: bool = option(False, "true: evaluate with the squashed mean; false: draw skills as in training")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "bound")
        require(self.squash in SQUASHES, f"agent.squash must be one of {SQUASHES}, got {self.squash!r}")
        require(self.target_divergence is None or self.target_divergence > 0,
                 f"agent.target_divergence must be > 0 or null, got {self.target_divergence}")


SKILD_INIT_FROM = ("prior", "posterior")


@dataclass
class SkiLDConfig(SpirlConfig):
    """SkiLD (:class:`polytask.agents.skill_rl.SkiLDAgent`)."""

    schema_name: ClassVar[str] = "skild"  # cfgs/agent/skild.yaml extends it

    target_divergence_q: float | None = option(1.0, "nats of KL(π ‖ posterior) α_q is tuned toward; null: fixed")
    init_temperature_q: float = option(0.1, "initial α_q")
    env_reward_weight: float = option(0.9, "λ: reward = λ·r + (1-λ)·(log D - log(1-D))")
    imitation: bool = option(False, "true: the discriminator reward alone (λ = 0)")
    init_from: str = option("prior", "the network the policy starts as: prior | posterior")
    posterior_kl_clip: float | None = option(100.0, "nats: KL(π ‖ posterior) clipped per state; null: not clipped")
    demo_logit_clip: float | None = option(None, "the discriminator's logit log D - log(1-D) clamped to [-c, c] "
                                                 "in the reward; null: not clamped (SkiLD)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.0 <= self.env_reward_weight <= 1.0,
                 f"agent.env_reward_weight must be in [0, 1], got {self.env_reward_weight}")
        require(self.init_from in SKILD_INIT_FROM, f"agent.init_from must be 'prior' or 'posterior', got "
                 f"{self.init_from!r}")
        positive(self, "init_temperature_q")
        require(self.demo_logit_clip is None or self.demo_logit_clip > 0,
                f"agent.demo_logit_clip must be positive or null, got {self.demo_logit_clip}")
