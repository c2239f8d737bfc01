"""The real arm: a UFACTORY xArm through the official ``xarm-python-sdk`` and an Intel RealSense
camera through ``pyrealsense2`` (both in the ``robot`` extra, imported only here).

Safety is part of the interface: at connect the controller's workspace fence
(``set_reduced_tcp_boundary`` + ``set_fence_mode``) and reduced TCP speed
(``set_reduced_max_tcp_speed`` + ``set_reduced_mode``) are set from the task before anything moves;
every target is also clipped in software (:class:`~polytask.suites.robotgym.env.RobotGymEnv`); a
controller error or warning (the SDK's callback, or its codes), a failed command or a lost camera
frame stops the arm (``set_state(4)``) and raises :class:`RobotError`; resets wait for a person;
``dry_run`` connects and reads but never moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from polytask.errors import ConfigError
from polytask.suites.robotgym.control import Robot, RobotError
from polytask.suites.robotgym.task import TaskSpec

log = logging.getLogger("polytask")

INSTALL_HINT = 'The xArm backend needs the xArm SDK and pyrealsense2: pip install "polytask[robot]"'
GRIPPER_OPEN, GRIPPER_CLOSED = 850, 0  # xArm gripper positions (pulses)
STOP_STATE = 4                         # xArm state: stop motion


def sdk_arm(address: str):
    """``xarm.wrapper.XArmAPI(address)``, or an ImportError naming the ``robot`` extra."""
    try:
        from xarm.wrapper import XArmAPI
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return XArmAPI(address, is_radian=False)


class RealSenseCamera:
    """The colour stream of a RealSense camera.

    Args:
        serial: the camera's serial number, or None for the first one found.
        width, height, fps: colour stream settings.
        timeout_ms: a frame that does not arrive within this time is a lost frame.
    """

    def __init__(self, serial: str | None = None, width: int = 640, height: int = 480, fps: int = 30,
                 timeout_ms: int = 1000):
        try:
            import pyrealsense2 as rs
        except ImportError as e:
            raise ImportError(INSTALL_HINT) from e
        self.timeout_ms = int(timeout_ms)
        config = rs.config()
        if serial:
            config.enable_device(str(serial))
        config.enable_stream(rs.stream.color, int(width), int(height), rs.format.rgb8, int(fps))
        self.pipeline = rs.pipeline()
        try:
            self.pipeline.start(config)
        except RuntimeError as e:
            raise RobotError(f"Could not start the RealSense camera {serial or '(first found)'}: {e}. Check the USB 3 "
                             "cable and the serial (suite.env.xarm.camera.serial or REALSENSE_SERIAL)") from e

    def read(self) -> np.ndarray:
        """The newest colour frame, uint8 (H, W, 3) RGB.

        Raises:
            RobotError: if no frame arrives within ``timeout_ms``.
        """
        try:
            frames = self.pipeline.wait_for_frames(self.timeout_ms)
        except RuntimeError as e:
            raise RobotError(f"Lost the camera: no frame within {self.timeout_ms} ms ({e}); the arm was stopped") from e
        color = frames.get_color_frame()
        if not color:
            raise RobotError("Lost the camera: a frame set without a colour image; the arm was stopped")
        return np.asanyarray(color.get_data()).copy()

    def close(self) -> None:
        """Stop the stream."""
        self.pipeline.stop()


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of ``image`` (H, W, 3) resized to uint8 (size, size, 3) (area filter)."""
    from PIL import Image

    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(np.ascontiguousarray(image[top:top + s, left:left + s]))
    return np.asarray(crop.resize((size, size), Image.Resampling.BOX))


def _code(result: Any) -> int:
    """The return code of an SDK call (an int, or the first item of a tuple/list)."""
    if isinstance(result, (tuple, list)):
        return int(result[0]) if result else 0
    return int(result or 0)


