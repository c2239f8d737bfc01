"""A small causal transformer over observation windows (the minGPT trunk of Behavior Transformers,
Shafiullah et al. 2022), built from ``torch.nn.TransformerEncoderLayer`` with a causal mask."""

from __future__ import annotations

import torch
from torch import nn


class CausalTransformer(nn.Module):
    """GPT-style decoder-only transformer: a linear token embedding of each observation plus a
    learned position embedding, ``n_layer`` pre-LayerNorm self-attention blocks where step t attends
    to steps ≤ t only, a final LayerNorm and a linear head.

    Args:
        input_dim: D, size of each observation token.
        output_dim: size of each output (BeT: k logits + k·A offsets).
        max_len: longest window (the position table's size).
        n_layer, n_head, n_embd: depth, attention heads and width (BeT kitchen: 4, 4, 72 —
            ``n_embd`` must be divisible by ``n_head``).
        dropout: dropout inside the blocks and on the embeddings.

    Input: float32 (B, W, D) with W ≤ max_len. Output: float32 (B, W, output_dim); output t depends
    on inputs 0..t only.
    """

    def __init__(self, input_dim: int, output_dim: int, max_len: int, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 72, dropout: float = 0.1):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.max_len = max_len
        self.embed = nn.Linear(input_dim, n_embd)
        self.pos = nn.Parameter(torch.zeros(1, max_len, n_embd))
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, output_dim)
        mask = torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)
        self.apply(self._init)
        nn.init.normal_(self.pos, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):  # GPT-2 initialisation
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        W = x.shape[1]
        if W > self.max_len:
            raise ValueError(f"window of {W} steps is longer than the transformer's max_len={self.max_len}")
        h = self.drop(self.embed(x) + self.pos[:, :W])
        h = self.blocks(h, mask=self.causal_mask[:W, :W], is_causal=True)
        return self.head(self.norm(h))
