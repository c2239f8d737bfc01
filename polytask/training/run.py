"""What a run is made of, read from its config: its tasks, their envs (the training env with the run's
reward and termination wrappers), the evaluator, its demonstrations, and a suite's task-agnostic play
data (``collect_play.py``)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from omegaconf import DictConfig, OmegaConf

from polytask.data.buffer import DemoBuffer
from polytask.data.demos import DatasetError, Episode
from polytask.errors import ConfigError
from polytask.suites import make_env
from polytask.training.demos import frame_stack_of, load_or_collect_demos
from polytask.training.evaluator import Evaluator
from polytask.utils import instantiate

log = logging.getLogger("polytask")


def tasks_of(cfg: DictConfig) -> list[str]:
    """The run's task names (``cfg.suite.task``), in task-id order."""
    return [str(t) for t in cfg.suite.task]


def env_factory(cfg: DictConfig) -> Callable[[str], gym.Env]:
    """``task -> env`` for the run's suite and obs_type."""
    return partial(make_env, cfg.suite, obs_type=cfg.obs_type)


def make_train_env(cfg: DictConfig, task: str) -> gym.Env:
    """The suite's env for ``task`` with :func:`training_wrappers`: what an online run's agent is built
    for; the run acts in the agent's :meth:`~polytask.agents.base.Agent.wrap_env` of it."""
    return training_wrappers(cfg, env_factory(cfg)(task))


def num_envs_of(cfg: DictConfig) -> int:
    """``cfg.num_envs`` (default 1): the training envs an online run steps together.

    Raises:
        ConfigError: if it is below 1.
    """
    num = int(cfg.get("num_envs", 1) or 1)
    if num < 1:
        raise ConfigError(f"num_envs={num}: give the number of training envs stepped together (1 or more)")
    return num


def make_train_envs(cfg: DictConfig, task: str, wrap_env: Callable[[gym.Env], gym.Env] | None,
                    first: gym.Env, num_envs: int) -> VectorEnv:
    """``num_envs`` training envs of ``task`` (:func:`make_train_env`, then ``wrap_env``: the agent's
    :meth:`~polytask.agents.base.Agent.wrap_env` where it has one) stepped together, as a Gymnasium
    vector env without autoreset (the online trainer resets each env itself, with its seed).

    With ``cfg.async_envs`` (default true) and more than one env, or with ``cfg.overlap_updates``
    (the envs step while the agent updates: :class:`~polytask.training.online.OnlineTrainer`), each
    env steps in a subprocess (:class:`~gymnasium.vector.AsyncVectorEnv`; ``spawn``: a fresh
    interpreter per env, as forking a process that holds torch threads or GL contexts is unsafe; one
    torch thread each) and ``first`` is closed; otherwise they step one after the other in this
    process (:class:`~gymnasium.vector.SyncVectorEnv`), ``first`` (the env the agent was built for)
    being env 0. (``overlap_updates`` with ``async_envs=false`` gives envs in this process, which
    the online trainer refuses.)
    """
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # subprocesses have no Hydra
    if cfg.get("async_envs", True) and (num_envs > 1 or cfg.get("overlap_updates", False)):
        first.close()
        make = partial(_make_subprocess_train_env, resolved, task, wrap_env, os.getpid())
        return AsyncVectorEnv([make] * num_envs, context="spawn", autoreset_mode=AutoresetMode.DISABLED)
    make = partial(_make_wrapped_train_env, resolved, task, wrap_env)
    return SyncVectorEnv([lambda: first] + [make] * (num_envs - 1), autoreset_mode=AutoresetMode.DISABLED)


def _make_wrapped_train_env(cfg: DictConfig, task: str, wrap_env: Callable[[gym.Env], gym.Env] | None) -> gym.Env:
    """:func:`make_train_env`, then ``wrap_env`` if given (a vector env's env factory)."""
    env = make_train_env(cfg, task)
    return env if wrap_env is None else wrap_env(env)


def _make_subprocess_train_env(cfg: DictConfig, task: str, wrap_env: Callable[[gym.Env], gym.Env] | None,
                               trainer_pid: int) -> gym.Env:
    """:func:`_make_wrapped_train_env` for an env subprocess, which runs torch (a skill decoder) on one
    thread: the trainer's process keeps the cores for the updates. (The vector env also calls it once
    in the trainer's process ``trainer_pid``, for the spaces: there the thread count stays, as
    changing it mid-run changes the updates' float rounding and so breaks determinism.)"""
    import torch

    if os.getpid() != trainer_pid:
        torch.set_num_threads(1)
    return _make_wrapped_train_env(cfg, task, wrap_env)


