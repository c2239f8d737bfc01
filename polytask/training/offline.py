"""Offline trainer (BC): gradient steps on batches sampled from a :class:`DemoBuffer`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from polytask.data.buffer import DemoBuffer
from polytask.errors import require_features
from polytask.training.evaluator import Evaluator
from polytask.training.inputs import make_agent
from polytask.training.run import env_factory, load_demo_buffer, make_evaluator, tasks_of
from polytask.training.trainer import Trainer


class OfflineTrainer(Trainer):
    """One agent update per step on ``cfg.batch_size`` transitions from ``buffer``."""

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator: Evaluator, buffer: DemoBuffer):
        super().__init__(cfg, run_dir, agent, evaluator)
        self.buffer = buffer

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> OfflineTrainer:
        """Demos of every task (collected where missing), the agent and the evaluator."""
        buffer, _ = load_demo_buffer(cfg)
        env = env_factory(cfg)(tasks_of(cfg)[0])
        agent = make_agent(cfg, env)
        env.close()
        return cls(cfg, run_dir, agent, make_evaluator(cfg), buffer)

    def train_step(self) -> dict[str, float]:
        return self.agent.update(self.buffer.sample(self.cfg.batch_size), self.step)

    def extra_state(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])


class WindowTrainer(OfflineTrainer):
    """Offline trainer for sequence policies (Diffusion Policy, BeT): each step updates the agent on
    ``cfg.batch_size`` windows of consecutive demo steps shaped by the agent's ``window``
    ``(obs_steps, action_steps, action_start)`` (:meth:`DemoBuffer.sample_windows`). Before training
    the agent fits its dataset statistics (normaliser; BeT: action bins) on all demo states and
    actions (``agent.fit_dataset``); a resumed run then restores the saved ones."""

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> WindowTrainer:
        """As :meth:`OfflineTrainer.from_config`, then ``agent.fit_dataset``.

        Raises:
            ConfigError: for ``obs_type`` other than ``features`` (checked before any demo is loaded).
        """
        require_features(cfg.agent.name, cfg.obs_type)  # before any demo is loaded
        trainer = super().from_config(cfg, run_dir)
        trainer.agent.fit_dataset(trainer.buffer.obs["state"], trainer.buffer.action)
        return trainer

    def train_step(self) -> dict[str, float]:
        return self.agent.update(self.buffer.sample_windows(self.cfg.batch_size, *self.agent.window), self.step)
