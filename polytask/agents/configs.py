"""Every agent's options, declared once: one dataclass per agent (typed fields, defaults, one doc
line each in ``metadata["help"]``), its checks in ``__post_init__`` (ranges, options that need each
other), so a bad value fails when the config is built, before any data is loaded or network made.

The dataclasses are registered in Hydra's ConfigStore (group ``agent_schema``, one entry per
``cfgs/agent/<name>.yaml``, see :data:`SCHEMAS`) when :mod:`polytask.config` is imported, before
composition; each agent yaml extends its entry (``- /agent_schema@agent: <name>`` in its defaults
list), so the composed config holds every option with its type, a wrong type fails at composition,
and the yaml only sets ``_target_``, ``name``, ``trainer`` and the values of its published setting.
An agent reads its options as ``self.cfg`` (:meth:`polytask.agents.base.Agent.configure`).

This module imports no torch and no agent, so registering costs milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from polytask.errors import ConfigError


def option(default: Any, doc: str, top_level: str | None = None) -> Any:
    """A config field with ``default`` (lists and dicts are copied per instance) and its one-line
    ``doc``; ``top_level`` names the top-level key the published yamls set it through (by
    interpolation: run names read that key, so it is the switch's one name)."""
    meta = {"help": doc, **({"top_level": top_level} if top_level else {})}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        _require(getattr(cfg, name) > 0, f"agent.{name} must be > 0, got {getattr(cfg, name)}")


def _check_schedule(name: str, spec: Any) -> None:
    from polytask.utils import schedule  # the schedule parser (imports torch: only when checking)

    try:
        schedule(spec, 0)
    except ValueError as e:
        raise ConfigError(f"agent.{name}: {e}") from e


@dataclass
class AgentConfig:
    """Base of the agent configs: no options (a subclass declares its agent's)."""

    def __post_init__(self) -> None:
        """The checks of the config (subclasses extend it). Raises ConfigError."""


def make_config(config_class: type[AgentConfig], options: Mapping[str, Any]) -> AgentConfig:
    """``config_class`` built from ``options`` (plain values or a DictConfig): types checked and
    converted as at composition (a number given for a string option, an int for a float), then
    :meth:`AgentConfig.__post_init__`'s checks.

    Raises:
        ConfigError: for an option ``config_class`` lacks (the message lists those it has), a value
            of the wrong type, or a check that fails.
    """
    if isinstance(options, config_class):
        return options
    names = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(f"{config_class.__name__} has no option {', '.join(unknown)}; it takes: {', '.join(names)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config_class), dict(options))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{config_class.__name__}: {str(e).splitlines()[0]} (fix the override or the config)") from e


# -- BC, DrQ-v2, ROT ---------------------------------------------------------------------------------
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
        _positive(self, "lr", "feature_dim", "hidden_dim")
        _require(self.hidden_depth >= 0 and self.pad >= 0, "agent.hidden_depth and agent.pad must be >= 0")


@dataclass
class BCConfig(ActorConfig):
    """Behavior cloning (:class:`polytask.agents.bc.BCAgent`)."""

    stddev: float = option(0.1, "fixed policy std σ (the NLL loss is an MSE scaled by 1/(2σ²))")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "stddev")


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

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.twin_q in TWIN_Q_REDUCTIONS,
                 f"agent.twin_q must be one of {TWIN_Q_REDUCTIONS} ('min': clipped double Q), got {self.twin_q!r}")
        _require(0 < self.critic_target_tau <= 1, f"agent.critic_target_tau must be in (0, 1], got "
                 f"{self.critic_target_tau}")
        _require(self.num_expl_steps >= 0, f"agent.num_expl_steps must be >= 0, got {self.num_expl_steps}")
        _check_schedule("stddev_schedule", self.stddev_schedule)


@dataclass
class OTConfig:
    """ROT's optimal-transport rewarder (:class:`polytask.rewards.ot.OTRewarder`); set at the top
    level (``ot.eps=...``)."""

    eps: float = option(0.01, "Sinkhorn entropic regularisation ε")
    num_iters: int = option(100, "Sinkhorn iterations")
    target_return: float = option(10.0, "the first episode's OT rewards are scaled to sum to this magnitude")
    update_target_every: int = option(10_000, "pixels: agent steps between refreshes of the reward encoder")


BC_WEIGHT_TYPES = ("qfilter", "schedule")