class XArmRobot(Robot):
    """An xArm with a RealSense camera for one task.

    Args:
        spec: the task (its workspace becomes the controller's fence).
        address: the arm's IP address (from ``suite.env.xarm.address`` or the ``XARM_IP`` variable).
        max_speed: mm/s, the controller's reduced-mode TCP speed limit (and the speed of moves).
        dry_run: connect, set the limits, read poses and frames, but never enable or move the arm
            (targets are logged at debug level).
        gripper: whether the xArm gripper is attached (needed by tasks with ``gripper: true``).
        confirm_resets: wait at each reset, after the arm is home, for a person to reset the scene.
        ask_success: ask the person at each episode's last step whether it succeeded.
        camera: :class:`RealSenseCamera` options.
        arm_factory: ``address -> XArmAPI`` (tests pass a double of the SDK).
        camera_factory: ``**camera -> object with read() and close()``.
        prompt: ``input``-like function for the person (tests pass a fake).

    The arm and camera are connected at the first :meth:`reset` (not here), so an env that is only
    built to read its spaces does not touch the robot.

    Raises:
        ConfigError: without an address, with a non-positive speed, or a gripper task without a gripper.
        RobotError: (at the first reset) if a connect-time command fails (the arm is stopped).
        ImportError: naming the ``robot`` extra when the SDK or pyrealsense2 is missing.
    """

    def __init__(self, spec: TaskSpec, address: str | None = None, max_speed: float = 100.0, dry_run: bool = False,
                 gripper: bool = False, confirm_resets: bool = True, ask_success: bool = True,
                 camera: Mapping[str, Any] | None = None, arm_factory: Callable[[str], Any] = sdk_arm,
                 camera_factory: Callable[..., Any] = RealSenseCamera, prompt: Callable[[str], str] = input):
        if not address:
            raise ConfigError("No xArm address: set the XARM_IP environment variable or suite.env.xarm.address=<ip>")
        if not max_speed > 0:
            raise ConfigError(f"suite.env.xarm.max_speed must be > 0 mm/s, got {max_speed}")
        if spec.gripper and not gripper:
            raise ConfigError(f"Task {spec.name} uses the gripper: attach it and set suite.env.xarm.gripper=true")
        self.spec, self.max_speed, self.dry_run, self.gripper = spec, float(max_speed), bool(dry_run), bool(gripper)
        self.confirm_resets, self.ask_success, self.prompt = bool(confirm_resets), bool(ask_success), prompt
        self.address, self._arm_factory = str(address), arm_factory
        self._camera_factory, self._camera_options = camera_factory, dict(camera or {})
        self._fault: str | None = None
        self.arm: Any = None
        self.camera: Any = None

    @property
    def connected(self) -> bool:
        """Whether the arm is connected (at the first reset: an env only built to read its spaces,
        e.g. to check a dataset's shapes, never connects)."""
        return self.arm is not None

    # -- connection and safety ------------------------------------------------------------------
    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``arm.<name>(...)``; a non-zero code stops the arm and raises :class:`RobotError`."""
        result = getattr(self.arm, name)(*args, **kwargs)
        code = _code(result)
        if code != 0:
            self.stop()
            raise RobotError(f"xArm {name} failed with code {code} (see the xArm API code table); the arm was stopped. "
                             "Clear the cause (UFactory Studio shows it) before running again.")
        return result

    def _connect(self) -> None:
        """Connect; clear old errors, set the fence and the reduced speed, enable motion (not in dry
        runs); start the camera. On failure the arm is stopped and disconnected."""
        self.arm = self._arm_factory(self.address)
        try:
            self._setup()
            self.camera = self._camera_factory(**self._camera_options)
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        self.arm.register_error_warn_changed_callback(self._on_error_warn)
        self._call("clean_warn")
        self._call("clean_error")
        self._call("set_reduced_tcp_boundary", [float(v) for v in self.spec.boundary])
        self._call("set_reduced_max_tcp_speed", self.max_speed)
        self._call("set_fence_mode", True)
        self._call("set_reduced_mode", True)
        if not self.dry_run:
            self._call("motion_enable", enable=True)
            self._call("set_mode", 0)  # position control
            self._call("set_state", 0)  # ready
            if self.gripper:
                self._call("set_gripper_enable", True)
        log.info(f"xArm connected{' (dry run: nothing will move)' if self.dry_run else ''}: fence "
                 f"{self.spec.low.tolist()}..{self.spec.high.tolist()} mm, reduced speed {self.max_speed} mm/s")

    def _on_error_warn(self, item: Mapping[str, Any]) -> None:
        """The SDK's error/warning callback (its report thread): stop at once, raise at the next check."""
        error, warn = int(item.get("error_code", 0) or 0), int(item.get("warn_code", 0) or 0)
        if error or warn:
            self._fault = (f"xArm controller reported error code {error}, warning code {warn}; the arm was stopped. "
                           "Clear the cause (UFactory Studio shows it) before running again.")
            self.stop()

    def check(self) -> None:
        if not self.connected:
            return
        error, warn = int(getattr(self.arm, "error_code", 0) or 0), int(getattr(self.arm, "warn_code", 0) or 0)
        if (error or warn) and self._fault is None:
            self._on_error_warn({"error_code": error, "warn_code": warn})
        if self._fault is not None:
            raise RobotError(self._fault)

    def stop(self) -> None:
        if not self.connected:
            return
        try:
            self.arm.set_state(STOP_STATE)
        except Exception as e:  # noqa: BLE001 -- stopping must never hide the error that caused it
            log.error(f"xArm set_state({STOP_STATE}) failed while stopping: {e!r}")

    def close(self) -> None:
        if not self.connected:
            return
        self.stop()
        if self.camera is not None:
            self.camera.close()
        self.arm.release_error_warn_changed_callback(self._on_error_warn)
        self.arm.disconnect()
        self.arm = self.camera = None

    # -- motion ---------------------------------------------------------------------------------
    def _move(self, xyz_mm: np.ndarray, rpy_deg: np.ndarray, wait: bool) -> None:
        x, y, z = (float(v) for v in self.spec.clip(np.asarray(xyz_mm, float)))
        roll, pitch, yaw = (float(v) for v in rpy_deg)
        if self.dry_run:
            log.debug(f"dry run: would move to {x:.1f} {y:.1f} {z:.1f} mm, {roll:.1f} {pitch:.1f} {yaw:.1f} deg")
            return
        self._call("set_position", x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw, speed=self.max_speed, wait=wait)

    def _grip(self, command: str, wait: bool) -> None:
        if self.dry_run or not self.gripper:
            return
        self._call("set_gripper_position", GRIPPER_OPEN if command == "open" else GRIPPER_CLOSED, wait=wait)

    def reset(self, spec: TaskSpec, rng: np.random.Generator) -> None:
        if not self.connected:
            self._connect()
        self.check()
        for waypoint in spec.reset_waypoints:
            self._move(waypoint, spec.home[3:], wait=True)
        self._move(spec.home[:3], spec.home[3:], wait=True)
        if spec.reset_gripper is not None:
            self._grip(spec.reset_gripper, wait=True)
        self.check()
        if self.confirm_resets:
            self.prompt(f"[{spec.name}] The arm is home. Reset the scene, then press Enter (Ctrl-C stops): ")

    def pose(self) -> np.ndarray:
        code, pose = self.arm.get_position(is_radian=False)
        if _code(code) != 0:
            self.stop()
            raise RobotError(f"xArm get_position failed with code {code}; the arm was stopped")
        return np.asarray(pose[:6], float)

    def move_to(self, xyz_mm: np.ndarray, rpy_deg: np.ndarray, gripper: str | None) -> None:
        self._move(xyz_mm, rpy_deg, wait=False)
        if gripper is not None:
            self._grip(gripper, wait=False)

    def frame(self, size: int) -> np.ndarray:
        return square_resize(self.camera.read(), size)

    def success(self, spec: TaskSpec, final: bool) -> float:
        if not (final and self.ask_success):
            return 0.0
        answer = self.prompt(f"[{spec.name}] Episode over. Did it succeed? [y/N]: ")
        return float(answer.strip().lower() in ("y", "yes"))
