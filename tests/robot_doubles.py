"""Test doubles of the xArm SDK and the RealSense camera, and a robot gym env built on them (used by
tests/test_robotgym_xarm.py and benchmarks/robotgym.py)."""

from __future__ import annotations

import numpy as np

from polytask.suites.robotgym import RobotError, RobotGymEnv, TaskSpec
from polytask.suites.robotgym.xarm import XArmRobot

SETTINGS = {"episode_len": 5, "home": [400, 0, 300, 180, 0, 0], "workspace": {"low": [300, -100, 100],
                                                                            "high": [500, 100, 400]},
            "reset": {"waypoints": [[400, 0, 350]]}}
LIMIT_CALLS = ("set_reduced_tcp_boundary", "set_reduced_max_tcp_speed", "set_fence_mode", "set_reduced_mode")


class FakeXArmAPI:
    """Records every SDK call as ``(name, args, kwargs)``; moves instantly to each target; ``fail``
    maps a method name to the code it returns; :meth:`fire` plays the controller's error callback."""

    def __init__(self, address, fail=None, interrupt=None):
        self.address, self.fail, self.interrupt = address, dict(fail or {}), interrupt
        self.calls: list[tuple[str, tuple, dict]] = []
        self.position = [400.0, 0.0, 300.0, 180.0, 0.0, 0.0]
        self.error_code = self.warn_code = 0
        self.callback = None

    def __getattr__(self, name):  # every other SDK method: record it, return its code
        def method(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == self.interrupt:
                raise KeyboardInterrupt
            return self.fail.get(name, 0)
        return method

    def register_error_warn_changed_callback(self, callback):
        self.calls.append(("register_error_warn_changed_callback", (), {}))
        self.callback = callback

    def set_fence_mode(self, on):
        self.calls.append(("set_fence_mode", (on,), {}))
        return [0]  # this one answers with a list

    def set_position(self, **kwargs):
        self.calls.append(("set_position", (), kwargs))
        if self.interrupt == "set_position":
            raise KeyboardInterrupt
        code = self.fail.get("set_position", 0)
        if code == 0:
            self.position[:3] = [kwargs["x"], kwargs["y"], kwargs["z"]]
        return code

    def get_position(self, is_radian=None):
        return 0, list(self.position)

    def fire(self, error=0, warn=0):
        self.error_code, self.warn_code = error, warn
        self.callback({"error_code": error, "warn_code": warn})

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class FakeCamera:
    def __init__(self, **options):
        self.lost, self.closed = False, False

    def read(self):
        if self.lost:
            raise RobotError("Lost the camera: no frame within 1000 ms; the arm was stopped")
        return np.full((480, 640, 3), 128, np.uint8)

    def close(self):
        self.closed = True


def make_xarm_env(obs_type="features", control_hz=None, answers=("", "y"), episode_len=5, **options):
    """A RobotGymEnv on an XArmRobot whose SDK and camera are doubles; returns (env, arm, prompts)
    (the arm double is handed to the robot when it connects, at the first reset)."""
    spec = TaskSpec.from_config("reach", {**SETTINGS, "episode_len": episode_len})
    prompts, answers = [], list(answers)
    arm = FakeXArmAPI("192.168.1.185", options.pop("fail", None), options.pop("interrupt", None))

    def prompt(text):
        prompts.append(text)
        return answers.pop(0) if answers else ""

    robot = XArmRobot(spec, address=arm.address, arm_factory=lambda address: arm, camera_factory=FakeCamera,
                      prompt=prompt, **options)
    return RobotGymEnv(spec, robot, obs_type, control_hz=control_hz), arm, prompts