def training_wrappers(cfg: DictConfig, env: gym.Env) -> gym.Env:
    """``env`` wrapped as the run's config asks for training: ``sparse_reward``
    (:class:`~polytask.suites.wrappers.SparseReward`, offset ``sparse_reward_offset``) and
    ``success_terminates`` (:class:`~polytask.suites.wrappers.SuccessTermination`). Evaluation envs
    stay unwrapped, so eval returns are the env's."""
    from polytask.suites.wrappers import SparseReward, SuccessTermination

    if cfg.get("sparse_reward", False):
        env = SparseReward(env, float(cfg.get("sparse_reward_offset", 0.0)))
    if cfg.get("success_terminates", False):
        env = SuccessTermination(env)
    return env


def make_evaluator(cfg: DictConfig, wrap_env: Callable[[gym.Env], gym.Env] | None = None,
                   train_env: gym.Env | None = None) -> Evaluator:
    """The :class:`Evaluator` over every task of the run, with ``cfg.eval``'s episode count,
    parallel envs, and whether an episode ends at its first success. ``wrap_env`` (the agent's
    :meth:`~polytask.agents.base.Agent.wrap_env`) makes each eval env the one the agent acts in.
    With ``train_env`` (a single-task run with ``eval.on_train_env``: one real robot) it evaluates
    on that env as it is, one episode at a time, and leaves it open."""
    if train_env is not None:
        from polytask.suites.wrappers import KeepOpen

        return Evaluator(lambda task: KeepOpen(train_env), tasks_of(cfg), cfg.eval.num_episodes, 1,
                         cfg.eval.stop_on_success)
    make = env_factory(cfg)
    if wrap_env is not None:
        make = _wrapped(make, wrap_env)
    return Evaluator(make, tasks_of(cfg), cfg.eval.num_episodes, cfg.eval.num_envs, cfg.eval.stop_on_success)


def _wrapped(make: Callable[[str], gym.Env], wrap_env: Callable[[gym.Env], gym.Env]) -> Callable[[str], gym.Env]:
    """``task -> wrap_env(make(task))``."""
    return lambda task: wrap_env(make(task))


def load_demo_buffer(cfg: DictConfig) -> tuple[DemoBuffer, dict[int, list[Episode]]]:
    """Demos of every task (collected first where missing), as a :class:`DemoBuffer` over the obs
    key the agent uses, and per task id."""
    demos = {}
    for i, task in enumerate(tasks_of(cfg)):
        env = env_factory(cfg)(task)
        try:
            demos[i] = load_or_collect_demos(cfg, task, env)
        finally:
            env.close()
    obs_keys = ("pixels",) if cfg.obs_type == "pixels" else ("state",)
    buffer = DemoBuffer(demos, obs_keys, frame_stack=frame_stack_of(cfg), seed=cfg.seed)
    log.info(f"{len(buffer)} demo transitions from {sum(map(len, demos.values()))} episodes over "
             f"{len(demos)} task(s)")
    return buffer, demos


def collect_play(cfg: DictConfig) -> Path:
    """Instantiate ``cfg.suite.play`` with ``cfg.play.num_episodes`` (null: the suite's default) and
    ``cfg.seed``, and write its episodes with :func:`write_play_dataset`.

    Raises:
        DatasetError: if the suite has no ``play`` node.
    """
    from polytask.data.play import write_play_dataset

    if cfg.suite.get("play") is None:
        raise DatasetError(f"Suite {cfg.suite.name} has no task-agnostic play data (no `play` node in its config)")
    num = cfg.play.num_episodes if cfg.play.num_episodes is not None else cfg.suite.play.num_episodes
    start = time.perf_counter()
    episodes = list(instantiate(cfg.suite.play, env_factory=env_factory(cfg), num_episodes=int(num),
                                seed=int(cfg.seed)))
    seconds = time.perf_counter() - start
    options = OmegaConf.to_container(cfg.suite.play, resolve=True)
    path = write_play_dataset(cfg.data_dir, cfg.suite.name, cfg.obs_type, episodes,
                              {"seed": int(cfg.seed), "play": {**options, "num_episodes": int(num)},
                               "generation_seconds": round(seconds, 2)})
    steps = sum(len(e) for e in episodes)
    log.info(f"Made {len(episodes)} play episodes ({steps} steps) in {seconds:.1f}s "
             f"({steps / max(seconds, 1e-9):.0f} steps/s) -> {path}")
    return path