@dataclass
class ROTConfig(DrQV2Config):
    """ROT on DrQ-v2 (:class:`polytask.agents.rot.ROTAgent`); irl, load_bc, bc_regularize and ot are
    set at the top level."""

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
        _require(self.bc_weight_type in BC_WEIGHT_TYPES,
                 f"agent.bc_weight_type must be one of {BC_WEIGHT_TYPES}, got {self.bc_weight_type!r}")
        _require(not (self.bc_regularize and self.bc_weight_type == "qfilter" and not self.load_bc),
                 "bc_regularize=true with the soft Q-filter needs the BC policy: add load_bc=true "
                 "(or set agent.bc_weight_type=schedule)")
        _check_schedule("bc_weight_schedule", self.bc_weight_schedule)
        _positive(self, "bc_stddev")
        ot = self.ot if isinstance(self.ot, OTConfig) else make_options(OTConfig, self.ot, "ot")
        self.ot = dataclasses.asdict(ot)


def make_options(config_class: type, options: Mapping[str, Any], where: str) -> Any:
    """A plain options dataclass (:class:`OTConfig`) from ``options``.

    Raises:
        ConfigError: for a key it lacks (naming ``where`` and the keys it has).
    """
    try:
        return config_class(**dict(options))
    except TypeError as e:
        keys = ", ".join(f.name for f in dataclasses.fields(config_class))
        raise ConfigError(f"{where}: {e}; the keys are {keys}") from e


# -- SAC, Policy Decorator ---------------------------------------------------------------------------
@dataclass
class SACConfig(AgentConfig):
    """SAC with automatic entropy tuning (:class:`polytask.agents.sac.SACAgent`)."""

    lr: float = option(3e-4, "Adam learning rate of actor, critics and temperature")
    hidden_dim: int = option(256, "width of the actor and critic MLPs")
    hidden_depth: int = option(2, "hidden layers of the actor and critic MLPs")
    critic_target_tau: float = option(0.005, "Polyak rate τ of the target critics")
    init_temperature: float = option(1.0, "initial temperature α")
    target_entropy: float | None = option(None, "target entropy H̄; null: -|A|")
    log_std_bounds: list[float] = option([-5.0, 2.0], "range of the actor's log σ")
    num_expl_steps: int = option(5000, "uniform random actions before this agent step")
    actor_update_after: int = option(0, "agent step from which actor and α learn (before it: critics only)")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "lr", "hidden_dim", "init_temperature")
        _require(0 < self.critic_target_tau <= 1, f"agent.critic_target_tau must be in (0, 1], got "
                 f"{self.critic_target_tau}")
        _require(len(self.log_std_bounds) == 2 and self.log_std_bounds[0] < self.log_std_bounds[1],
                 f"agent.log_std_bounds must be [low, high] with low < high, got {list(self.log_std_bounds)}")
        _require(self.num_expl_steps >= 0 and self.actor_update_after >= 0,
                 "agent.num_expl_steps and agent.actor_update_after must be >= 0")


RESIDUAL_ACTOR_INPUTS = ("obs", "obs_base_action")


@dataclass
class ResidualConfig(SACConfig):
    """Policy Decorator's residual SAC (:class:`polytask.agents.residual.ResidualAgent`); res_scale and
    prog_explore are set at the top level."""

    res_scale: float = option(0.1, "α: |a - a_base| <= res_scale per action dimension", "res_scale")
    prog_explore: int = option(100_000, "H in agent steps: the residual is on with probability min(step/H, 1); "
                               "<= 0: always", "prog_explore")
    zero_init: bool = option(True, "the mean residual starts at 0: the untrained policy acts as its base")
    actor_input: str = option("obs", "what the residual actor sees: obs | obs_base_action")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "res_scale")
        _require(self.actor_input in RESIDUAL_ACTOR_INPUTS,
                 f"agent.actor_input must be one of {RESIDUAL_ACTOR_INPUTS}, got {self.actor_input!r}")


