"""Robot gym suite: PolyTask's real-robot tasks on an xArm with a RealSense camera,
or on a simulated stand-in in MuJoCo that runs the same code path (``backend="sim"``, the default).

Tasks (:data:`TASKS`): ``reach``, ``boxopen``, ``drawerclose``, ``insertpeg_green``,
``insertpeg_yellow``, ``pour2d``. Their settings (workspace, home pose, episode length, reset routine)
come from the config (``cfgs/suite/robotgym_task/<task>.yaml``, passed as ``tasks``). Observations:
``state`` float32 (6,) end-effector pose (m, rad) and, for pixels, ``pixels`` uint8 (3, 84, 84)
(frame-stacked by :func:`make`). Actions: float32 (3,) (or (4,) with a gripper) Cartesian deltas of
at most 2.5 cm per step; see :class:`RobotGymEnv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from polytask.errors import ConfigError
from polytask.suites import check_task, make_registered, stack_pixels
from polytask.suites.robotgym.control import RateLimiter, Robot, RobotError
from polytask.suites.robotgym.env import RobotGymEnv
from polytask.suites.robotgym.task import MAX_STEP_MM, TaskSpec

__all__ = [
    "MAX_STEP_MM",
    "TASKS",
    "RateLimiter",
    "Robot",
    "RobotError",
    "RobotGymEnv",
    "TaskSpec",
    "describe",
    "make",
    "make_robot",
]

ENV_ID = "PolyTask/RobotGym-v0"

#: PolyTask's six robot tasks (each has a simulated version).
TASKS = ["boxopen", "drawerclose", "reach", "insertpeg_green", "insertpeg_yellow", "pour2d"]

BACKENDS = ("sim", "xarm")

_DESCRIPTIONS = {"boxopen": "open the lid of the box", "drawerclose": "close the drawer",
                 "reach": "reach the red target",
                 "insertpeg_green": "insert the peg into the green hole",
                 "insertpeg_yellow": "insert the peg into the yellow hole", "pour2d": "pour the cup into the bowl"}


def describe(task: str) -> str:
    """A sentence for ``task`` (language goals)."""
    return _DESCRIPTIONS.get(task, task.replace("_", " "))


def make_robot(spec: TaskSpec, backend: str, sim: Mapping[str, Any] | None = None,
               xarm: Mapping[str, Any] | None = None) -> Robot:
    """The robot of ``backend`` for task ``spec``: a :class:`~polytask.suites.robotgym.sim.SimRobot`
    (options ``sim``) or a :class:`~polytask.suites.robotgym.xarm.XArmRobot` (options ``xarm``).

    Raises:
        ConfigError: for an unknown backend or bad options; ImportError naming the ``robot`` extra
            when the xArm SDK or pyrealsense2 is missing.
    """
    if backend == "sim":
        from polytask.suites.robotgym.sim import SimRobot

        return SimRobot(spec.name, **dict(sim or {}))
    if backend == "xarm":
        from polytask.suites.robotgym.xarm import XArmRobot

        return XArmRobot(spec, **dict(xarm or {}))
    raise ConfigError(f"suite.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def make_wrapped(task: str, obs_type: str = "features", tasks: Mapping[str, Any] | None = None, backend: str = "sim",
                 frame_stack: int = 3, img_size: int = 84, render_size: int = 256, control_hz: float | None = None,
                 sim: Mapping[str, Any] | None = None, xarm: Mapping[str, Any] | None = None) -> gym.Env:
    """:class:`RobotGymEnv` for ``task`` with (pixels only) frame stacking; gym entry point.

    Args:
        task: a name of :data:`TASKS`.
        tasks: the settings of every configured task by name (``suite.tasks``), see :class:`TaskSpec`.
        backend: ``"sim"`` or ``"xarm"``.
        control_hz: steps per second; None: the backend's own (sim: no waiting; xarm: 2 Hz).
        sim, xarm: the backend's options (:class:`~polytask.suites.robotgym.sim.SimRobot`,
            :class:`~polytask.suites.robotgym.xarm.XArmRobot`).

    Raises:
        UnknownTaskError: for a task that is not one of :data:`TASKS`.
        ConfigError: for a task without settings in ``tasks`` or bad settings.
    """
    check_task(task, TASKS, "robotgym")
    if not tasks or task not in tasks:
        raise ConfigError(f"No settings for robot task {task!r} (have: {', '.join(tasks or {}) or 'none'}); pick it "
                          f"with suite/robotgym_task={task}, which loads cfgs/suite/robotgym_task/{task}.yaml")
    spec = TaskSpec.from_config(task, tasks[task])
    robot = make_robot(spec, backend, sim, xarm)
    if control_hz is None:
        control_hz = 2.0 if backend == "xarm" else None
    env = RobotGymEnv(spec, robot, obs_type, img_size, render_size, control_hz)
    return stack_pixels(env, obs_type, frame_stack)


gym.register(ENV_ID, entry_point="polytask.suites.robotgym:make_wrapped", disable_env_checker=True)


def make(task: str, obs_type: str = "features", seed: int | None = None, **options: Any) -> gym.Env:
    """Make a robot gym env through ``gym.make`` so that its spec (and Minari datasets) record every
    option. ``options`` are those of :func:`make_wrapped` (the ``suite.env`` config)."""
    return make_registered(ENV_ID, task, obs_type, seed, **options)
