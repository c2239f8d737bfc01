"""Finding, collecting and loading a run's demonstrations."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from polytask.data.collect import DEMO_SEED_BASE, collect_episodes, is_success, relabel_rollout
from polytask.data.demos import (
    DatasetError,
    Episode,
    check_compatible,
    dataset_id,
    dataset_path,
    load_episodes,
    write_dataset,
)
from polytask.suites import make_env
from polytask.utils import instantiate

log = logging.getLogger("polytask")


def frame_stack_of(cfg: DictConfig) -> int:
    """Frames per pixel observation of the run (1 for state features)."""
    return int(cfg.suite.env.get("frame_stack", 1)) if cfg.obs_type == "pixels" else 1


def demo_path(cfg: DictConfig, task: str) -> Path:
    """Where the demos of ``task`` for the run's suite and obs_type live under ``cfg.data_dir``."""
    return dataset_path(cfg.data_dir, dataset_id(cfg.suite.name, task, cfg.obs_type))


def collect_command(cfg: DictConfig, task: str, num: int) -> str:
    """The ``collect_demos.py`` command line that makes ``num`` demos of ``task``."""
    return (f"python collect_demos.py suite={cfg.suite.name} 'suite.task=[{task}]' obs_type={cfg.obs_type} "
            f"num_demos_per_task={num} data_dir={cfg.data_dir}")


@contextlib.contextmanager
def expert_in_env(cfg: DictConfig, task: str, hint: str, clean: bool = False) -> Iterator[tuple]:
    """The env that records ``task`` (one frame per step) and the suite's expert acting in it;
    both are closed on exit (the expert when it has a ``close()``). ``clean``: an expert configured
    with ``action_noise`` (the kitchen's, for demos that visit states around its path) acts without
    it, for labels that are its own actions.

    Raises:
        DatasetError: if the suite has no expert (the message ends with ``hint``).
    """
    if cfg.suite.get("expert") is None:
        raise DatasetError(f"Suite {cfg.suite.name} has no expert; {hint}")
    env = make_env(cfg.suite, task, cfg.obs_type, frame_stack=1)
    expert = None
    try:
        clean_kwargs = {"action_noise": 0.0} if clean and "action_noise" in cfg.suite.expert else {}
        expert = instantiate(cfg.suite.expert, task=task, env=env, **clean_kwargs)
        yield env, expert
    finally:
        if hasattr(expert, "close"):  # experts with a worker process (ManiSkill's motion planner)
            expert.close()
        env.close()


def collect_task_demos(cfg: DictConfig, task: str, num: int) -> Path:
    """Roll out the suite's expert (``cfg.suite.expert``) on ``task`` until ``num`` episodes are kept
    and write them as a Minari dataset. Kept are successful episodes, or those whose return reaches
    ``cfg.suite.demo_min_return`` when the suite sets it (DMC), or all with ``cfg.keep_failed_demos``.

    Raises:
        DatasetError: if the suite has no expert.
    """
    with expert_in_env(cfg, task, f"provide a dataset at {demo_path(cfg, task)}") as (env, expert):
        min_return = cfg.suite.get("demo_min_return")
        accept = is_success if min_return is None else (lambda ep: float(ep.reward.sum()) >= min_return)
        episodes, stats = collect_episodes(env, expert.act, num, keep_failed=cfg.keep_failed_demos,
                                           desc=f"demos {task}", accept=accept)
        meta = {"suite": cfg.suite.name, "task": task, "obs_type": cfg.obs_type,
                "expert": cfg.suite.expert._target_, "attempts": stats.attempts,
                "expert_accept_rate": stats.successes / stats.attempts, "keep_failed": cfg.keep_failed_demos,
                "min_return": min_return, "returns": [float(ep.reward.sum()) for ep in episodes],
                "seeds": [ep.seed for ep in episodes]}
        path = write_dataset(cfg.data_dir, dataset_id(cfg.suite.name, task, cfg.obs_type), episodes, env,
                             algorithm_name=cfg.suite.expert._target_,
                             description=f"{num} {cfg.suite.name} {task} demonstrations ({cfg.obs_type})",
                             extra_metadata=meta)
    log.info(f"Collected {num} demos of {task} in {stats.seconds:.1f}s ({stats.attempts} episodes, "
             f"{stats.episodes_per_s:.2f} episodes/s, accepted {stats.successes}/{stats.attempts}) -> {path}")
    return path