# -- sequence models ---------------------------------------------------------------------------------
@dataclass
class BeTConfig(AgentConfig):
    """Behavior Transformers (:class:`polytask.agents.bet.BeTAgent`)."""

    lr: float = option(1e-4, "AdamW learning rate")
    weight_decay: float = option(0.1, "AdamW weight decay")
    betas: list[float] = option([0.9, 0.95], "AdamW betas")
    grad_clip: float = option(1.0, "gradient-norm clip")
    window: int = option(10, "observations per window (training and acting)")
    n_bins: int = option(24, "k-means action bins k")
    kmeans_seed: int = option(0, "seed of the k-means fit")
    n_layer: int = option(4, "GPT layers")
    n_head: int = option(4, "GPT attention heads")
    n_embd: int = option(72, "GPT width (the paper's kitchen transformer: 4 layers, 4 heads, 72 wide)")
    dropout: float = option(0.1, "GPT dropout")
    focal_gamma: float = option(2.0, "γ of the focal loss on the bin")
    offset_loss_weight: float = option(100.0, "weight of the offset MSE (offsets are small)")
    greedy_eval: bool = option(False, "false: sample the bin also in evaluation (as the paper); true: argmax")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "lr", "window", "n_bins", "n_layer", "n_head", "n_embd")
        _require(self.n_embd % self.n_head == 0,
                 f"agent.n_embd ({self.n_embd}) must be divisible by agent.n_head ({self.n_head})")
        _require(0 <= self.dropout < 1, f"agent.dropout must be in [0, 1), got {self.dropout}")


DIFFUSION_SAMPLERS = ("ddim", "ddpm")


@dataclass
class DiffusionConfig(AgentConfig):
    """Diffusion Policy, CNN variant (:class:`polytask.agents.diffusion.DiffusionAgent`); CPU-sized
    network (the paper's: down_dims [256,512,1024], step_embed_dim 256)."""

    lr: float = option(3e-4, "AdamW learning rate (paper 1e-4 with warm-up, cosine decay and far more steps)")
    weight_decay: float = option(1e-6, "AdamW weight decay")
    obs_horizon: int = option(2, "T_o: observations the policy sees")
    pred_horizon: int = option(16, "T_p: actions denoised per chunk (divisible by 2^(levels-1))")
    action_horizon: int = option(4, "T_a: actions executed before planning again (Policy Decorator: 4)")
    down_dims: list[int] = option([64, 128, 256], "UNet channels per level")
    step_embed_dim: int = option(128, "diffusion-step embedding width")
    kernel_size: int = option(5, "UNet convolution kernel")
    groups: int = option(8, "GroupNorm groups")
    num_train_timesteps: int = option(100, "DDPM steps K")
    beta_schedule: str = option("squaredcos_cap_v2", "diffusers noise schedule")
    sampler: str = option("ddim", "ddim (few deterministic steps) | ddpm (all K steps)")
    num_inference_steps: int = option(10, "DDIM steps per chunk (see benchmarks/diffusion_latency.py)")
    ema_power: float = option(0.75, "EMA warm-up: decay 1 - (1 + step)^-power, capped at ema_max_decay")
    ema_max_decay: float = option(0.9999, "largest EMA decay")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "lr", "obs_horizon", "num_train_timesteps", "num_inference_steps")
        _require(1 <= self.action_horizon <= self.pred_horizon,
                 f"action_horizon={self.action_horizon} must be in 1..pred_horizon={self.pred_horizon}")
        _require(self.sampler in DIFFUSION_SAMPLERS, f"sampler must be 'ddim' or 'ddpm', got {self.sampler!r}")


# -- distillation ------------------------------------------------------------------------------------
@dataclass
class DistillConfig(AgentConfig):
    """PolyTask's goal-conditioned student (:class:`polytask.agents.distill.DistillAgent`)."""

    lr: float = option(5e-5, "Adam learning rate")
    feature_dim: int = option(512, "pixel trunk width")
    hidden_dim: int = option(1024, "width of the actor MLP")
    hidden_depth: int = option(3, "hidden layers of the actor MLP")
    goal_feature_dim: int = option(64, "goal-image features (goal_modality=pixels only)")
    augment: bool = option(True, "random-shift augmentation of pixels")
    pad: int = option(4, "random-shift size in pixels")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "lr", "feature_dim", "hidden_dim", "goal_feature_dim")


# -- skills: SPiRL, SkiLD, EXTRACT -------------------------------------------------------------------
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
        _require(self.horizon >= 1 and self.z_dim >= 1,
                 f"agent.horizon and agent.z_dim must be >= 1, got {self.horizon} and {self.z_dim}")
        _positive(self, "lr", "hidden_dim")


@dataclass
class SkillPriorConfig(SkillConfig):
    """SPiRL's skill VAE and prior p(z|s) (:class:`polytask.agents.skills.SkillPriorAgent`; RAdam)."""

    beta: float = option(5e-4, "KL weight (SPiRL kitchen 5e-4, maze 1e-2)")


