"""``train_collective.py``'s dispatch of ``mode=`` (:func:`run_mode`), and the modes that run the
project's online trainer: SAC workers (``train_worker``) and students (``train_student``,
``finetune_student``). The other modes are in :mod:`polytask.training.collective` (data, online
distillation with a per-task student), :mod:`polytask.training.collective_dagger` (online distillation
with the collective acting) and :mod:`polytask.training.collective_fit` (transformer, collective actor,
evaluation).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from polytask.collective.data import actor_teacher, check_collective_options, command, online_student
from polytask.errors import ConfigError
from polytask.training import collective_fit
from polytask.training.build import build_trainer
from polytask.training.collective import collective_tasks, online_distill, record, record_task, task_env
from polytask.training.run import tasks_of
from polytask.utils import set_seed

log = logging.getLogger("polytask")


def train_worker(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """``mode=train_worker``: SAC on one task from the env reward (a resumable online run), then its
    policy's labelled episodes as the task's dataset (source ``sac``). Returns the final evaluation.

    Raises:
        ConfigError: for more than one task (the message gives the multirun command), or a teacher
            other than ``sac``.
    """
    tasks = tasks_of(cfg)
    if len(tasks) != 1:
        raise ConfigError("mode=train_worker trains one SAC worker per task; run one job per task (in parallel "
                          "with hydra/launcher=local or slurm):\n  " + command(cfg, "train_worker", tasks, True))
    if cfg.collective.teacher != "sac":
        raise ConfigError("mode=train_worker records a SAC worker's data: leave collective.teacher=sac")
    trainer = build_trainer(cfg, run_dir)
    metrics = trainer.run()
    env = task_env(cfg, tasks[0])
    try:
        record_task(cfg, tasks[0], env, actor_teacher(trainer.agent.actor, trainer.agent.device))
    finally:
        env.close()
    return metrics


# -- students -----------------------------------------------------------------------------------------------
def train_student(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """``mode=train_student`` / ``finetune_student``: the run's agent (a SAC student with the collective
    as run input) on one task, a resumable online run. Returns the final evaluation.

    Raises:
        ConfigError: for more than one task (the message gives the multirun command).
    """
    tasks = tasks_of(cfg)
    if len(tasks) != 1:
        raise ConfigError(f"mode={cfg.mode} trains one student per task; run one job per task:\n  "
                          + command(cfg, str(cfg.mode), tasks, multirun=True))
    if tasks[0] in collective_tasks(cfg):
        log.warning(f"The student's task {tasks[0]} is one of the collective's tasks {collective_tasks(cfg)}")
    return build_trainer(cfg, run_dir).run()


def online_distill_mode(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """``mode=online_distill``: DAgger with a temporary student per task (``online_distill.student=task``,
    :func:`~polytask.training.collective.online_distill`) or with the collective acting
    (``collective``, :func:`~polytask.training.collective_dagger.collective_dagger`)."""
    if online_student(cfg) == "collective":
        from polytask.training.collective_dagger import collective_dagger

        return collective_dagger(cfg, run_dir)
    return online_distill(cfg, run_dir)


def run_mode(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Run ``cfg.mode`` in ``run_dir`` (its config is saved there) and write its result metrics to
    ``results.json`` (trainer modes write their own).

    Raises:
        ConfigError: for an unknown mode or bad ``collective`` options (:func:`check_collective_options`).
    """
    modes: dict[str, Callable[[DictConfig, Path], dict[str, float]]] = {
        "record": record, "train_worker": train_worker, "online_distill": online_distill_mode,
        "train_transformer": collective_fit.train_transformer_mode, "distill_collective": collective_fit.distill,
        "evaluate": collective_fit.evaluate, "train_student": train_student, "finetune_student": train_student}
    if cfg.mode not in modes:
        raise ConfigError(f"mode={cfg.mode}: use one of {', '.join(modes)}")
    check_collective_options(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.mode not in ("train_worker", "train_student", "finetune_student"):  # trainers save their own
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    set_seed(int(cfg.seed))
    start = time.perf_counter()
    results = modes[str(cfg.mode)](cfg, run_dir)
    log.info(f"mode={cfg.mode} took {time.perf_counter() - start:.1f}s")
    if cfg.mode not in ("train_worker", "train_student", "finetune_student"):
        (run_dir / "results.json").write_text(json.dumps(
            {"mode": str(cfg.mode), "seconds": round(time.perf_counter() - start, 2), **results}, indent=2))
    return results
