"""``train_collective.py``'s modes (``mode=``) and where each one's outputs go under ``data_dir``, so
the next mode finds them (a missing one fails with the command that makes it):

- ``record``: Meta-World's scripted teachers -> ``datasets/polytask/metaworld/collective-<source>/<task>-v0``.
- ``train_worker``: one task's SAC run (``weights/sac/metaworld/<task>-features-seed<s>.pt``), then its
  policy's labelled episodes -> the same dataset path (source ``sac``).
- ``online_distill``: the recorded datasets + the teachers -> ``…/collective-<source>-online/<task>-v0``
  (with ``online_distill.student=collective``: + the recorded data's collective ->
  ``…/collective-<source>-online-collective/<task>-v0`` and that source's transformer and collective,
  :mod:`polytask.training.collective_dagger`).
- ``train_transformer``: the datasets (``collective.data``) ->
  ``weights/collective/metaworld/<tasks>-<source>-seed<s>-transformer.pt`` and, beside it,
  ``…-transformer.json`` (embedding report) and ``…-transformer.png``.
- ``distill_collective``: the transformer + the datasets ->
  ``weights/collective/metaworld/<tasks>-<source>-seed<s>.pt``.
- ``evaluate``: the collective (and the teachers) -> the run directory's ``results.json``.
- ``train_student``: SAC + shaping from the collective (:class:`~polytask.agents.collective_sac.ShapedSACAgent`).
- ``finetune_student``: SAC from the collective actor (:class:`~polytask.agents.collective_sac.CollectiveSACAgent`).

``<source>`` is :func:`polytask.collective.data.source_tag` (teacher, random-action probability);
``<tasks>`` the tag of the collective's task list (``collective.tasks``, :func:`polytask.config.tasks_tag`).
Runs go under ``exp_local/collective/<mode>/<tasks>/.../seed<s>/``. The transformer, the actor and
evaluation are in :mod:`polytask.training.collective_fit`; the modes that run a trainer (workers,
students) and the dispatch of ``mode=`` in :mod:`polytask.training.collective_modes`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from polytask.collective.data import (
    Teacher,
    actor_teacher,
    collective_dataset_id,
    collective_dataset_path,
    command,
    labelled_rollout,
    load_task_data,
    scripted_teacher,
    source_tag,
)
from polytask.collective.policy import Collective
from polytask.config import tasks_tag
from polytask.data.collect import is_success
from polytask.data.demos import Episode, read_metadata, write_dataset
from polytask.errors import ConfigError
from polytask.suites import make_env
from polytask.training.checkpoint import CheckpointError, load_checkpoint
from polytask.training.logger import Logger
from polytask.training.run import tasks_of
from polytask.training.weights import find_weights, load_policy

log = logging.getLogger("polytask")

#: recorded episode ``i`` resets with ``RECORD_SEED_BASE + i``; online distillation's round ``r``,
#: episode ``i`` with ``ONLINE_SEED_BASE + 1000·r + i`` (disjoint from demo, training and eval seeds)
RECORD_SEED_BASE = 3_000_000
ONLINE_SEED_BASE = 3_500_000


# -- where things are ---------------------------------------------------------------------------------
def collective_tasks(cfg: DictConfig) -> list[str]:
    """The collective's tasks (``cfg.collective.tasks``; the run's own tasks by default)."""
    return [str(t) for t in cfg.collective.tasks]


def collective_file(cfg: DictConfig, kind: str = "") -> Path:
    """``<data_dir>/weights/collective/<suite>/<tasks>-<source>-seed<seed>[-<kind>].pt`` for the collective's
    tasks: ``kind`` ``""`` (transformer + actor) or ``"transformer"``."""
    source = source_tag(cfg, online=cfg.collective.data == "online")
    name = f"{tasks_tag(collective_tasks(cfg))}-{source}-seed{cfg.seed}{f'-{kind}' if kind else ''}.pt"
    return Path(cfg.data_dir) / "weights" / "collective" / cfg.suite.name / name


def collective_state(cfg: DictConfig) -> dict[str, Any]:
    """The collective's weights as plain data (the students' ``collective`` run input): the file
    ``cfg.collective.weights``, else :func:`collective_file` of ``cfg.collective.tasks``.

    Raises:
        ConfigError: if it is missing (with the ``distill_collective`` command), unreadable, or holds
            a transformer only.
    """
    path = Path(cfg.collective.weights) if cfg.collective.get("weights") else collective_file(cfg)
    how = command(cfg, "distill_collective", collective_tasks(cfg))
    collective = read_collective(path, how_to_make=how)
    if collective.actor is None:
        raise ConfigError(f"{path} holds the transformer only; make the collective actor with:\n  {how}")
    log.info(f"Collective: {path}")
    return collective.state_dict()


def worker_weights(cfg: DictConfig, task: str) -> Path:
    """The SAC worker of ``task`` (``mode=train_worker``, seed ``cfg.seed``): its exported weights file.

    Raises:
        ConfigError: if several runs with other settings match (the message lists them).
    """
    plain = Path(cfg.data_dir) / "weights" / "sac" / cfg.suite.name / f"{task}-features-seed{cfg.seed}.pt"
    return find_weights(plain, "delete the ones you do not want as the worker")


def make_teacher(cfg: DictConfig, task: str, env) -> Teacher:
    """``task``'s teacher (``cfg.collective.teacher``): the scripted policy or the SAC worker.

    Raises:
        ConfigError: if the worker's weights are missing (the message gives the ``train_worker`` command).
    """
    if cfg.collective.teacher == "scripted":
        return scripted_teacher(task, float(cfg.collective.scripted_log_std))
    agent = load_policy(worker_weights(cfg, task), env, how_to_make=command(cfg, "train_worker", [task]))
    return actor_teacher(agent.actor, agent.device)


def task_env(cfg: DictConfig, task: str):
    """``task``'s env with state features, one observation per step."""
    return make_env(cfg.suite, task, "features", frame_stack=1)


