"""Distillation trainer (PolyTask stage 3): one goal-conditioned student trained offline on every
task's relabelled expert data, evaluated on every task."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from polytask.data.buffer import DemoBuffer
from polytask.data.goals import GOAL_MODALITIES, image_goals, language_goals, onehot_goals
from polytask.errors import ConfigError
from polytask.suites import describe_task
from polytask.training.inputs import make_agent
from polytask.training.offline import OfflineTrainer
from polytask.training.run import env_factory, make_evaluator, tasks_of


class DistillTrainer(OfflineTrainer):
    """:class:`OfflineTrainer` over the relabelled data of all tasks (``task_id`` = task index)."""

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> DistillTrainer:
        """Relabelled data per task (made where missing), goals of ``cfg.goal_modality``, the
        student and an evaluator over all tasks.

        Raises:
            ConfigError: for an unknown goal modality.
        """
        from polytask.training.demos import frame_stack_of, load_or_relabel

        if cfg.goal_modality not in GOAL_MODALITIES:
            raise ConfigError(f"goal_modality must be one of {GOAL_MODALITIES}, got {cfg.goal_modality!r}")
        tasks = tasks_of(cfg)
        data, env = {}, None
        for i, task in enumerate(tasks):
            env = env_factory(cfg)(task)
            data[i] = load_or_relabel(cfg, task, env)
            if i < len(tasks) - 1:
                env.close()
        if cfg.goal_modality == "onehot":
            goals = onehot_goals(len(tasks))
        elif cfg.goal_modality == "language":
            goals = language_goals([describe_task(cfg.suite, t) for t in tasks])
        else:
            goals = image_goals(data)
        obs_keys = ("pixels",) if cfg.obs_type == "pixels" else ("state",)
        buffer = DemoBuffer(data, obs_keys, frame_stack=frame_stack_of(cfg), seed=cfg.seed)
        agent = make_agent(cfg, env, goals=goals)
        env.close()
        return cls(cfg, run_dir, agent, make_evaluator(cfg), buffer)
