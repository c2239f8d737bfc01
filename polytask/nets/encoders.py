"""Pixel encoder and augmentation of DrQ-v2 (Yarats et al., 2021, §3 and App. B)."""

from __future__ import annotations

import torch
from torch import nn


class PixelEncoder(nn.Module):
    """4 conv layers × 32 channels (3×3; stride 2 then 1), ReLU, flattened.

    Input: uint8 or float (B, C, 84, 84) with values in [0, 255]; scaled to [-0.5, 0.5].
    Output: float32 (B, repr_dim), ``repr_dim = 32 * 35 * 35`` for 84×84 inputs.
    """

    def __init__(self, obs_shape: tuple[int, int, int], channels: int = 32):
        super().__init__()
        c, h, w = obs_shape
        self.convnet = nn.Sequential(
            nn.Conv2d(c, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
        )
        with torch.no_grad():
            self.repr_dim = int(self.convnet(torch.zeros(1, c, h, w)).numel())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 - 0.5
        return self.convnet(x).flatten(1)


class RandomShiftsAug(nn.Module):
    """Random shift augmentation (DrQ-v2): replicate-pad by ``pad`` pixels, then crop back to the
    original size at a random integer offset per image.

    Input/output: (B, C, H, W), same dtype (uint8 frames are shifted without conversion).
    """

    def __init__(self, pad: int = 4):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad == 0:
            return x
        b, c, h, w = x.shape
        dtype = x.dtype
        padded = nn.functional.pad(x.float(), (self.pad,) * 4, mode="replicate")
        sy = torch.randint(0, 2 * self.pad + 1, (b,), device=x.device)
        sx = torch.randint(0, 2 * self.pad + 1, (b,), device=x.device)
        rows = (sy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
        cols = (sx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
        out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]  # (B, H, W, C)
        return out.permute(0, 3, 1, 2).to(dtype)
