"""Simulator suites. Each suite module exposes ``make(task, obs_type, seed, **suite_options)``
returning a Gymnasium env with dict observations (see :mod:`polytask.suites.wrappers`) and
``info["success"]``, plus ``TASKS`` (valid task names).

Suites are chosen by the Hydra config ``suite.env._target_``; nothing here branches on suite names.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches
from typing import Any

from polytask.errors import PolyTaskError


class UnknownTaskError(PolyTaskError, ValueError):
    """A task name that the suite does not have. The message lists the valid names."""


def check_task(task: str, valid: Iterable[str], suite: str) -> None:
    """Raise :class:`UnknownTaskError` naming close matches and all valid tasks if ``task`` is unknown."""
    valid = list(valid)
    if task in valid:
        return
    close = get_close_matches(task, valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownTaskError(
        f"Unknown {suite} task {task!r}.{hint} Valid tasks: {', '.join(valid)}"
    )


def make_env(suite_cfg: Any, task: str, obs_type: str, **overrides: Any):
    """Instantiate ``suite_cfg.env`` (its ``_target_`` is the suite's ``make``) for one task.

    Args:
        suite_cfg: the ``suite`` config node (``env._target_`` plus the suite's options).
        task: task name within the suite.
        obs_type: ``"features"`` or ``"pixels"``.
        overrides: options replacing those of the config (e.g. ``frame_stack=1`` to record demos).
    """
    from omegaconf import OmegaConf

    from polytask.utils import instantiate

    options = {**OmegaConf.to_container(suite_cfg.env, resolve=True), **overrides}
    return instantiate(options, task=task, obs_type=obs_type)


def describe_task(suite_cfg: Any, task: str) -> str:
    """A sentence describing ``task`` (for language goals): the suite module's ``describe(task)``
    where it has one, else the task name in words."""
    import importlib

    module = importlib.import_module(suite_cfg.env._target_.rsplit(".", 1)[0])
    describe = getattr(module, "describe", None)
    return describe(task) if describe is not None else task.replace("-", " ").replace("_", " ")


def stack_pixels(env, obs_type: str, frame_stack: int):
    """``env`` with :class:`polytask.suites.wrappers.FrameStack` for pixel observations."""
    from polytask.suites.wrappers import FrameStack

    return FrameStack(env, frame_stack) if obs_type == "pixels" and frame_stack > 1 else env


def make_registered(env_id: str, task: str, obs_type: str, seed: int | None, **options: Any):
    """``gym.make(env_id, ...)``, so that the env spec (and Minari datasets) record every option;
    the action space is seeded with ``seed`` when given."""
    import gymnasium as gym

    env = gym.make(env_id, task=task, obs_type=obs_type, **options)
    if seed is not None:
        env.action_space.seed(seed)
    return env
