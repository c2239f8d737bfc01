"""The robot interface that the robot gym drives (a real xArm or its MuJoCo stand-in), its errors,
and the fixed-rate control loop clock."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

from polytask.errors import PolyTaskError
from polytask.suites.robotgym.task import TaskSpec


class RobotError(PolyTaskError, RuntimeError):
    """The arm was stopped: a controller error or warning, a failed command, a lost camera frame or
    Ctrl-C. The message says which, and what to check before running again."""


class Robot:
    """What the robot gym needs from an arm with a camera. Units are the xArm's: mm and degrees in
    the robot base frame.

    Subclasses: :class:`polytask.suites.robotgym.sim.SimRobot` (MuJoCo) and
    :class:`polytask.suites.robotgym.xarm.XArmRobot` (the real arm and a RealSense camera).
    """

    def reset(self, spec: TaskSpec, rng: np.random.Generator) -> None:
        """Bring the scene to the start of an episode of ``spec`` (the real arm runs the reset routine
        to ``spec.home`` and waits for a person to reset the scene; the simulation places it)."""
        raise NotImplementedError

    def pose(self) -> np.ndarray:
        """The measured end-effector pose, float64 (6,): x, y, z mm, roll, pitch, yaw degrees."""
        raise NotImplementedError

    def move_to(self, xyz_mm: np.ndarray, rpy_deg: np.ndarray, gripper: str | None) -> None:
        """Start a move to ``xyz_mm`` (3,) with orientation ``rpy_deg`` (3,) without waiting for it;
        ``gripper`` is ``"open"``, ``"closed"`` or None (leave it)."""
        raise NotImplementedError

    def frame(self, size: int) -> np.ndarray:
        """The newest camera image, uint8 (size, size, 3) RGB."""
        raise NotImplementedError

    def success(self, spec: TaskSpec, final: bool) -> float:
        """1.0 if the task is done, else 0.0 (``final``: the episode's last step, where a person can
        be asked)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`RobotError` if the arm reported an error since the last check."""

    def stop(self) -> None:
        """Stop the arm's motion now (safe to call at any time, also twice)."""

    def close(self) -> None:
        """Stop and disconnect."""


class RateLimiter:
    """Keeps a loop at a fixed period: :meth:`wait` sleeps until the next tick, measured from
    :meth:`start` (absolute deadlines, so sleep overshoot does not accumulate). A step that runs
    longer than a period starts the schedule again from now rather than rushing to catch up.

    Args:
        period_s: seconds per tick; 0 never waits.
        clock, sleep: time source and sleep function (tests pass fakes).

    Attributes:
        ticks: the clock value at :meth:`start` and at each tick since (up to 10,000), for measuring
            the period and jitter of the current episode.
        overruns: how many ticks came later than a whole period after their deadline.
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        if period_s < 0:
            raise ValueError(f"the control period must be >= 0 s, got {period_s}")
        self.period, self.clock, self.sleep = float(period_s), clock, sleep
        self.ticks: deque[float] = deque(maxlen=10_000)
        self.overruns = 0
        self._next: float | None = None

    def start(self) -> None:
        """Start the schedule now (the first :meth:`wait` returns one period later)."""
        now = self.clock()
        self._next = now + self.period
        self.ticks.clear()
        self.ticks.append(now)

    def wait(self) -> None:
        """Sleep until the next tick."""
        if self._next is None:
            self.start()
            return
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self.clock()
        if now - self._next > self.period > 0:
            self.overruns += 1
            self._next = now
        self.ticks.append(now)
        self._next += self.period

    def periods(self) -> np.ndarray:
        """float64 (N,): seconds between consecutive ticks."""
        return np.diff(np.asarray(self.ticks))
