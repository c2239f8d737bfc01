"""The 1-D conditional temporal UNet of Diffusion Policy (Chi et al. 2023, the "CNN-based" variant).

The noisy action sequence is convolved along time; every residual block is FiLM-conditioned
(Perez et al. 2018: a per-channel scale and bias computed from the condition) on the sinusoidal
embedding of the diffusion step k concatenated with the flattened observation history.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the diffusion step (Vaswani et al. 2017, §3.5;
    used as in DDPM, Ho et al. 2020): ``[sin(k·ω_i), cos(k·ω_i)]`` with ``ω_i = 10000^{−i/(d/2−1)}``.

    Input: k int64 or float (B,). Output: float32 (B, dim). ``dim`` must be even.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"step embedding size must be even, got {dim}")
        self.dim = dim

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=k.device, dtype=torch.float32)
                          * (-math.log(10000.0) / max(half - 1, 1)))
        angles = k.float()[:, None] * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvNormMish(nn.Sequential):
    """Conv1d (same padding) → GroupNorm → Mish. Input float32 (B, C_in, T); output (B, C_out, T)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, groups: int):
        super().__init__(nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(groups, out_ch), nn.Mish())


class FiLMResBlock1D(nn.Module):
    """Residual block of two :class:`ConvNormMish` layers; after the first, the features are
    modulated by FiLM: ``h ← γ(c) ⊙ h + β(c)`` with ``(γ, β) = Linear(Mish(c))`` per channel.

    Input: x float32 (B, C_in, T), cond float32 (B, cond_dim). Output: float32 (B, C_out, T).
    """

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int = 5, groups: int = 8):
        super().__init__()
        self.conv1 = ConvNormMish(in_ch, out_ch, kernel_size, groups)
        self.conv2 = ConvNormMish(out_ch, out_ch, kernel_size, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        scale, bias = self.film(cond)[:, :, None].chunk(2, dim=1)  # each (B, C_out, 1)
        h = self.conv2(scale * h + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Diffusion Policy's noise-prediction network ε_θ(A^k, k, O) (Chi et al. 2023, Eq. 4–5).

    Encoder: per level two :class:`FiLMResBlock1D` then a stride-2 Conv1d (all levels but the last);
    two middle blocks at the widest level; decoder: for each encoder level but the first, deepest
    first, its output is concatenated (skip connection), two blocks, then a stride-2
    ConvTranspose1d back to that level's input length; a final conv block and a 1×1 conv back to
    the action size. The condition of every block is
    ``[step_embedding(k), obs_cond]``.

    Args:
        action_dim: A, channels of the denoised sequence.
        cond_dim: size of the flattened observation condition (obs_horizon · obs_dim).
        down_dims: channels per level; the sequence length must be divisible by
            ``2 ** (len(down_dims) − 1)`` (16 works for 3 levels). The paper uses (256, 512, 1024).
        step_embed_dim: size of the diffusion-step embedding (paper: 256).
        kernel_size, groups: conv kernel size and GroupNorm groups (paper: 5 and 8).

    Input: sample float32 (B, T, A) (noisy actions), k int64 (B,) or a scalar (diffusion step),
    obs_cond float32 (B, cond_dim). Output: float32 (B, T, A), the predicted noise ε.
    """

    def __init__(self, action_dim: int, cond_dim: int, down_dims: tuple[int, ...] = (64, 128, 256),
                 step_embed_dim: int = 128, kernel_size: int = 5, groups: int = 8):
        super().__init__()
        down_dims = tuple(int(d) for d in down_dims)
        if any(d % groups for d in down_dims):
            raise ValueError(f"every down_dims entry must be divisible by groups={groups}, got {down_dims}")
        self.num_levels = len(down_dims)
        self.step_embed = nn.Sequential(SinusoidalStepEmbedding(step_embed_dim),
                                        nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
                                        nn.Linear(4 * step_embed_dim, step_embed_dim))
        c = step_embed_dim + cond_dim
        dims = (action_dim, *down_dims)
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([
                FiLMResBlock1D(cin, cout, c, kernel_size, groups),
                FiLMResBlock1D(cout, cout, c, kernel_size, groups),
                nn.Identity() if last else nn.Conv1d(cout, cout, 3, stride=2, padding=1)]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock1D(mid, mid, c, kernel_size, groups),
                                  FiLMResBlock1D(mid, mid, c, kernel_size, groups)])
        self.up = nn.ModuleList()
        for cout, cin in reversed(list(zip(down_dims[:-1], down_dims[1:]))):  # one per downsampling
            self.up.append(nn.ModuleList([
                FiLMResBlock1D(2 * cin, cout, c, kernel_size, groups),
                FiLMResBlock1D(cout, cout, c, kernel_size, groups),
                nn.ConvTranspose1d(cout, cout, 4, stride=2, padding=1)]))
        self.head = nn.Sequential(ConvNormMish(down_dims[0], down_dims[0], kernel_size, groups),
                                  nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, sample: torch.Tensor, k: torch.Tensor | int, obs_cond: torch.Tensor) -> torch.Tensor:
        B, T, _ = sample.shape
        if T % 2 ** (self.num_levels - 1):
            raise ValueError(f"sequence length {T} must be divisible by {2 ** (self.num_levels - 1)} "
                             f"for a UNet with {self.num_levels} levels")
        k = torch.as_tensor(k, device=sample.device)
        if k.ndim == 0:
            k = k.expand(B)
        cond = torch.cat([self.step_embed(k), obs_cond], dim=-1)
        x = sample.transpose(1, 2)  # (B, A, T): convolve along time
        skips = []  # outputs of the levels below the first, consumed by the decoder in reverse
        for i, (block1, block2, downsample) in enumerate(self.down):
            x = block2(block1(x, cond), cond)
            if i > 0:
                skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)
        for block1, block2, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = upsample(block2(block1(x, cond), cond))
        return self.head(x).transpose(1, 2)
