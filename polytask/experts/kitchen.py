"""Scripted Franka Kitchen expert: Cartesian waypoints turned into joint-velocity actions by
damped-least-squares IK on the ``end_effector`` site (:mod:`polytask.experts.ik`).

Each subtask has a motion script (approach, grasp or push, move, release, back off) whose waypoints
are computed from the simulator when the subtask starts (handle/knob sites, hinge anchors), so
scripts chain in any order from wherever the previous one left the arm, and a script ends early
once its subtask is done with a margin. The gripper points along +y (into the kitchen) with its
fingers spread along x, turned to square up with a door, or pointing down to push the kettle.
Actions follow the env's controller: the position target is the observed joint position plus
``2 · a · 0.08``, so ``a = clip(Δq / 0.16, -1, 1)`` for the servo target that moves the arm by one
IK step over the next env step, found from the current state alone (quasi-static inverse dynamics
of the position servos: gravity and joint damping, see :meth:`KitchenController._arm_target`). The
action is thus a function of the current state and the script's phase, with no hidden integrated
command, so that behaviour cloning can reproduce it. The fingers get the same law toward their
target position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from polytask.data.collect import rollout
from polytask.data.demos import Episode
from polytask.experts.ik import dls_step, rot_y, rot_z, rotation_error
from polytask.suites.kitchen import (
    SHORT_NAMES,
    SUBTASKS,
    UnknownSubtaskError,
    make,
    subtasks_of,
)

#: Seconds per env step (frame skip 40 × 2 ms) and the action scale of the env's velocity control.
DT = 0.08
ACTION_SCALE = 2.0
#: The fingertips reach this far (m) beyond the end-effector site along the approach axis.
FINGER_REACH = 0.05
#: Hand orientation with the gripper pointing along +y and the fingers spread along x (columns:
#: site x axis up, site y axis along world x, approach axis along world y).
R_FORWARD = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
#: The hand pointing down (-z), fingers still spread along x.
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
#: The arm's joint positions at reset (gymnasium-robotics' initial pose), the IK's null-space posture.
REST_POSTURE = np.array([0.148, -1.768, 1.844, -2.477, 0.26, 0.713, 1.595])
#: The end-effector position at reset (with ``R_FORWARD`` roughly its orientation there).
HOME = np.array([-0.43, 0.12, 2.03])
#: Finger positions (m, each finger; the gap between the pads is twice that): open, closed.
OPEN, CLOSE = 0.04, 0.0


@dataclass
class Waypoint:
    """A target pose of the end-effector site: ``pos`` (3,) m, ``rot`` 3×3, ``grip`` finger position
    (m, 0 closed .. 0.04 open); reached within ``tol`` m and 0.1 rad, then held ``hold`` more
    steps; given up after ``max_steps``; approached at up to ``speed`` m per step, the servo
    target leading the joints (beyond gravity compensation) by at most ``lead`` rad (more pushes
    harder against contacts, less overshoots less)."""

    pos: np.ndarray
    rot: np.ndarray
    grip: float
    tol: float = 0.02
    hold: int = 0
    max_steps: int = 30
    speed: float = 0.04
    lead: float = 0.15
    #: Optional closed-loop target: ``track(scene) -> (pos, rot, done)`` replaces ``pos``/``rot``
    #: every step and ends the waypoint when ``done``.
    track: Callable[[Scene], tuple[np.ndarray, np.ndarray, bool]] | None = None


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

    def goal_distance(self, subtask: str) -> float:
        """L2 distance of ``subtask``'s object joints to their goal (done below 0.3)."""
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
            OBS_ELEMENT_GOALS,
            OBS_ELEMENT_INDICES,
        )

        return float(np.linalg.norm(self.data.qpos[OBS_ELEMENT_INDICES[subtask]] - OBS_ELEMENT_GOALS[subtask]))

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
    """Move ``depth`` m in front of ``target`` along the hand's approach axis (``rot[:, 2]``), turn
    to ``rot``, then go in."""
    pre = target - depth * rot[:, 2]
    return [Waypoint(pre, rot, grip, tol=0.05, max_steps=40, speed=0.06),
            Waypoint(pre, rot, grip, tol=0.006, max_steps=8, speed=0.03),
            Waypoint(target, rot, grip, tol=0.01, max_steps=20, speed=0.02)]


