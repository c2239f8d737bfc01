"""The robot gym environment: Cartesian delta actions on a :class:`Robot` at a fixed rate."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np

from polytask.suites.robotgym.control import RateLimiter, Robot, RobotError
from polytask.suites.robotgym.task import MAX_STEP_MM, TaskSpec


def wrap_angles(deg: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``deg`` shifted by multiples of 360 into ``centre ± 180`` (a roll of -179° next to a home
    roll of 180° reads 181°, so observations do not jump)."""
    return centre + (deg - centre + 180.0) % 360.0 - 180.0


class RobotGymEnv(gym.Env):
    """A robot task as a Gymnasium env with PolyTask's dict observations (no frame stacking).

    Actions: float32 (3,) in [-1, 1], or (4,) with ``spec.gripper``: the end-effector moves by
    ``a[:3] × 25 mm`` (at most 2.5 cm per axis and step) from its measured position, clipped to the
    task's workspace, with the orientation of ``spec.home``; ``a[3] > 0.5`` opens the gripper,
    ``< -0.5`` closes it. Each step waits for the next tick of the control loop (``control_hz``).

    Observations: ``state`` float32 (6,) = end-effector x, y, z in m and roll, pitch, yaw in rad
    (angles kept within ±π of the home orientation); with ``obs_type="pixels"`` also ``pixels``
    uint8 (3, img_size, img_size) from the camera. ``info["success"]`` and the reward are the
    robot's success test (the real arm: 0, or a person's answer at the last step when asked).
    Episodes are truncated after ``spec.episode_len`` steps and never terminate.

    Safety: a controller error, a lost camera frame or Ctrl-C during a step stops the arm and raises
    :class:`RobotError`.

    Args:
        spec: the task.
        robot: the arm (real or simulated); closed with the env.
        obs_type: ``"features"`` or ``"pixels"``.
        img_size: side of pixel observations; render_size: side of :meth:`render` frames.
        control_hz: steps per second (the loop waits for its period); None or 0: no waiting.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}
    render_mode = "rgb_array"

    def __init__(self, spec: TaskSpec, robot: Robot, obs_type: str = "features", img_size: int = 84,
                 render_size: int = 256, control_hz: float | None = None):
        if obs_type not in ("features", "pixels"):
            raise ValueError(f"obs_type must be 'features' or 'pixels', got {obs_type!r}")
        self.task_spec, self.robot, self.obs_type = spec, robot, obs_type
        self.img_size, self.render_size = img_size, render_size
        self.rate = RateLimiter(1.0 / control_hz if control_hz else 0.0)
        spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (6,), np.float32)}
        if obs_type == "pixels":
            spaces["pixels"] = gym.spaces.Box(0, 255, (3, img_size, img_size), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4 if spec.gripper else 3,), np.float32)
        self._t, self._done = 0, True

    @property
    def task(self) -> str:
        """The task name."""
        return self.task_spec.name

    def _obs(self) -> dict[str, np.ndarray]:
        pose = self.robot.pose()
        angles = wrap_angles(pose[3:], self.task_spec.home[3:])
        obs = {"state": np.concatenate([pose[:3] / 1000.0, np.deg2rad(angles)]).astype(np.float32)}
        if self.obs_type == "pixels":
            obs["pixels"] = np.ascontiguousarray(self.robot.frame(self.img_size).transpose(2, 0, 1))
        return obs

    def _guarded(self, fn):
        """Run ``fn()``; on Ctrl-C or a robot error stop the arm first, then raise :class:`RobotError`."""
        try:
            return fn()
        except KeyboardInterrupt:
            self.robot.stop()
            raise RobotError("Stopped by Ctrl-C: the arm was halted. Check the scene before running again.") from None
        except RobotError:
            self.robot.stop()
            raise

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)

        def run():
            self.robot.reset(self.task_spec, self.np_random)
            self.robot.check()
            return self._obs()

        obs = self._guarded(run)
        self._t, self._done = 0, False
        self.rate.start()
        return obs, {"success": 0.0}

    def target(self, action: np.ndarray) -> tuple[np.ndarray, str | None]:
        """The clipped target position (mm, (3,)) and gripper command of ``action`` from the current pose."""
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        xyz = self.task_spec.clip(self.robot.pose()[:3] + MAX_STEP_MM * action[:3])
        gripper = None
        if self.task_spec.gripper:
            gripper = "open" if action[3] > 0.5 else "closed" if action[3] < -0.5 else None
        return xyz, gripper

    def step(self, action):
        if self._done:
            raise RuntimeError("The episode is over (or was never started): call reset() first")
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape or not np.isfinite(action).all():
            raise ValueError(f"action must be finite with shape {self.action_space.shape}, got {action!r}")

        def run():
            self.robot.check()
            xyz, gripper = self.target(action)
            self.robot.move_to(xyz, self.task_spec.home[3:], gripper)
            self.rate.wait()
            self.robot.check()
            self._t += 1
            final = self._t >= self.task_spec.episode_len
            return self._obs(), self.robot.success(self.task_spec, final), final

        obs, success, truncated = self._guarded(run)
        self._done = truncated
        return obs, float(success), False, truncated, {"success": float(success)}

    def render(self) -> np.ndarray:
        """Camera frame for videos: uint8 (render_size, render_size, 3)."""
        return self.robot.frame(self.render_size)

    def close(self):
        self.robot.close()
