"""Networks of EXTRACT's skill model (Zhang et al. 2024, §3.2): a skill is a discrete id k (one of K
clusters) with a continuous argument z.

- :class:`ArgumentEncoder` q(z | a_1:L, k): an LSTM over a segment's actions, each with the one-hot
  skill, its output at the segment's last step mapped to a diagonal Gaussian over the unsquashed
  argument u (z = bound·tanh(u)).
- :class:`SkillDecoder` π(a_1:L, progress_1:L | z, k): open-loop, an LSTM fed the argument and the
  one-hot skill at every step, to the action means and the progress through the skill (sigmoid, 0–1).
- priors: p(k | s) a categorical MLP (logits), p(z | s, k) a Gaussian MLP over u
  (:class:`polytask.nets.skills.GaussianMLP` on [s, one-hot k]).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from polytask.nets.skills import LOG_STD_MAX, LOG_STD_MIN


class ArgumentEncoder(nn.Module):
    """q(u | a_1:L, k) over padded segments.

    Input: actions float32 (B, L, A), one-hot skills float32 (B, K), lengths int64 (B,) (≥ 1; steps
    from ``lengths`` on are padding and ignored). Output: ``(mean, log_std)`` float32 (B, Z) each.
    """

    def __init__(self, action_dim: int, num_skills: int, z_dim: int, hidden_dim: int):
        super().__init__()
        self.lstm = nn.LSTM(action_dim + num_skills, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, 2 * z_dim)

    def forward(self, actions: torch.Tensor, onehot: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([actions, onehot[:, None].expand(-1, actions.shape[1], -1)], dim=-1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        mean, log_std = self.head(h[-1]).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class SkillDecoder(nn.Module):
    """π(a_1:L, progress_1:L | z, k), open-loop as EXTRACT's: an LSTM whose input at every step is the
    argument and the one-hot skill, its outputs mapped to the action means and the progress through
    the skill (sigmoid, 0–1).

    Input: arguments float32 (B, Z), one-hot skills float32 (B, K), ``steps`` L. Output: action means
    float32 (B, L, A) (unbounded; acting clips them) and progress float32 (B, L) in (0, 1).
    """

    def __init__(self, z_dim: int, num_skills: int, action_dim: int, hidden_dim: int):
        super().__init__()
        self.lstm = nn.LSTM(z_dim + num_skills, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, action_dim + 1)

    def forward(self, z: torch.Tensor, onehot: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.lstm(torch.cat([z, onehot], dim=-1)[:, None].expand(-1, steps, -1))
        out = self.head(out)
        return out[..., :-1], torch.sigmoid(out[..., -1])