# -- record and train_worker ----------------------------------------------------------------------------
def record_task(cfg: DictConfig, task: str, env, teacher: Teacher) -> Path:
    """``cfg.record.num_episodes`` episodes of ``teacher`` on ``task`` (with ``collective.random_prob``
    random actions), labelled, written as the task's dataset (metadata: ``teacher``, ``random_prob``,
    ``teacher_success``: the recorded episodes' success rate, ``seconds``). Returns its folder."""
    start = time.perf_counter()
    p = float(cfg.collective.random_prob)
    rng = np.random.default_rng([int(cfg.seed), tasks_of(cfg).index(task)])
    episodes = [labelled_rollout(env, teacher, RECORD_SEED_BASE + i, rng, p)
                for i in range(int(cfg.record.num_episodes))]
    success = float(np.mean([is_success(ep) for ep in episodes]))
    seconds = time.perf_counter() - start
    path = write_dataset(cfg.data_dir, collective_dataset_id(cfg, task), episodes, env,
                         f"{cfg.collective.teacher} teacher", f"Teacher-labelled episodes of {task}",
                         {"teacher": str(cfg.collective.teacher), "random_prob": p, "teacher_success": success,
                          "scripted_log_std": float(cfg.collective.scripted_log_std), "seconds": round(seconds, 2)})
    log.info(f"{task}: {len(episodes)} episodes, success {success:.2f} ({seconds:.1f}s) -> {path}")
    return path


