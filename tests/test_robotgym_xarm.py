"""The xArm backend against a test double of the xArm SDK that records every call: limits before
motion, software clipping, stopping on errors, lost frames and Ctrl-C, dry runs, human resets and
the control loop's period."""

from __future__ import annotations

import time

import numpy as np
import pytest

from polytask.errors import ConfigError
from polytask.suites.robotgym import (
    MAX_STEP_MM,
    RateLimiter,
    RobotError,
    RobotGymEnv,
    TaskSpec,
)
from polytask.suites.robotgym.xarm import XArmRobot, square_resize
from tests.conftest import compose_cfg
from tests.robot_doubles import (
    LIMIT_CALLS,
    SETTINGS,
    FakeCamera,
    FakeXArmAPI,
    make_xarm_env,
)


def test_fence_and_speed_are_set_before_the_first_move():
    env, arm, _ = make_xarm_env(max_speed=80)
    env.reset(seed=0)
    env.step(np.zeros(3, np.float32))
    names = arm.names()
    first_move = names.index("set_position")
    for name in (*LIMIT_CALLS, "motion_enable"):
        assert names.index(name) < first_move, f"{name} must come before the first move: {names}"
    calls = {c[0]: c for c in arm.calls}
    assert calls["set_reduced_tcp_boundary"][1][0] == [500, 300, 100, -100, 400, 100]  # x_max, x_min, y_max, ...
    assert calls["set_reduced_max_tcp_speed"][1][0] == 80
    assert calls["set_fence_mode"][1][0] is True and calls["set_reduced_mode"][1][0] is True
    assert all(c[2]["speed"] == 80 for c in arm.calls if c[0] == "set_position")
    env.close()
    assert arm.names()[-1] == "disconnect" and ("set_state", (4,), {}) in arm.calls


def test_targets_outside_the_workspace_are_clipped():
    env, arm, _ = make_xarm_env()
    env.reset(seed=0)
    for _ in range(5):  # 5 × 25 mm from home (400, 0, 300) would reach (525, 125, 425): outside
        env.step(np.ones(3, np.float32))
    moves = [c[2] for c in arm.calls if c[0] == "set_position" and not c[2]["wait"]]
    xyz = np.array([[m["x"], m["y"], m["z"]] for m in moves])
    np.testing.assert_allclose(np.diff(xyz[:4], axis=0), MAX_STEP_MM)  # full steps while inside
    assert xyz[-1].tolist() == [500.0, 100.0, 400.0]  # then stopped at the fence on every axis
    assert all((m["roll"], m["pitch"], m["yaw"]) == (180.0, 0.0, 0.0) for m in moves)  # fixed orientation


def test_a_controller_error_stops_the_arm_and_raises():
    env, arm, _ = make_xarm_env()
    env.reset(seed=0)
    env.step(np.zeros(3, np.float32))
    moves_before = arm.names().count("set_position")
    arm.fire(error=22)
    assert arm.calls[-1][:2] == ("set_state", (4,)), "the callback must stop the arm at once"
    with pytest.raises(RobotError, match="error code 22"):
        env.step(np.zeros(3, np.float32))
    assert arm.names().count("set_position") == moves_before, "no move after an error"


def test_a_warning_code_seen_at_the_check_also_stops():
    env, arm, _ = make_xarm_env()
    env.reset(seed=0)
    arm.warn_code = 11  # the callback was missed: the code itself is checked every step
    with pytest.raises(RobotError, match="warning code 11"):
        env.step(np.zeros(3, np.float32))
    assert ("set_state", (4,), {}) in arm.calls


def test_a_failed_command_stops_the_arm():
    env, arm, _ = make_xarm_env(fail={"set_position": 9})
    with pytest.raises(RobotError, match="set_position failed with code 9"):
        env.reset(seed=0)
    assert arm.names()[-1] == "set_state" and arm.calls[-1][1] == (4,)


def test_a_lost_camera_frame_stops_the_arm():
    env, arm, _ = make_xarm_env(obs_type="pixels")
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (3, 84, 84)
    env.robot.camera.lost = True
    with pytest.raises(RobotError, match="Lost the camera"):
        env.step(np.zeros(3, np.float32))
    assert arm.calls[-1][:2] == ("set_state", (4,))


def test_ctrl_c_stops_the_arm():
    env, arm, _ = make_xarm_env(interrupt="set_position")
    with pytest.raises(RobotError, match="Ctrl-C"):
        env.reset(seed=0)
    assert arm.calls[-1][:2] == ("set_state", (4,))


