"""Demonstrators of the robot gym: scripted waypoint experts for the simulated tasks, and a person
with a keyboard or gamepad (:mod:`polytask.experts.teleop`) for the real arm (or the simulation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from polytask.errors import ConfigError
from polytask.suites.robotgym import MAX_STEP_MM, TASKS
from polytask.suites.robotgym.sim import CUP_HEIGHT, PEG_LENGTH, SimRobot


def make_expert(task: str, env: Any, teleop: str | None = None):
    """The robot gym's demonstrator for ``task``: a :class:`~polytask.experts.teleop.TeleopExpert`
    reading ``teleop`` (``"keyboard"`` or ``"gamepad"``), else the scripted :class:`ScriptedExpert`
    (simulation only).

    Raises:
        ConfigError: for an unknown ``teleop``, or no ``teleop`` on the real arm (a script cannot
            see the real scene).
    """
    if teleop is not None:
        from polytask.experts.teleop import TeleopExpert, key_source

        return TeleopExpert(key_source(teleop), gripper=env.action_space.shape[0] == 4)
    return ScriptedExpert(task, env)


class ScriptedExpert:
    """Waypoint follower for the simulated tasks: it reads the objects' positions from the
    simulation at the episode's first step, plans the task's waypoints (mm, robot base frame) and
    moves to each at full speed, ``action = clip((waypoint − position) / 25 mm, −1, 1)``, going on
    to the next within ``tolerance`` mm; after the last it holds still.

    Args:
        task: a robot gym task.
        env: the robot gym env with a :class:`SimRobot` (or a wrapper of it).
        tolerance: mm within which a waypoint counts as reached.

    Raises:
        ConfigError: if ``env`` does not run the simulation (``suite.backend=xarm``).
    """

    def __init__(self, task: str, env: Any, tolerance: float = 3.0):
        robot = getattr(env.unwrapped, "robot", None)
        if not isinstance(robot, SimRobot):
            raise ConfigError("The scripted robot gym experts need the simulation (they read object positions from "
                              "it); on the real arm record demos by teleoperation: add teleop=keyboard (or gamepad)")
        if task not in TASKS:
            raise ConfigError(f"No scripted expert for robot task {task!r}; tasks: {', '.join(TASKS)}")
        self.task, self.robot, self.tolerance = task, robot, tolerance
        self.action_dim = int(env.action_space.shape[0])
        self._waypoints: list[np.ndarray] = []
        self._time = np.inf  # simulated time at the last call: it goes back at each reset

    def plan(self) -> list[np.ndarray]:
        """The task's waypoints (mm, (3,) each) for the current scene."""
        obj = {k: v * 1000.0 for k, v in self.robot.objects().items()}
        tcp = self.robot.tcp() * 1000.0
        if self.task == "reach":
            return [obj["target"]]
        if self.task == "boxopen":  # down in front of the lid's handle, then push the lid back off the box
            x, y = obj["box"][:2]
            return [np.array([x - 100, y, 110]), np.array([x + 40, y, 110])]
        if self.task == "drawerclose":  # down in front of the open drawer, then push it shut
            x, y = obj["cabinet"][:2]
            return [np.array([300, y, 60]), np.array([x - 90, y, 60])]
        if self.task.startswith("insertpeg_"):  # above the hole, then down (the peg hangs below the TCP)
            hole = obj[f"hole_{self.task.removeprefix('insertpeg_')}"]
            return [np.array([hole[0], hole[1], PEG_LENGTH * 1000 + 70]),
                    np.array([hole[0], hole[1], PEG_LENGTH * 1000 + 15])]
        if self.task == "pour2d":  # across to above the bowl in the y-z plane, then down to pouring height
            bowl = obj["bowl"]
            return [np.array([tcp[0], bowl[1], 200]), np.array([tcp[0], bowl[1], CUP_HEIGHT * 1000 + 50])]
        raise ConfigError(f"No scripted expert for robot task {self.task!r}")

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The next action (float32 (3,), or (4,) with the gripper entry 0) toward the current waypoint."""
        pos = self.robot.tcp() * 1000.0
        if self.robot.data.time < self._time:  # a new episode
            self._waypoints = self.plan()
        self._time = self.robot.data.time
        while self._waypoints and np.abs(self._waypoints[0] - pos).max() < self.tolerance:
            self._waypoints.pop(0)
        delta = self._waypoints[0] - pos if self._waypoints else np.zeros(3)
        action = np.clip(delta / MAX_STEP_MM, -1.0, 1.0)
        return np.concatenate([action, np.zeros(self.action_dim - 3)]).astype(np.float32)
