"""Options of the sequence-model policies: Behavior Transformers and Diffusion Policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from polytask.agents.configs.base import AgentConfig, option, positive, require


@dataclass
class BeTConfig(AgentConfig):
    """Behavior Transformers (:class:`polytask.agents.bet.BeTAgent`)."""

    schema_name: ClassVar[str] = "bet"  # cfgs/agent/bet.yaml extends it

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
        positive(self, "lr", "window", "n_bins", "n_layer", "n_head", "n_embd")
        require(self.n_embd % self.n_head == 0,
                 f"agent.n_embd ({self.n_embd}) must be divisible by agent.n_head ({self.n_head})")
        require(0 <= self.dropout < 1, f"agent.dropout must be in [0, 1), got {self.dropout}")


DIFFUSION_SAMPLERS = ("ddim", "ddpm")


@dataclass
class DiffusionConfig(AgentConfig):
    """Diffusion Policy, CNN variant (:class:`polytask.agents.diffusion.DiffusionAgent`); CPU-sized
    network (the paper's: down_dims [256,512,1024], step_embed_dim 256)."""

    schema_name: ClassVar[str] = "diffusion"  # cfgs/agent/diffusion.yaml extends it

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
        positive(self, "lr", "obs_horizon", "num_train_timesteps", "num_inference_steps")
        require(1 <= self.action_horizon <= self.pred_horizon,
                 f"action_horizon={self.action_horizon} must be in 1..pred_horizon={self.pred_horizon}")
        require(self.sampler in DIFFUSION_SAMPLERS, f"sampler must be 'ddim' or 'ddpm', got {self.sampler!r}")