def test_dry_run_moves_nothing():
    env, arm, _ = make_xarm_env(dry_run=True)
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.ones(3, np.float32))
    names = arm.names()
    assert not {"set_position", "motion_enable", "set_gripper_position", "set_mode"} & set(names)
    assert all(name in names for name in LIMIT_CALLS)  # the limits are set all the same


def test_resets_wait_for_a_person_and_the_last_step_asks_for_success():
    env, arm, prompts = make_xarm_env(answers=["", "y"])
    env.reset(seed=0)
    assert len(prompts) == 1 and "Reset the scene" in prompts[0]
    waits = [c[2] for c in arm.calls if c[0] == "set_position"]
    assert [(m["x"], m["y"], m["z"], m["wait"]) for m in waits] == [(400, 0, 350, True), (400, 0, 300, True)]
    infos = [env.step(np.zeros(3, np.float32))[-1] for _ in range(5)]
    assert [i["success"] for i in infos] == [0, 0, 0, 0, 1.0] and "succeed" in prompts[-1]


def test_address_comes_from_the_config_or_the_environment(monkeypatch):
    monkeypatch.setenv("XARM_IP", "10.0.0.7")
    assert compose_cfg("suite=robotgym", "suite.backend=xarm").suite.env.xarm.address == "10.0.0.7"
    monkeypatch.delenv("XARM_IP")
    assert compose_cfg("suite=robotgym").suite.env.xarm.address is None
    spec = TaskSpec.from_config("reach", SETTINGS)
    with pytest.raises(ConfigError, match="XARM_IP"):
        XArmRobot(spec, address=None, arm_factory=FakeXArmAPI, camera_factory=FakeCamera)


def test_bad_task_settings_are_refused():
    with pytest.raises(ConfigError, match="outside the workspace"):
        TaskSpec.from_config("reach", {**SETTINGS, "home": [600, 0, 300, 180, 0, 0]})
    with pytest.raises(ConfigError, match="low < high"):
        TaskSpec.from_config("reach", {**SETTINGS, "workspace": {"low": [500, 0, 0], "high": [300, 1, 1]}})
    with pytest.raises(ConfigError, match="episode_len"):
        TaskSpec.from_config("reach", {"home": [400, 0, 300, 180, 0, 0]})


def test_rate_limiter_keeps_absolute_deadlines_with_a_fake_clock():
    now = [0.0]
    rate = RateLimiter(0.5, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    rate.start()
    for work in (0.1, 0.3, 0.45, 0.2):
        now[0] += work
        rate.wait()
    np.testing.assert_allclose(rate.periods(), 0.5)
    now[0] += 1.2  # a step that overruns by more than a period restarts the schedule
    rate.wait()
    now[0] += 0.1
    rate.wait()
    assert rate.overruns == 1 and rate.periods()[-1] == pytest.approx(0.5)


def test_control_loop_keeps_its_period_with_the_sdk_double():
    env, _, _ = make_xarm_env(control_hz=20, answers=[""] * 3)
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.zeros(3, np.float32))
    periods = env.rate.periods()
    assert len(periods) == 5
    assert abs(periods.mean() - 0.05) < 0.005 and periods.min() > 0.04, periods


def test_camera_frames_are_centre_cropped_and_resized():
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :80] = 255  # left border, cropped away
    image[:, 80:320] = 100
    out = square_resize(image, 84)
    assert out.shape == (84, 84, 3) and out[:, :40].max() == 100 and out[:, 44:].max() == 0


def test_step_time_with_the_sdk_double_is_small():
    env, _, _ = make_xarm_env(obs_type="pixels")
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(5):
        env.step(np.zeros(3, np.float32))
    assert (time.perf_counter() - start) / 5 < 0.05  # the loop itself adds little to the 0.5 s period


def test_an_env_built_only_for_its_spaces_never_connects():
    spec = TaskSpec.from_config("reach", SETTINGS)
    opened = []
    robot = XArmRobot(spec, address="10.0.0.7", arm_factory=lambda a: opened.append(a) or FakeXArmAPI(a),
                      camera_factory=FakeCamera)
    env = RobotGymEnv(spec, robot, "pixels")
    assert env.observation_space["pixels"].shape == (3, 84, 84) and env.action_space.shape == (3,)
    env.close()
    assert opened == [], "reading the spaces (a dataset shape check) must not touch the robot"