def _load_or_make(path: Path, num: int, env, make_cmd: str, make: Callable[[], Any] | None, what: str,
                  frame_stack: int) -> list[Episode]:
    """The first ``num`` episodes of the dataset at ``path``; when it is missing or holds fewer,
    ``make()`` writes it first (None: raise). Checked against ``env``'s spaces.

    Raises:
        DatasetError: missing/short dataset that cannot be made (message: path and ``make_cmd``),
            corrupted file, or shapes that do not fit ``env``.
    """
    keys = tuple(env.observation_space.spaces)
    try:
        episodes = load_episodes(path, num, obs_keys=keys, make_cmd=make_cmd)
    except DatasetError as e:
        missing = not (path / "data" / "metadata.json").exists() or "were asked for" in str(e)
        if not (missing and make is not None):
            raise
        log.info(f"{what} missing or too few at {path}: making {num} first")
        make()
        episodes = load_episodes(path, num, obs_keys=keys, make_cmd=make_cmd)
    check_compatible(episodes, env.observation_space, env.action_space, frame_stack, str(path))
    return episodes


def load_or_collect_demos(cfg: DictConfig, task: str, env) -> list[Episode]:
    """The first ``cfg.num_demos_per_task`` demos of ``task``, collected first when missing (or too
    few) and the suite has an expert and ``cfg.collect_missing_demos`` is true.

    Raises:
        DatasetError: missing/short dataset that cannot be collected (message: path and the
            ``collect_demos.py`` command), corrupted file, or shapes that do not fit ``env``.
    """
    num = int(cfg.num_demos_per_task)
    can_collect = cfg.collect_missing_demos and cfg.suite.get("expert") is not None
    return _load_or_make(demo_path(cfg, task), num, env, collect_command(cfg, task, num),
                         (lambda: collect_task_demos(cfg, task, num)) if can_collect else None,
                         f"Demos of {task} (collected with the {cfg.suite.name} expert)", frame_stack_of(cfg))


def relabel_path(cfg: DictConfig, task: str) -> Path:
    """Where the relabelled distillation data of ``task`` lives (see :func:`relabel_task`)."""
    return dataset_path(cfg.data_dir, dataset_id(cfg.suite.name, task, f"{cfg.obs_type}-relabel"))


def relabel_task(cfg: DictConfig, task: str) -> Path:
    """Relabelled data of ``task`` for distillation: ``cfg.relabel.episodes_per_task`` rollouts of the
    suite's expert with action noise ``cfg.relabel.noise``, each visited observation labelled with
    the expert's own (noise-free) action, written as a Minari dataset with its provenance.

    Raises:
        DatasetError: if the suite has no expert; ExpertWeightsError if a trained expert is missing.
    """
    rng = np.random.default_rng(int(cfg.seed))
    start = time.perf_counter()
    with expert_in_env(cfg, task, "relabelled data needs one", clean=True) as (env, expert):
        n, noise = int(cfg.relabel.episodes_per_task), float(cfg.relabel.noise)
        episodes = [relabel_rollout(env, expert.act, noise, DEMO_SEED_BASE + i, rng) for i in range(n)]
        meta = {"suite": cfg.suite.name, "task": task, "obs_type": cfg.obs_type, "expert": cfg.suite.expert._target_,
                "expert_weights": str(getattr(expert, "path", "")), "noise_std": noise, "episodes": n,
                "transitions": int(sum(len(e) for e in episodes)), "seeds": [e.seed for e in episodes],
                "success_rate": float(np.mean([is_success(e) for e in episodes]))}
        path = write_dataset(cfg.data_dir, dataset_id(cfg.suite.name, task, f"{cfg.obs_type}-relabel"), episodes,
                             env, algorithm_name=f"relabelled {cfg.suite.expert._target_}",
                             description=f"{task}: states visited by the expert with noise {noise}, labelled with "
                                         "its actions", extra_metadata=meta)
    log.info(f"Relabelled {n} episodes of {task} ({meta['transitions']} states, noisy-rollout success "
             f"{meta['success_rate']:.2f}) in {time.perf_counter() - start:.1f}s -> {path}")
    return path


def load_or_relabel(cfg: DictConfig, task: str, env) -> list[Episode]:
    """The first ``cfg.relabel.episodes_per_task`` relabelled episodes of ``task``, made first with
    the suite's expert when missing or too few (:func:`relabel_task`).

    Raises:
        DatasetError: as :func:`load_or_collect_demos`.
    """
    num = int(cfg.relabel.episodes_per_task)
    cmd = (f"python relabel.py suite={cfg.suite.name} 'suite.task=[{task}]' obs_type={cfg.obs_type} "
           f"relabel.episodes_per_task={num}")
    return _load_or_make(relabel_path(cfg, task), num, env, cmd, lambda: relabel_task(cfg, task),
                         f"Relabelled data of {task}", frame_stack_of(cfg))