def record(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """``mode=record``: every task's dataset from its scripted teacher; returns the success per task.

    Raises:
        ConfigError: for ``collective.teacher`` other than ``scripted`` (SAC workers record at the end
            of ``mode=train_worker``: the message gives that command).
    """
    tasks = tasks_of(cfg)
    if cfg.collective.teacher != "scripted":
        raise ConfigError("mode=record records Meta-World's scripted teachers (collective.teacher=scripted); SAC "
                          "workers record their data at the end of their own runs:\n  "
                          + command(cfg, "train_worker", tasks, multirun=True))
    results = {}
    for task in tasks:
        env = task_env(cfg, task)
        try:
            path = record_task(cfg, task, env, make_teacher(cfg, task, env))
        finally:
            env.close()
        results[f"{task}/teacher_success"] = read_metadata(path)["polytask"]["teacher_success"]
    return results


# -- online distillation ----------------------------------------------------------------------------------
def _fit_student(student: torch.nn.Module, opt: torch.optim.Optimizer, episodes: list[Episode], updates: int,
                 batch_size: int, rng: np.random.Generator) -> float:
    """``updates`` steps of :func:`~polytask.nets.collective.distill_loss` of ``student(state)`` against the
    episodes' labels; returns the last loss."""
    from polytask.nets.collective import distill_loss

    states = torch.as_tensor(np.concatenate([ep.obs["state"][:-1] for ep in episodes]))
    means = torch.as_tensor(np.concatenate([ep.infos["mean"] for ep in episodes]))
    log_stds = torch.as_tensor(np.concatenate([ep.infos["log_std"] for ep in episodes]))
    loss = torch.zeros(())
    for _ in range(updates):
        idx = torch.as_tensor(rng.integers(0, len(states), batch_size))
        mean, log_std = student(states[idx])
        loss = distill_loss(mean, log_std, means[idx], log_stds[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.item())


def online_distill_task(cfg: DictConfig, task: str, logger: Logger) -> Path:
    """DAgger on one task: a temporary student (a state-only Gaussian actor) is fitted to the labels so
    far, acts (its mean action) for ``episodes_per_round`` episodes whose states the teacher labels, and
    these join the data; ``rounds`` times. Writes the recorded and all student episodes as the task's
    online dataset (metadata: the student's success per round). Returns its folder."""
    from polytask.nets.mlp import GaussianActor

    opts = cfg.online_distill
    episodes, meta = load_task_data(cfg, task, online=False)
    env = task_env(cfg, task)
    try:
        teacher = make_teacher(cfg, task, env)
        dim, action_dim = episodes[0].obs["state"].shape[1], episodes[0].action.shape[1]
        student = GaussianActor(dim, action_dim, opts.hidden_dim, opts.hidden_dim, 2, False)
        opt = torch.optim.Adam(student.parameters(), lr=float(opts.lr))
        rng = np.random.default_rng([int(cfg.seed), tasks_of(cfg).index(task)])

        @torch.no_grad()
        def act(obs: dict[str, np.ndarray]) -> np.ndarray:
            return student.mean(torch.as_tensor(obs["state"][None]))[0].numpy()

        data, successes = list(episodes), []
        for r in range(int(opts.rounds)):
            loss = _fit_student(student, opt, data, int(opts.updates_per_round), int(opts.batch_size), rng)
            new = [labelled_rollout(env, teacher, ONLINE_SEED_BASE + 1000 * r + i, rng, student=act)
                   for i in range(int(opts.episodes_per_round))]
            successes.append(float(np.mean([is_success(ep) for ep in new])))
            data += new
            logger.log("train", {f"{task}/student_success": successes[-1], f"{task}/distill_loss": loss}, r + 1,
                       console=False)
        metadata = {**meta, "online_rounds": int(opts.rounds), "student_success": successes,
                    "recorded_episodes": len(episodes)}
        path = write_dataset(cfg.data_dir, collective_dataset_id(cfg, task, online=True), data, env,
                             "DAgger", f"Teacher-labelled recorded and student episodes of {task}", metadata)
    finally:
        env.close()
    log.info(f"{task}: student success per round {successes}; {len(data)} episodes -> {path}")
    return path


def online_distill(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """``mode=online_distill``: :func:`online_distill_task` for every task whose online dataset is
    missing (a re-run continues with the tasks not done yet). Returns the last round's student
    success per task."""
    logger = Logger(run_dir)
    results = {}
    try:
        for task in tasks_of(cfg):
            path = collective_dataset_path(cfg, task, online=True)
            if (path / "data" / "metadata.json").exists():
                log.info(f"{task}: online data already at {path} (delete it to make it again)")
            else:
                path = online_distill_task(cfg, task, logger)
            results[f"{task}/student_success"] = read_metadata(path)["polytask"]["student_success"][-1]
    finally:
        logger.close()
    return results


def read_collective(path: str | Path, device: torch.device | str = "cpu", how_to_make: str = "") -> Collective:
    """The :class:`Collective` of a weights file written by ``mode=train_transformer`` (transformer
    only) or ``mode=distill_collective`` (both), read as tensors and plain data only.

    Raises:
        ConfigError: if the file is missing (the message gives ``how_to_make``), unreadable or not a
            collective's file.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"No collective weights at {path}. Make them with:\n  {how_to_make}")
    try:
        saved = load_checkpoint(path)
    except CheckpointError as e:
        raise ConfigError(str(e)) from e
    if "collective" not in saved:
        raise ConfigError(f"{path} is not a collective's weights file (no 'collective' entry); make it with:\n"
                          f"  {how_to_make}")
    return Collective(saved["collective"], device)
