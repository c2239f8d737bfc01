"""Task settings of the robot gym (``cfgs/suite/robotgym_task/<task>.yaml``): workspace fence, home
pose, episode length and reset routine, in the xArm's units (mm, degrees, robot base frame)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polytask.errors import ConfigError

#: The largest Cartesian move of one step: an action of 1 moves 0.25 × 0.1 m (PolyTask's robot code).
MAX_STEP_MM = 25.0


@dataclass(frozen=True)
class TaskSpec:
    """One robot task.

    Attributes:
        name: task name (``boxopen``, ...).
        low, high: float64 (3,) workspace corners in mm (robot base frame); the controller's fence is
            set to this box and every target is clipped to it.
        home: float64 (6,) home pose: x, y, z in mm and roll, pitch, yaw in degrees; the orientation
            is held fixed for the whole episode.
        episode_len: agent steps per episode.
        gripper: whether the action has a 4th (gripper) entry.
        reset_waypoints: float64 (N, 3) mm, visited in order (blocking) before ``home`` at reset.
        reset_gripper: ``"open"``, ``"closed"`` or None (leave it) at reset.
    """

    name: str
    low: np.ndarray
    high: np.ndarray
    home: np.ndarray
    episode_len: int
    gripper: bool = False
    reset_waypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    reset_gripper: str | None = None

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> TaskSpec:
        """Build and check a spec from its config mapping (``suite.tasks.<name>``).

        Raises:
            ConfigError: for a missing key, a workspace with ``low >= high``, a home pose outside
                the workspace, a non-positive episode length or a bad ``reset.gripper``.
        """
        try:
            ws, reset = cfg["workspace"], cfg.get("reset") or {}
            low, high = np.asarray(ws["low"], float), np.asarray(ws["high"], float)
            home = np.asarray(cfg["home"], float)
            spec = cls(name, low, high, home, int(cfg["episode_len"]), bool(cfg.get("gripper", False)),
                       np.asarray(reset.get("waypoints") or np.zeros((0, 3)), float).reshape(-1, 3),
                       reset.get("gripper"))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"Robot task {name!r}: bad or missing setting ({e!r}); a task config needs "
                              "workspace.low, "
                              "workspace.high (mm), home ([x, y, z] mm + [roll, pitch, yaw] deg), episode_len and "
                              "optionally gripper and reset (see cfgs/suite/robotgym_task/boxopen.yaml)") from e
        if low.shape != (3,) or high.shape != (3,) or home.shape != (6,) or np.any(low >= high):
            raise ConfigError(f"Robot task {name!r}: workspace low {low.tolist()} and high {high.tolist()} must be 3 "
                              f"numbers each with low < high (mm); home must be 6 numbers, got {home.tolist()}")
        for point, what in [(home[:3], "home"), *((w, "reset waypoint") for w in spec.reset_waypoints)]:
            if np.any(point < low) or np.any(point > high):
                raise ConfigError(f"Robot task {name!r}: the {what} {point.tolist()} mm lies outside the workspace "
                                  f"{low.tolist()}..{high.tolist()} mm; move it inside or widen the workspace")
        if spec.episode_len < 1 or spec.reset_gripper not in (None, "open", "closed"):
            raise ConfigError(f"Robot task {name!r}: episode_len must be >= 1 and reset.gripper open, closed or null; "
                              f"got {spec.episode_len}, {spec.reset_gripper!r}")
        return spec

    def clip(self, xyz_mm: np.ndarray) -> np.ndarray:
        """``xyz_mm`` (3,) clipped into the workspace box (the software fence)."""
        return np.clip(xyz_mm, self.low, self.high)

    @property
    def boundary(self) -> list[float]:
        """The workspace as the xArm fence wants it: ``[x_max, x_min, y_max, y_min, z_max, z_min]`` (mm)."""
        return [self.high[0], self.low[0], self.high[1], self.low[1], self.high[2], self.low[2]]