@dataclass
class SkillPosteriorConfig(SkillConfig):
    """SkiLD's skill posterior q(z|s) on the demos (:class:`polytask.agents.skills.SkillPosteriorAgent`);
    the sizes must match the skill model's."""


@dataclass
class DemoDiscriminatorConfig(AgentConfig):
    """SkiLD's demo discriminator D(s) (:class:`polytask.agents.skills.DemoDiscriminatorAgent`)."""

    lr: float = option(1e-3, "Adam learning rate")
    hidden_dim: int = option(32, "MLP width")
    hidden_depth: int = option(2, "MLP hidden layers")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "lr", "hidden_dim")


@dataclass
class SpirlConfig(SACConfig):
    """SPiRL's skill-space SAC (:class:`polytask.agents.skill_rl.SkillSACAgent`); target_entropy and
    log_std_bounds are unused (the KL replaces the entropy)."""

    target_divergence: float | None = option(1.0, "nats of KL(π ‖ prior) α is tuned toward (SPiRL: maze 1, "
                                                "kitchen 5); null: α fixed")
    bound: float = option(2.0, "skills are bound·tanh(u)")
    eval_mean_skill: bool = option(False, "true: evaluate with bound·tanh(mean); false: draw skills as in training")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "bound")
        _require(self.target_divergence is None or self.target_divergence > 0,
                 f"agent.target_divergence must be > 0 or null, got {self.target_divergence}")


SKILD_INIT_FROM = ("prior", "posterior")


@dataclass
class SkiLDConfig(SpirlConfig):
    """SkiLD (:class:`polytask.agents.skill_rl.SkiLDAgent`)."""

    target_divergence_q: float | None = option(1.0, "nats of KL(π ‖ posterior) α_q is tuned toward; null: fixed")
    init_temperature_q: float = option(0.1, "initial α_q")
    env_reward_weight: float = option(0.9, "λ: reward = λ·r + (1-λ)·(log D - log(1-D))")
    imitation: bool = option(False, "true: the discriminator reward alone (λ = 0)")
    init_from: str = option("prior", "the network the policy starts as: prior | posterior")
    posterior_kl_clip: float | None = option(100.0, "nats: KL(π ‖ posterior) clipped per state; null: not clipped")

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0.0 <= self.env_reward_weight <= 1.0,
                 f"agent.env_reward_weight must be in [0, 1], got {self.env_reward_weight}")
        _require(self.init_from in SKILD_INIT_FROM, f"agent.init_from must be 'prior' or 'posterior', got "
                 f"{self.init_from!r}")
        _positive(self, "init_temperature_q")


@dataclass
class ExtractSkillConfig(AgentConfig):
    """EXTRACT's skill model (:class:`polytask.agents.extract.ExtractSkillAgent`)."""

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
            _require(getattr(self, key) >= 1, f"agent.{key} must be >= 1, got {getattr(self, key)}")
        _require(self.z_bound > 0, f"agent.z_bound must be > 0, got {self.z_bound}")
        _require(0.0 < self.progress_done <= 1.0, f"agent.progress_done must be in (0, 1], got {self.progress_done}")


# -- registration ------------------------------------------------------------------------------------
#: ConfigStore name (the yaml's) -> the options of its agent; ``ot`` is ROT's top-level ``ot`` group
SCHEMAS: dict[str, type] = {
    "bc": BCConfig, "drqv2": ROTConfig, "sac": SACConfig, "residual": ResidualConfig, "bet": BeTConfig,
    "diffusion": DiffusionConfig, "distill": DistillConfig, "skill_prior": SkillPriorConfig,
    "skill_posterior": SkillPosteriorConfig, "demo_discriminator": DemoDiscriminatorConfig,
    "spirl": SpirlConfig, "skild": SkiLDConfig, "extract_skill": ExtractSkillConfig, "ot": OTConfig}


def schema(config_class: type) -> type:
    """``config_class`` plus the keys every agent yaml sets and its agent does not take: ``_target_``
    (the agent class), ``name`` and ``trainer`` (mandatory)."""
    header = [(key, str, dataclasses.field(default=MISSING)) for key in ("_target_", "name", "trainer")]
    made = dataclasses.make_dataclass(config_class.__name__, header, bases=(config_class,))
    made.__module__ = config_class.__module__
    return made


def register_schemas() -> None:
    """Store :data:`SCHEMAS` in Hydra's ConfigStore, group ``agent_schema`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, config_class in SCHEMAS.items():
        store.store(group="agent_schema", name=name,
                    node=config_class if config_class is OTConfig else schema(config_class))