def _knob(site: str) -> Callable[[Scene, np.ndarray], list[Waypoint]]:
    """Grasp an oven knob head-on and twist the wrist (+y rotation turns the knob toward its goal)."""

    def script(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
        grasp = scene.site(site) + jitter + np.array([0.0, 0.005 - FINGER_REACH, 0.0])  # tips short of the dial
        # From far away (e.g. the kettle), pass by the reset pose first: reaching the knob from other
        # arm postures runs a wrist joint into its limit.
        wps = [] if np.linalg.norm(scene.hand[0] - HOME) < 0.15 else [Waypoint(HOME, R_FORWARD, 0.025, tol=0.05)]
        wps += _approach(grasp, R_FORWARD, 0.025)  # a narrow opening clears the light switch next to the top knob
        wps.append(Waypoint(grasp, R_FORWARD, CLOSE, hold=3, max_steps=6))
        for angle in (0.4, 0.8, 1.2, 1.6):
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


#: Angle (rad) the hand turns on a door handle before pulling (see :func:`_arc`).
WEDGE = 0.5


def _arc(scene: Scene, site: str, joint: str, door: str, goal: float, jitter: np.ndarray,
         hook: bool, hand_turn: float, height: float = 0.0) -> list[Waypoint]:
    """Take a door handle head-on (the hand square to the door body ``door``) and carry it around
    the hinge to angle ``goal`` (rad): each step the target is the handle's current grasp point
    turned a little further about the hinge (closed loop, so the hand never runs ahead of the door),
    the hand turning by ``hand_turn`` × the door's turn (the handle is a round bar, so it may turn in
    the fingers). With ``hook`` the open hand hooks the bar (see below), else it grasps it. The
    handle is taken ``height`` m above its middle."""
    frame = scene.data.xmat[scene.model.body(door).id].reshape(3, 3)
    yaw = np.arctan2(-frame[0, 1], frame[1, 1])  # the door's normal (its local y) against world y
    rot = rot_z(yaw) @ R_FORWARD
    offset = jitter + 0.01 * rot[:, 2] + np.array([0.0, 0.0, height])  # fingers around the bar
    handle = scene.site(site) + offset
    hinge = scene.anchor(joint)
    start = scene.qpos(joint)
    sign = np.sign(goal - start)
    radial = handle - hinge
    wps = _approach(handle, rot, OPEN)
    if hook:
        # Turning the open hand by WEDGE about the vertical puts its finger on the hinge side behind
        # the bar: the pull hooks the bar with that finger instead of relying on grip friction.
        rot = rot_z(-WEDGE * np.sign(np.cross([0.0, 0.0, 1.0], radial) @ rot[:, 2])) @ rot
        wps.append(Waypoint(handle, rot, OPEN, tol=0.02, max_steps=6))
    else:
        wps.append(Waypoint(handle, rot, CLOSE, hold=3, max_steps=6))

    def track(scene: Scene) -> tuple[np.ndarray, np.ndarray, bool]:
        angle = scene.qpos(joint)
        turn = angle - start + sign * 0.12
        return hinge + rot_z(turn) @ radial, rot_z(hand_turn * turn) @ rot, sign * (angle - goal) >= 0

    wps.append(Waypoint(handle, rot, wps[-1].grip, max_steps=60, speed=0.03 if hook else 0.02, lead=0.3,
                        track=track))
    return wps


def _microwave(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    return _arc(scene, "microhandle_site", "microwave", "microdoorroot", -0.6, jitter, hook=True, hand_turn=1.0)


def _hinge(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    # The handle's middle (2.6 m high) is at the edge of the arm's reach: take it lower (above its
    # standoff), grasp it (turning the hand there drops it) and keep the hand's yaw.
    return _arc(scene, "hinge_site2", "right_hinge_cabinet", "hingerightdoor", 1.3, jitter, hook=False,
                hand_turn=0.0, height=-0.05)


#: The kettle's goal position (gymnasium-robotics' goal for its free joint).
KETTLE_GOAL = np.array([-0.23, 0.75, 1.62])


def _kettle(scene: Scene, jitter: np.ndarray) -> list[Waypoint]:
    """Push the kettle along the stove top from the bottom left to the top left burner with the
    open fingertips on its front face (two contacts keep it from turning)."""
    kettle = scene.body("kettle") + jitter
    half = 0.122  # half depth of the kettle's body (its collision box)
    contact = kettle + np.array([0.0, -half - 0.015, 0.06])
    wps = _approach(contact, R_DOWN, OPEN, depth=0.15)
    goal = KETTLE_GOAL + np.array([0.0, -half, 0.06])
    for frac in (0.5, 1.0):
        wps.append(Waypoint(contact + frac * (goal - contact), R_DOWN, OPEN, tol=0.015, max_steps=25))
    return wps


#: Motion script of each subtask (gymnasium-robotics names).
SCRIPTS: dict[str, Callable[[Scene, np.ndarray], list[Waypoint]]] = {
    "bottom burner": _knob("knob2_site"), "top burner": _knob("knob4_site"), "light switch": _light,
    "slide cabinet": _slide, "hinge cabinet": _hinge, "microwave": _microwave, "kettle": _kettle,
}
#: A script stops once its subtask's goal distance is below this (the env's threshold is 0.3).
DONE_DISTANCE = 0.25
#: How each script leaves its object: (back off along −y, then move along z).
_LEAVE = {"microwave": (0.02, 0.1), "kettle": (0.12, 0.0)}


class KitchenController:
    """Runs the scripts of ``subtasks`` one after the other in a kitchen simulator.

    Args:
        model, data: the kitchen's ``mujoco.MjModel``/``MjData`` (read only; the env steps them).
        subtasks: gymnasium-robotics subtask names, in the order to do them.
        rng: randomness for ``waypoint_noise`` (uniform ±m on each script's object position) and
            ``action_noise`` (Gaussian std on the arm's actions, before clipping).
        action_noise_correlation: ρ in [0, 1) of the action noise's AR(1) process,
            ``n_t = ρ·n_{t-1} + sqrt(1 − ρ²)·ε_t`` with ε_t ~ N(0, action_noise²) (stationary std
            ``action_noise``; 0: independent per step). Correlated noise pushes the arm off the script's
            path by centimetres rather than millimetres, and the labels (``intended_action``) show the
            way back: DART (Laskey et al., 2017) with noise the size of a learned policy's drift.

    Raises:
        UnknownSubtaskError: for a subtask without a script (the message lists the valid ones).
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, subtasks: list[str],
                 rng: np.random.Generator | None = None, waypoint_noise: float = 0.0, action_noise: float = 0.0,
                 action_noise_correlation: float = 0.0):
        unknown = [s for s in subtasks if s not in SCRIPTS]
        if unknown:
            raise UnknownSubtaskError(f"No kitchen script for {unknown}; valid subtasks: {', '.join(SCRIPTS)}")
        if not 0.0 <= action_noise_correlation < 1.0:
            raise ValueError(f"action_noise_correlation must lie in [0, 1), got {action_noise_correlation}")
        self.scene = Scene(model, data)
        self.subtasks = list(subtasks)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.waypoint_noise, self.action_noise = waypoint_noise, action_noise
        self.action_noise_correlation = action_noise_correlation
        self.dofs = np.arange(7)
        # the arm's position servos: gains kp (N·m/rad) and joint damping (N·m·s/rad)
        self._kp = model.actuator_gainprm[:7, 0].copy()
        self._damping = model.dof_damping[:7].copy()
        self.reset()

    def reset(self) -> None:
        """Start from the first subtask (call after the env resets); ``intended_action`` is zeros until
        the first :meth:`act`."""
        self.index = -1
        self.intended_action = np.zeros(9, np.float32)
        self._noise = np.zeros(7)
        self._plan: list[Waypoint] = []
        self._next_subtask()

    @property
    def subtask(self) -> int:
        """Index into ``subtasks`` of the script being executed (``len(subtasks)`` when all ran)."""
        return min(self.index, len(self.subtasks))

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
            pos, rot = self.scene.hand
            first = self._plan[0]
            if np.linalg.norm(rotation_error(first.rot, rot)) > 0.5:  # turn the hand before travelling
                self._plan.insert(0, Waypoint(pos, first.rot, first.grip, tol=0.05, max_steps=8))
        elif (self._plan and self.index < len(self.subtasks)
              and self.scene.goal_distance(self.subtasks[self.index]) < DONE_DISTANCE):
            self._next_subtask()  # done with a margin: skip the rest of the script
            return self._waypoint()
        return self._plan[self._k] if self._k < len(self._plan) else None

    def _advance(self) -> None:
        self._steps, self._held = 0, 0
        if self._leave:
            self._leave.pop(0)
        else:
            self._k += 1
            if self._k >= len(self._plan):
                self._next_subtask()

    def _arm_target(self, dq: np.ndarray, lead: float = 0.15) -> np.ndarray:
        """Position-servo target (7,) that moves the arm by ``dq`` (rad) over the next step.

        Quasi-static inverse dynamics of the env's position servos (force ``kp · (target − q)``
        against joint damping ``d`` at velocity ``dq / DT`` and the bias forces ``qfrc_bias``,
        gravity mostly): ``target = q + clip(d · dq / (DT · kp), ±lead) + qfrc_bias / kp``. It
        depends on the current state only, so the demos' actions are a function of the observation
        (there is no integrated command: a policy cloned from them can reproduce them)."""
        data = self.scene.data
        feed = np.clip(self._damping * dq / (DT * self._kp), -lead, lead)
        return data.qpos[:7] + feed + data.qfrc_bias[:7] / self._kp

    def act(self, qpos_obs: np.ndarray) -> np.ndarray:
        """Action float32 (9,) in [-1, 1] for the current simulator state; ``qpos_obs`` (9,) is the
        robot joint position the env observed (its controller adds the action to it). The same action
        without the ``action_noise`` is kept in ``intended_action`` (float32 (9,), clipped)."""
        wp = self._waypoint()
        action = np.empty(9)
        if wp is None:  # every script ran: hold still, fingers open
            action[:7] = self._arm_target(np.zeros(7)) - qpos_obs[:7]
            action[7:] = OPEN - qpos_obs[7:9]
            self.intended_action = np.clip(action / (ACTION_SCALE * DT), -1.0, 1.0).astype(np.float32)
            return self.intended_action.copy()
        done = False
        if wp.track is not None:
            wp.pos, wp.rot, done = wp.track(self.scene)
        dq, dist, ang = dls_step(self.scene.model, self.scene.data, self.scene.ee, wp.pos, wp.rot, self.dofs,
                                 max_lin=wp.speed, rest=REST_POSTURE)
        action[:7] = (self._arm_target(dq, wp.lead) - qpos_obs[:7]) / (ACTION_SCALE * DT)
        action[7:] = (wp.grip - qpos_obs[7:9]) / (ACTION_SCALE * DT)
        self.intended_action = np.clip(action, -1.0, 1.0).astype(np.float32)
        if self.action_noise:
            rho = self.action_noise_correlation
            self._noise = rho * self._noise + np.sqrt(1.0 - rho**2) * self.rng.normal(0.0, self.action_noise, 7)
            action[:7] += self._noise
        self._steps += 1
        if wp.track is None and dist < wp.tol and ang < 0.1:
            self._held += 1
        if done or self._held > wp.hold or self._steps >= wp.max_steps:
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
        action_noise: std of zero-mean Gaussian noise added to the arm's actions (before clipping).
            The demos then visit states around the script's path, and the noise being independent
            of the state, the mean action a cloned policy fits stays the script's (up to the clipping).
        action_noise_correlation: the noise's AR(1) coefficient (:class:`KitchenController`).

    Raises:
        UnknownSubtaskError: for an unknown task name.
    """

    def __init__(self, task: str, env, waypoint_noise: float = 0.005, action_noise: float = 0.0,
                 action_noise_correlation: float = 0.0):
        self.env = env.unwrapped
        self.controller = KitchenController(self.env.model, self.env.data, subtasks_of(task),
                                            waypoint_noise=waypoint_noise, action_noise=action_noise,
                                            action_noise_correlation=action_noise_correlation)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The controller's action for ``obs`` (float32 (9,), in [-1, 1])."""
        if self.env._t == 0:  # first action of an episode
            self.controller.rng = np.random.default_rng(self.env.np_random.integers(2**31))
            self.controller.reset()
        return self.controller.act(obs["state"][:9].astype(np.float64))


def play_episodes(env_factory, num_episodes: int, seed: int, obs_type: str = "features",
                  subtasks: list[str] | None = None, min_subtasks: int = 3, max_subtasks: int = 4,
                  waypoint_noise: float = 0.01, action_noise: float = 0.1, action_noise_correlation: float = 0.0,
                  episode_len: int = 280,
                  exclude: list[str] | None = None, obs_noise: bool = True,
                  env_options: dict | None = None) -> Iterator[Episode]:
    """Task-agnostic kitchen play (the role of D4RL kitchen-mixed): each episode runs the scripts of
    a random sequence of ``min_subtasks``..``max_subtasks`` distinct subtasks with uniform waypoint
    jitter (``waypoint_noise`` m) and Gaussian action noise (std ``action_noise``, AR(1) coefficient
    ``action_noise_correlation``: :class:`KitchenController`), in an env that
    tracks all seven subtasks and runs the full ``episode_len`` steps.

    Args:
        env_factory: the run's ``env_factory(task)`` (unused: play needs an env over all subtasks,
            built here with ``env_options``, e.g. ``img_size``).
        num_episodes: episodes to yield.
        seed: seeds the sequences, the noise and the resets (episode ``i`` resets with ``seed + i``).
        obs_type: ``"features"`` or ``"pixels"``.
        subtasks: subtasks to draw from (gymnasium-robotics names; default all seven).
        exclude: sequences never drawn as a whole, as task names of short names joined by '-'
            (``microwave-kettle-light-slide``): a drawn sequence equal to one is drawn again, so a
            downstream target sequence is absent from the play data while its subtasks and their
            pairs appear (SPiRL/SkiLD's kitchen setting).
        obs_noise: the env's observation noise, as in the downstream tasks (the scripts read the
            simulator, so it changes what is recorded, not what is done).

    Yields:
        :class:`polytask.data.demos.Episode` with per-step ``infos`` (stored as Minari infos, the
        reset's entry repeating the first step's): ``subtask`` int64 (T,), the index into
        :data:`polytask.suites.kitchen.SUBTASKS` of the script acting at each step (-1 once every
        script ran), ``num_completed`` int64 (T,), subtasks completed after each step, and
        ``intended_action`` float32 (T, 9), each step's action without the action noise (the recorded
        ``action`` is the executed, noisy one; skill stages learn from these labels with
        ``suite.play_action_labels=intended``, as DART labels noisy demonstrations with the expert's intended
        action);
        ``extras["subtasks"]`` lists the drawn sequence. ``success`` is 1.0
        after steps where every drawn subtask is done.

    Raises:
        UnknownSubtaskError: for an unknown name in ``subtasks`` or ``exclude``.
    """

    env, draw = play_env(subtasks, min_subtasks, max_subtasks, exclude, seed, obs_type, obs_noise, episode_len,
                         env_options)
    rng = np.random.default_rng(seed)
    try:
        for i in range(num_episodes):
            order = draw(rng)
            controller = KitchenController(env.unwrapped.model, env.unwrapped.data, order, rng=rng,
                                           waypoint_noise=waypoint_noise, action_noise=action_noise,
                                           action_noise_correlation=action_noise_correlation)
            yield scripted_episode(env, controller, order, seed + i)
    finally:
        env.close()


def play_env(subtasks: list[str] | None, min_subtasks: int, max_subtasks: int, exclude: list[str] | None, seed: int,
             obs_type: str = "features", obs_noise: bool = True, episode_len: int = 280,
             env_options: dict | None = None) -> tuple[Any, Callable[[np.random.Generator], list[str]]]:
    """The play env (all seven subtasks tracked, no termination on success) and ``draw(rng)``, which
    draws a sequence of ``min_subtasks``..``max_subtasks`` distinct subtasks of ``subtasks`` (default
    all seven) that is not one of ``exclude`` (:func:`play_episodes`).

    Raises:
        UnknownSubtaskError: for an unknown name in ``subtasks`` or ``exclude``.
        ValueError: for subtask counts outside 1 <= min_subtasks <= max_subtasks <= len(subtasks).
    """
    pool = list(subtasks or SUBTASKS)
    unknown = [s for s in pool if s not in SUBTASKS]
    if unknown:
        raise UnknownSubtaskError(f"Unknown kitchen subtask(s) {unknown}; valid subtasks: {', '.join(SUBTASKS)}")
    if not 1 <= min_subtasks <= max_subtasks <= len(pool):
        raise ValueError(f"need 1 <= min_subtasks <= max_subtasks <= {len(pool)}, got {min_subtasks}, {max_subtasks}")
    excluded = {tuple(subtasks_of(seq)) for seq in exclude or ()}

    def draw(rng: np.random.Generator) -> list[str]:
        while True:
            order = [str(s) for s in rng.permutation(pool)[: rng.integers(min_subtasks, max_subtasks + 1)]]
            if tuple(order) not in excluded:
                return order

    every = "-".join(short for short, name in SHORT_NAMES.items() if name in SUBTASKS)
    env = make(every, obs_type, seed=seed, obs_noise=obs_noise, terminate_on_success=False, episode_len=episode_len,
               **(env_options or {}))
    return env, draw


def scripted_episode(env, controller: KitchenController, order: list[str], reset_seed: int,
                     execute: Callable[[dict, int, np.ndarray], np.ndarray] | None = None) -> Episode:
    """One episode of ``controller`` running the scripts of ``order`` in the play env ``env``
    (:func:`play_env`) from ``reset(seed=reset_seed)``, recorded with the play data's labels
    (:func:`play_episodes`). The controller is called at every step; ``execute(obs, t, action)``, when
    given, returns the action actually taken at step ``t`` instead of the controller's (noisy)
    ``action`` (DAgger: a learned policy acts, the controller labels), float32 (9,) in [-1, 1]."""
    kitchen = env.unwrapped
    controller.reset()
    labels: list[int] = []
    completed: list[list[str]] = []
    intended: list[np.ndarray] = []

    def policy(obs):
        k = controller.subtask  # the script choosing this step's action
        labels.append(SUBTASKS.index(order[k]) if k < len(order) else -1)
        completed.append(list(kitchen._completed))
        action = controller.act(obs["state"][:9].astype(np.float64))
        intended.append(controller.intended_action)
        return action if execute is None else execute(obs, len(labels) - 1, action)

    ep = rollout(env, policy, reset_seed)
    completed.append(list(kitchen._completed))
    ep.success = np.array([all(s in done for s in order) for done in completed[1:]], np.float32)
    # per step t (the action taken from observation t): its subtask, and how many are done after it
    ep.infos = {"subtask": np.asarray(labels, np.int64),
                "num_completed": np.asarray([len(c) for c in completed[1:]], np.int64),
                "intended_action": np.asarray(intended, np.float32)}
    ep.extras["subtasks"] = order
    return ep
