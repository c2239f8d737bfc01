"""The PolyTask student (behavior distillation, Haldar & Pinto, 2023, §3.3): one goal-conditioned
policy for many tasks, trained by regression on the actions that each task's expert gives at the
states it visited."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from polytask.agents.base import Agent
from polytask.agents.configs.distill import DistillConfig
from polytask.nets.encoders import PixelEncoder, RandomShiftsAug
from polytask.nets.mlp import make_trunk, mlp, orthogonal_init


class DistillAgent(Agent):
    """Goal-conditioned multi-task student.

    The observation encoder (DrQ-v2 conv + Linear/LayerNorm/Tanh trunk for pixels; identity for
    features) and the goal code (a fixed vector per task, or a goal image through its own conv
    encoder) are concatenated and mapped by an MLP to a tanh action. Loss: mean squared error to
    the relabelled expert action.

    The goals travel in :meth:`state_dict` (``"goals"``) and are a constructor argument named in
    :attr:`state_init_args`, so :func:`polytask.training.build.load_policy` rebuilds the student from
    its weights file alone.

    Args:
        obs_shapes, action_dim, obs_type, device: as for :class:`polytask.agents.bc.BCAgent`.
        goals: per task its goal: float32 (N, G) vectors (one-hot or sentence embeddings) or uint8
            (N, 3, H, W) goal images, as an array or tensor; observations carry ``task_id`` (B,)
            indices into it.
        **options: :class:`polytask.agents.configs.distill.DistillConfig` (``self.cfg``).
    """

    config_class = DistillConfig

    #: constructor arguments that :meth:`state_dict` holds under the same names
    state_init_args = ("goals",)

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str, goals: np.ndarray,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        self.device = torch.device(device)
        self.obs_key = "pixels" if obs_type == "pixels" else "state"
        shape = tuple(obs_shapes[self.obs_key])
        if self.obs_key == "pixels":
            enc = PixelEncoder(shape)
            trunk, obs_dim = make_trunk(enc.repr_dim, cfg.feature_dim, True)
            self.encoder: nn.Module = nn.Sequential(enc, trunk)
        else:
            self.encoder = nn.Identity()
            obs_dim = shape[0]
        self.goals = torch.as_tensor(goals if torch.is_tensor(goals) else np.asarray(goals), device=self.device)
        if self.goals.dtype == torch.uint8:  # goal images
            genc = PixelEncoder(tuple(self.goals.shape[1:]))
            trunk, goal_dim = make_trunk(genc.repr_dim, cfg.goal_feature_dim, True)
            self.goal_encoder: nn.Module = nn.Sequential(genc, trunk)
        else:
            self.goals = self.goals.float()
            self.goal_encoder = nn.Identity()
            goal_dim = self.goals.shape[1]
        self.policy = mlp(obs_dim + goal_dim, cfg.hidden_dim, action_dim, cfg.hidden_depth)
        self.encoder.to(self.device)
        self.goal_encoder.to(self.device)
        self.policy.to(self.device)
        for m in (self.encoder, self.goal_encoder, self.policy):
            m.apply(orthogonal_init)
        self.aug: nn.Module = RandomShiftsAug(cfg.pad) if (cfg.augment and self.obs_key == "pixels") else nn.Identity()
        self.params = [p for m in (self.encoder, self.goal_encoder, self.policy) for p in m.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr)

    def _mean(self, obs: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        goal = self.goal_encoder(self.goals[task_id])
        return torch.tanh(self.policy(torch.cat([self.encoder(obs), goal], dim=-1)))

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Mean actions float32 (B, A) for ``obs[obs_key]`` (B, ...) and ``obs["task_id"]`` (B,)."""
        x = torch.as_tensor(np.asarray(obs[self.obs_key]), device=self.device)
        task_id = torch.as_tensor(np.asarray(obs["task_id"]), device=self.device, dtype=torch.long)
        return self._mean(x, task_id).cpu().numpy().astype(np.float32)

    def update(self, batch: dict[str, torch.Tensor], step: int = 0) -> dict[str, float]:
        """One step of MSE regression on ``batch`` (``obs_key`` (B, ...), ``task_id`` (B,),
        ``action`` (B, A)). Returns ``{"loss": MSE}``."""
        obs = self.aug(batch[self.obs_key].to(self.device))
        mu = self._mean(obs, batch["task_id"].to(self.device))
        loss = (mu - batch["action"].to(self.device)).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def restrict_to_task(self, task_id: int) -> None:
        """Keep only the goal of task ``task_id`` (an index into ``goals``): afterwards observations
        with ``task_id`` 0 get that task's goal, as a single-task run (a residual policy on this
        student, its one-task evaluator) passes them.

        Raises:
            IndexError: if there is no task ``task_id``.
        """
        if not 0 <= task_id < len(self.goals):
            raise IndexError(f"task_id {task_id} is not one of this student's {len(self.goals)} tasks")
        self.goals = self.goals[task_id:task_id + 1]

    def train(self, training: bool = True) -> None:
        for m in (self.encoder, self.goal_encoder, self.policy):
            m.train(training)

    def state_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.state_dict(), "goal_encoder": self.goal_encoder.state_dict(),
                "policy": self.policy.state_dict(), "goals": self.goals.cpu(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore networks, optimiser and goals.

        Raises:
            ValueError: if the saved goals differ in shape or dtype from this student's (another
                task set or goal modality).
        """
        goals = torch.as_tensor(state["goals"])
        if goals.shape != self.goals.shape or goals.dtype != self.goals.dtype:
            raise ValueError(f"the saved goals ({goals.dtype} {tuple(goals.shape)}) do not fit this student's "
                             f"({self.goals.dtype} {tuple(self.goals.shape)}): it was trained on other tasks or "
                             "another goal_modality")
        for k in ("encoder", "goal_encoder", "policy", "opt"):
            getattr(self, k).load_state_dict(state[k])
        self.goals = goals.to(self.device)
