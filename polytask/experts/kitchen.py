"""Scripted Franka Kitchen expert: Cartesian waypoints turned into joint-velocity actions by
damped-least-squares IK on the ``end_effector`` site (:mod:`polytask.experts.ik`).

Each subtask has a motion script (approach, grasp or push, move, release, back off) whose waypoints
are computed from the simulator when the subtask starts (handle/knob sites, hinge anchors), so
scripts chain in any order from wherever the previous one left the arm. The gripper points along
+y (into the kitchen) with its fingers spread along x; the kettle handle is grasped with the hand
turned a quarter turn (fingers spread along z). Actions follow the env's controller: the position
target is the observed joint position plus ``2 · a · 0.08``, so ``a = clip(Δq / 0.16, -1, 1)``;
fingers get +1 (open) or -1 (close).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mujoco
import numpy as np

from polytask.experts.ik import dls_step, rot_y, rot_z

#: Seconds per env step (frame skip 40 × 2 ms) and the action scale of the env's velocity control.
DT = 0.08
ACTION_SCALE = 2.0
#: Hand orientation with the gripper pointing along +y and the fingers spread along x (columns:
#: site x axis up, site y axis along world x, approach axis along world y).
R_FORWARD = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
OPEN, CLOSE = 1.0, -1.0


@dataclass
class Waypoint:
    """A target pose of the end-effector site: ``pos`` (3,) m, ``rot`` 3×3, ``grip`` +1 open / -1
    closed; reached within ``tol`` m and 0.1 rad, then held ``hold`` more steps; given up after
    ``max_steps``."""

    pos: np.ndarray
    rot: np.ndarray
    grip: float
    tol: float = 0.02
    hold: int = 0
    max_steps: int = 30


class Scene:
    """Read-only view of the kitchen simulator used by the scripts (sites, joints, hand pose)."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self.model, self.data = model, data
        self.ee = model.site("end_effector").id

    def site(self, name: str) -> np.ndarray:
        """World position (3,) of site ``name``."""
        return self.data.site_xpos[self.model.site(name).id].copy()

    def anchor(self, joint: str) -> np.ndarray:
        """World position (3,) of joint ``joint``'s anchor."""
        return self.data.xanchor[self.model.joint(joint).id].copy()

    def qpos(self, joint: str) -> float:
        """Position of the 1-dof joint ``joint``."""
        return float(self.data.qpos[self.model.jnt_qposadr[self.model.joint(joint).id]])

    def body(self, name: str) -> np.ndarray:
        """World position (3,) of body ``name``."""
        return self.data.xpos[self.model.body(name).id].copy()

    @property
    def hand(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (3,) and rotation 3×3."""
        return self.data.site_xpos[self.ee].copy(), self.data.site_xmat[self.ee].reshape(3, 3).copy()


def _back_off(scene: Scene, dy: float = 0.1, dz: float = 0.0) -> list[Waypoint]:
    """Leave the last object: open the fingers, then move back (−y) and up/down, keeping the hand's
    orientation."""
    pos, rot = scene.hand
    return [Waypoint(pos, rot, OPEN, hold=2, max_steps=4),
            Waypoint(pos + np.array([0.0, -dy, dz]), rot, OPEN, tol=0.04, max_steps=15)]


def _approach(target: np.ndarray, rot: np.ndarray, grip: float, depth: float = 0.12) -> list[Waypoint]:
    """Move in front of ``target`` (``depth`` m toward the robot), turn to ``rot``, then go in."""
    pre = target + np.array([0.0, -depth, 0.0])
    return [Waypoint(pre, rot, grip, tol=0.03, max_steps=40),
            Waypoint(target, rot, grip, tol=0.012, max_steps=20)]


def _knob(site: str) -> Callable[[Scene, np.ndarray], list[Waypoint]]:
    """Grasp an oven knob head-on and twist the wrist (+y rotation turns the knob toward its goal)."""

    def script(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
        knob = scene.site(site) + np.array([0.0, 0.0, 0.0]) + jitter
        grasp = knob + np.array([0.0, 0.005, 0.0])
        wps = _approach(grasp, R_FORWARD, OPEN)
        wps.append(Waypoint(grasp, R_FORWARD, CLOSE, hold=3, max_steps=6))
        for angle in (0.4, 0.8, 1.2):
            wps.append(Waypoint(grasp, rot_y(angle) @ R_FORWARD, CLOSE, tol=0.02, max_steps=10))
        return wps

    return script


def _light(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    """Push the light switch lever from its +x side toward −x with closed fingers."""
    lever = scene.site("light_site") + jitter
    start = lever + np.array([0.07, 0.0, 0.0])
    wps = _approach(start, R_FORWARD, CLOSE)
    wps.append(Waypoint(lever + np.array([-0.08, 0.0, 0.0]), R_FORWARD, CLOSE, tol=0.02, max_steps=20))
    return wps


def _slide(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    """Grasp the slide cabinet's handle and pull it along +x."""
    handle = scene.site("slide_site") + jitter
    wps = _approach(handle, R_FORWARD, OPEN)
    wps.append(Waypoint(handle, R_FORWARD, CLOSE, hold=3, max_steps=6))
    wps.append(Waypoint(handle + np.array([0.25, 0.0, 0.0]), R_FORWARD, CLOSE, tol=0.03, max_steps=25))
    return wps


def _arc(scene: Scene, site: str, joint: str, goal: float, turn: float, jitter: np.ndarray) -> list[Waypoint]:
    """Grasp a door handle and carry it along its hinge's arc to angle ``goal`` (rad); the hand
    turns by ``turn`` × the door's rotation (the handle is round, so it may turn in the grasp)."""
    handle = scene.site(site) + jitter
    hinge = scene.anchor(joint)
    start = scene.qpos(joint)
    wps = _approach(handle, R_FORWARD, OPEN)
    wps.append(Waypoint(handle, R_FORWARD, CLOSE, hold=3, max_steps=6))
    radius = handle - hinge
    steps = max(2, int(np.ceil(abs(goal - start) / 0.15)))
    for angle in np.linspace(0.0, goal - start, steps + 1)[1:]:
        pos = hinge + rot_z(angle) @ radius
        wps.append(Waypoint(pos, rot_z(turn * angle) @ R_FORWARD, CLOSE, tol=0.03, max_steps=8))
    return wps


def _microwave(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    return _arc(scene, "microhandle_site", "microwave", -0.9, 0.5, jitter)


def _hinge(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    return _arc(scene, "hinge_site2", "right_hinge_cabinet", 1.5, 0.5, jitter)


#: The kettle's goal position (gymnasium-robotics' goal for its free joint) and the hand turned so
#: the fingers close vertically on the handle bar (which runs along x).
KETTLE_GOAL = np.array([-0.23, 0.75, 1.62])
R_KETTLE = rot_y(-np.pi / 2) @ R_FORWARD


def _kettle(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    """Grasp the kettle's handle, lift it, carry it to the top left burner and put it down."""
    handle = scene.site("kettle_site") + jitter
    offset = handle - scene.body("kettle")
    wps = _approach(handle, R_KETTLE, OPEN, depth=0.15)
    wps.append(Waypoint(handle, R_KETTLE, CLOSE, hold=3, max_steps=6))
    lift = np.array([0.0, 0.0, 0.08])
    place = KETTLE_GOAL + offset
    wps += [Waypoint(handle + lift, R_KETTLE, CLOSE, tol=0.03, max_steps=15),
            Waypoint(place + lift, R_KETTLE, CLOSE, tol=0.03, max_steps=30),
            Waypoint(place + np.array([0.0, 0.0, 0.01]), R_KETTLE, CLOSE, tol=0.02, max_steps=15)]
    return wps


#: Motion script of each subtask (gymnasium-robotics names).
SCRIPTS: dict[str, Callable[[Scene, np.ndarray], list[Waypoint]]] = {
    "bottom burner": _knob("knob2_site"), "top burner": _knob("knob4_site"), "light switch": _light,
    "slide cabinet": _slide, "hinge cabinet": _hinge, "microwave": _microwave, "kettle": _kettle,
}
#: How each script leaves its object: (back off along −y, then move along z).
_LEAVE = {"microwave": (0.02, 0.2), "hinge cabinet": (0.02, -0.2), "kettle": (0.12, 0.0)}


class KitchenController:
    """Runs the scripts of ``subtasks`` one after the other in a kitchen simulator.

    Args:
        model, data: the kitchen's ``mujoco.MjModel``/``MjData`` (read only; the env steps them).
        subtasks: gymnasium-robotics subtask names, in the order to do them.
        rng: randomness for ``waypoint_noise`` (uniform ±m on each script's object position) and
            ``action_noise`` (Gaussian std on the arm's actions, before clipping).
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, subtasks: list[str],
                 rng: np.random.Generator | None = None, waypoint_noise: float = 0.0, action_noise: float = 0.0):
        unknown = [s for s in subtasks if s not in SCRIPTS]
        if unknown:
            raise ValueError(f"No kitchen script for {unknown}; valid subtasks: {', '.join(SCRIPTS)}")
        self.scene = Scene(model, data)
        self.subtasks = list(subtasks)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.waypoint_noise, self.action_noise = waypoint_noise, action_noise
        self.dofs = np.arange(7)
        self.gain = 3.0
        self.reset()

    def reset(self) -> None:
        """Start from the first subtask (call after the env resets)."""
        self.index = -1
        self._plan: list[Waypoint] = []
        self._next_subtask()

    @property
    def subtask(self) -> int:
        """Index into ``subtasks`` of the script being executed (``len(subtasks)`` when all ran)."""
        return self.index

    def _next_subtask(self) -> None:
        leave = []
        if 0 <= self.index < len(self.subtasks):
            dy, dz = _LEAVE.get(self.subtasks[self.index], (0.1, 0.0))
            leave = _back_off(self.scene, dy, dz)
        self.index += 1
        self._leave, self._plan, self._k, self._steps, self._held = leave, [], 0, 0, 0
        self._pending = self.index < len(self.subtasks)

    def _waypoint(self) -> Waypoint | None:
        if self._leave:
            return self._leave[0]
        if self._pending:  # plan after leaving the previous object, from the current scene
            jitter = self.rng.uniform(-1, 1, 3) * self.waypoint_noise
            self._plan, self._pending = SCRIPTS[self.subtasks[self.index]](self.scene, jitter), False
        return self._plan[self._k] if self._k < len(self._plan) else None

    def _advance(self) -> None:
        self._steps, self._held = 0, 0
        if self._leave:
            self._leave.pop(0)
        else:
            self._k += 1
            if self._k >= len(self._plan):
                self._next_subtask()

    def act(self, qpos_obs: np.ndarray) -> np.ndarray:
        """Action float32 (9,) in [-1, 1] for the current simulator state; ``qpos_obs`` (9,) is the
        robot joint position the env observed (its controller adds the action to it)."""
        wp = self._waypoint()
        model, data = self.scene.model, self.scene.data
        if wp is None:  # every script ran: hold still
            pos, rot = self.scene.hand
            wp = Waypoint(pos, rot, OPEN)
        dq, dist, ang = dls_step(model, data, self.scene.ee, wp.pos, wp.rot, self.dofs)
        target = data.qpos[:7] + self.gain * dq
        action = np.empty(9)
        action[:7] = (target - qpos_obs[:7]) / (ACTION_SCALE * DT)
        if self.action_noise:
            action[:7] += self.rng.normal(0.0, self.action_noise, 7)
        action[7:] = wp.grip
        self._steps += 1
        if dist < wp.tol and ang < 0.1:
            self._held += 1
        if self._held > wp.hold or self._steps >= wp.max_steps:
            self._advance()
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class KitchenExpert:
    """The scripted controller for one kitchen task (PolyTask expert interface).

    ``act(obs)`` takes a PolyTask observation dict (uses ``obs["state"][:9]``, the observed joint
    positions) and returns a float32 (9,) action in [-1, 1]; it reads object positions from the
    simulator of ``env`` (a :mod:`polytask.suites.kitchen` env) and restarts its script when the env
    has just been reset. Small waypoint jitter drawn from the env's reset-seeded RNG makes the
    demos of different seeds differ (the kitchen's initial state is always the same).

    Args:
        task: kitchen task name (single subtask or sequence).
        env: the env it acts in.
        waypoint_noise: uniform jitter (m) on each script's object position.

    Raises:
        UnknownSubtaskError: for an unknown task name.
    """

    def __init__(self, task: str, env, waypoint_noise: float = 0.005):
        from polytask.suites.kitchen import subtasks_of

        self.env = env.unwrapped
        self.controller = KitchenController(self.env.model, self.env.data, subtasks_of(task),
                                            waypoint_noise=waypoint_noise)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The controller's action for ``obs`` (float32 (9,), in [-1, 1])."""
        if self.env._t == 0:  # first action of an episode
            self.controller.rng = np.random.default_rng(self.env.np_random.integers(2**31))
            self.controller.reset()
        return self.controller.act(obs["state"][:9].astype(np.float64))
