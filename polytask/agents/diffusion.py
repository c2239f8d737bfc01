"""Diffusion Policy (Chi et al. 2023), CNN variant, on state features: the base policy of Policy
Decorator.

The policy models p(A_t | O_t) over an action sequence A_t = a_t .. a_{t+T_p−1} (prediction horizon
T_p = 16) given the observation history O_t = o_{t−T_o+1} .. o_t (T_o = 2) by denoising diffusion
(DDPM, Ho et al. 2020):

- training (Chi et al. Eq. 5): ``L = ‖ε − ε_θ(√ᾱ_k A⁰ + √(1−ᾱ_k) ε, k, O)‖²`` with k uniform in
  0..K−1 (K = 100) and ε ~ N(0, I); ᾱ from the squared-cosine schedule (Nichol & Dhariwal 2021);
- acting (Eq. 4): start from A^K ~ N(0, I) and denoise with DDIM (Song et al. 2021, deterministic,
  a few steps) or DDPM (all K steps) using the EMA weights; execute the first T_a = 4 actions of the
  chunk (closed-loop action-sequence prediction) and plan again.

Schedulers and the EMA come from ``diffusers`` (``pip install -e ".[decorator]"``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from polytask.agents.base import Agent
from polytask.agents.configs.sequence import DiffusionConfig
from polytask.agents.sequence import MinMaxNormalizer, PolicyMemory, env_slots
from polytask.errors import require_features
from polytask.nets.unet1d import ConditionalUnet1D


def import_diffusers():
    """``(DDPMScheduler, DDIMScheduler, EMAModel)`` from diffusers.

    Raises:
        ImportError: naming the pip extra that installs it.
    """
    try:
        from diffusers import DDIMScheduler, DDPMScheduler
        from diffusers.training_utils import EMAModel
    except ImportError as e:
        raise ImportError("agent=diffusion needs diffusers: pip install -e \".[decorator]\" "
                          "(or pip install 'diffusers>=0.30')") from e
    return DDPMScheduler, DDIMScheduler, EMAModel


class DiffusionAgent(Agent):
    """Diffusion Policy with a FiLM-conditioned 1-D temporal UNet, trained offline on demo windows.

    Acting is stateful: per ``obs["env_index"]`` the agent keeps the last ``obs_horizon``
    observations and the actions left of its current chunk, clears both where ``obs["is_first"]``,
    and denoises new chunks for all envs whose queue is empty in one batched call. Without those
    keys row b is env b; call :meth:`reset` at an episode start.

    Args:
        obs_shapes: shape per observation key; uses ``obs_shapes["state"]`` (D,).
        action_dim: A; actions are in [-1, 1] (samples are clipped there).
        obs_type: must be ``"features"``.
        device: torch device.
        **options: :class:`polytask.agents.configs.sequence.DiffusionConfig` (``self.cfg``): AdamW (the paper
            also warms up and cosine-decays the learning rate, which is left out here), the horizons
            T_o, T_p, T_a, the UNet (:class:`ConditionalUnet1D`), the DDPM forward process, the
            sampler, and the EMA of the weights (the EMA weights act).
    """

    config_class = DiffusionConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        require_features("diffusion", obs_type)
        DDPMScheduler, DDIMScheduler, EMAModel = import_diffusers()
        self.device = torch.device(device)
        self.obs_dim, self.action_dim = int(obs_shapes["state"][0]), action_dim
        self.obs_horizon, self.pred_horizon, self.action_horizon = cfg.obs_horizon, cfg.pred_horizon, cfg.action_horizon
        self.num_inference_steps, self.sampler = cfg.num_inference_steps, cfg.sampler
        self.normalizer = MinMaxNormalizer(self.obs_dim).to(self.device)
        self.net = ConditionalUnet1D(action_dim, cfg.obs_horizon * self.obs_dim, tuple(cfg.down_dims),
                                     cfg.step_embed_dim, cfg.kernel_size, cfg.groups).to(self.device)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False).eval()
        self.ema = EMAModel(self.net.parameters(), decay=cfg.ema_max_decay, use_ema_warmup=True, inv_gamma=1.0,
                            power=cfg.ema_power)
        self._ema_stale = False  # ema_net lags the EMA's shadow weights
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # clip_sample keeps each step's estimate of the clean actions in [-1, 1]
        sched = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule, clip_sample=True,
                     prediction_type="epsilon")
        self.noise_scheduler = DDPMScheduler(**sched)
        self.ddim = DDIMScheduler(**sched, set_alpha_to_one=True)
        self.memory = PolicyMemory(cfg.obs_horizon)

    @property
    def window(self) -> tuple[int, int, int]:
        """Training windows ``(obs_steps, action_steps, action_start)`` for
        :meth:`polytask.data.buffer.DemoBuffer.sample_windows`: observations t−T_o+1..t, actions
        t..t+T_p−1."""
        return self.obs_horizon, self.pred_horizon, 0

    def fit_dataset(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Fit the observation normaliser on the demo states float32 (N, D) (``actions`` (N, A) are
        already in [-1, 1] and are not rescaled)."""
        self.normalizer.fit(states)

    def _cond(self, obs: torch.Tensor) -> torch.Tensor:
        """float32 (B, T_o, D) raw observations → normalised, flattened (B, T_o·D)."""
        return self.normalizer(obs.to(self.device, torch.float32)).flatten(1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Noise-prediction MSE (Chi et al. Eq. 5) on a batch of windows: ``batch["state"]`` float32
        (B, T_o, D), ``batch["action"]`` float32 (B, T_p, A). Returns a scalar tensor."""
        cond = self._cond(batch["state"])
        actions = batch["action"].to(self.device, torch.float32)
        noise = torch.randn_like(actions)
        k = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(actions),), device=self.device)
        noisy = self.noise_scheduler.add_noise(actions, noise, k)
        return (self.net(noisy, k, cond) - noise).pow(2).mean()

    def update(self, batch: dict[str, torch.Tensor], step: int = 0) -> dict[str, float]:
        """One AdamW step on :meth:`loss`, then an EMA step. Returns ``{"loss", "ema_decay"}``."""
        loss = self.loss(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.ema.step(self.net.parameters())
        self._ema_stale = True
        return {"loss": loss.item(), "ema_decay": float(self.ema.cur_decay_value)}

    def _acting_net(self) -> nn.Module:
        if self._ema_stale:
            self.ema.copy_to(self.ema_net.parameters())
            self._ema_stale = False
        return self.ema_net

    @torch.no_grad()
    def sample_chunks(self, obs_hist: np.ndarray | torch.Tensor, num_inference_steps: int | None = None,
                      sampler: str | None = None) -> torch.Tensor:
        """Denoise action chunks from Gaussian noise with the EMA network (Chi et al. Eq. 4).

        Args:
            obs_hist: float32 (B, T_o, D) raw observation histories, oldest first.
            num_inference_steps: DDIM steps (default: the agent's); ignored by DDPM.
            sampler: ``"ddim"`` (deterministic given the noise) or ``"ddpm"`` (K stochastic steps);
                default: the agent's.

        Returns:
            float32 (B, T_p, A) on the agent's device, clipped to [-1, 1].
        """
        cond = self._cond(torch.as_tensor(obs_hist))
        sampler = sampler or self.sampler
        if sampler == "ddim":
            scheduler = self.ddim
            scheduler.set_timesteps(num_inference_steps or self.num_inference_steps)
        elif sampler == "ddpm":
            scheduler = self.noise_scheduler
            scheduler.set_timesteps(scheduler.config.num_train_timesteps)
        else:
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        net = self._acting_net()
        x = torch.randn(len(cond), self.pred_horizon, self.action_dim, device=self.device)
        for k in scheduler.timesteps:
            x = scheduler.step(net(x, k.to(self.device), cond), k, x).prev_sample
        return x.clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """The next action of each env, from its queued chunk (a new chunk where the queue is empty).

        Args:
            obs: ``state`` float32 (B, D); optionally ``env_index`` int64 (B,) and ``is_first`` bool (B,).
            eval_mode, step: unused (sampling is always stochastic through the initial noise).

        Returns:
            float32 (B, A) in [-1, 1].
        """
        state = np.asarray(obs["state"], np.float32)
        idx, first = env_slots(obs, len(state))
        hist = self.memory.observe(state, idx, first)
        need = self.memory.needs_actions(idx)
        if need.any():
            chunks = self.sample_chunks(hist[need])[:, :self.action_horizon]
            self.memory.push(idx[need], chunks.cpu().numpy())
        return self.memory.pop(idx)

    def reset(self) -> None:
        """Forget every env's observation history and queued actions."""
        self.memory.reset()

    def train(self, training: bool = True) -> None:
        self.net.train(training)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                "normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        shadow = state["ema"]["shadow_params"]
        if [tuple(p.shape) for p in shadow] != [tuple(p.shape) for p in self.net.parameters()]:
            raise ValueError("the EMA weights in this state do not fit the network; it was saved by a Diffusion "
                             "Policy with other sizes (down_dims, step_embed_dim, horizons)")
        self.ema.load_state_dict(state["ema"])
        self.ema.to(self.device)
        self.ema.copy_to(self.ema_net.parameters())  # now, so a loaded (frozen) policy's weights stay fixed
        self._ema_stale = False
        self.opt.load_state_dict(state["opt"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.memory.reset()
