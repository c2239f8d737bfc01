"""The simulated stand-in of the xArm: a mocap-driven gripper in MuJoCo (the real controller does the
inverse kinematics, so what must match is the Cartesian interface) and simple versions of the
PolyTask robot tasks, each with a success test and the object positions its scripted expert reads.

The world frame is the robot base frame in metres (the table top is z = 0). The gripper body is
welded to a mocap body, which moves in a straight line to each target over ``move_time`` s of
simulated time (the real arm's ``set_position`` moves the same way); its weight is compensated.
"""

from __future__ import annotations

import os
import sys

if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from polytask.suites.robotgym.control import Robot
from polytask.suites.robotgym.task import TaskSpec

#: The objects of each simulated task (MJCF inside ``<worldbody>``) and its fixed-to-gripper parts.
SCENES = {
    "reach": ("""
      <body name="target" pos="0.45 0.05 0.15"><site name="target" size="0.015" rgba="1 0.2 0.2 1"/></body>""", ""),
    "boxopen": ("""
      <body name="box" pos="0.48 0 0">
        <geom type="box" size="0.06 0.06 0.04" pos="0 0 0.04" rgba="0.55 0.35 0.2 1"/>
        <body name="lid" pos="0 0 0.081">
          <joint name="lid" type="slide" axis="1 0 0" range="0 0.12" limited="true" damping="3"/>
          <geom type="box" size="0.065 0.065 0.004" pos="0 0 0.004" rgba="0.7 0.5 0.3 1" mass="0.05"/>
          <geom type="box" size="0.015 0.025 0.03" pos="-0.045 0 0.038" rgba="0.9 0.8 0.2 1" mass="0.01"/>
        </body>
      </body>""", ""),
    "drawerclose": ("""
      <body name="cabinet" pos="0.56 0 0">
        <geom type="box" size="0.08 0.1 0.005" pos="0 0 0.095" rgba="0.4 0.4 0.45 1"/>
        <geom type="box" size="0.08 0.005 0.05" pos="0 0.105 0.05" rgba="0.4 0.4 0.45 1"/>
        <geom type="box" size="0.08 0.005 0.05" pos="0 -0.105 0.05" rgba="0.4 0.4 0.45 1"/>
        <body name="drawer" pos="0 0 0.045">
          <joint name="drawer" type="slide" axis="1 0 0" range="-0.15 0" limited="true" damping="2"/>
          <geom type="box" size="0.075 0.095 0.005" pos="0 0 -0.035" rgba="0.6 0.45 0.3 1" mass="0.2"/>
          <geom type="box" size="0.005 0.1 0.045" pos="-0.08 0 0" rgba="0.75 0.55 0.35 1" mass="0.1"/>
        </body>
      </body>""", ""),
    "insertpeg": ("""
      <body name="hole_green" pos="0.45 0.08 0">{walls_green}</body>
      <body name="hole_yellow" pos="0.45 -0.08 0">{walls_yellow}</body>""",
                  """<geom type="box" size="0.01 0.01 0.04" pos="0 0 -0.04" rgba="0.3 0.3 0.9 1" mass="0.01"/>"""),
    "pour2d": ("""
      <body name="bowl" pos="0.45 -0.1 0">
        <geom type="cylinder" size="0.06 0.005" pos="0 0 0.005" rgba="0.9 0.9 0.9 1"/>
        <geom type="box" size="0.06 0.004 0.02" pos="0 0.058 0.025" rgba="0.9 0.9 0.9 1"/>
        <geom type="box" size="0.06 0.004 0.02" pos="0 -0.058 0.025" rgba="0.9 0.9 0.9 1"/>
        <geom type="box" size="0.004 0.06 0.02" pos="0.058 0 0.025" rgba="0.9 0.9 0.9 1"/>
        <geom type="box" size="0.004 0.06 0.02" pos="-0.058 0 0.025" rgba="0.9 0.9 0.9 1"/>
      </body>""", """<geom type="cylinder" size="0.03 0.04" pos="0 0 -0.04" rgba="0.9 0.4 0.1 1" mass="0.01"/>"""),
}

#: The simulated scene of each task name (both peg tasks share one scene with two holes).
TASK_SCENES = {"reach": "reach", "boxopen": "boxopen", "drawerclose": "drawerclose", "insertpeg_green": "insertpeg",
               "insertpeg_yellow": "insertpeg", "pour2d": "pour2d"}

HOLE_HALF_WIDTH = 0.016  # m, half the side of a peg hole's opening (the peg's half side is 0.01)
HOLE_DEPTH = 0.05        # m
PEG_LENGTH = 0.08        # m below the gripper's tool centre point (TCP)
CUP_HEIGHT = 0.08        # m


def _hole_walls(rgba: str) -> str:
    """Four boxes around a square opening of ``HOLE_HALF_WIDTH`` centred on the body."""
    w, d, t = HOLE_HALF_WIDTH, HOLE_DEPTH / 2, 0.015
    walls = [(w + t, 0, t, w + 2 * t), (-(w + t), 0, t, w + 2 * t), (0, w + t, w, t), (0, -(w + t), w, t)]
    return "".join(f'<geom type="box" size="{sx} {sy} {d}" pos="{x} {y} {d}" rgba="{rgba}"/>'
                   for x, y, sx, sy in walls)


def scene_xml(scene: str) -> str:
    """The MJCF of one simulated task: table, camera, mocap-welded gripper and the task's objects."""
    objects, held = SCENES[scene]
    objects = objects.format(walls_green=_hole_walls("0.2 0.8 0.2 1"), walls_yellow=_hole_walls("0.9 0.85 0.1 1"))
    return f"""
<mujoco model="robotgym_{scene}">
  <option timestep="0.002" gravity="0 0 -9.81"/>
  <visual><global offwidth="512" offheight="512"/><quality shadowsize="0"/></visual>
  <worldbody>
    <light pos="0.4 0 1.2" dir="0 0 -1" diffuse="0.8 0.8 0.8"/>
    <geom name="table" type="plane" size="1 1 0.01" rgba="0.8 0.8 0.75 1"/>
    <body name="lookat" pos="0.45 0 0.08"/>
    <camera name="front" pos="0.85 -0.45 0.5" mode="targetbody" target="lookat" fovy="50"/>
    <body name="mocap" mocap="true" pos="0.4 0 0.3"/>
    <body name="gripper" pos="0.4 0 0.3" gravcomp="1">
      <freejoint/>
      <geom type="box" size="0.012 0.03 0.02" pos="0 0 0.02" rgba="0.2 0.2 0.2 1" mass="0.2"/>
      <geom type="box" size="0.03 0.04 0.01" pos="0 0 0.05" rgba="0.35 0.35 0.35 1" mass="0.2"/>
      <geom type="cylinder" size="0.02 0.05" pos="0 0 0.11" rgba="0.85 0.85 0.85 1" mass="0.1"/>
      {held}
      <body name="finger_l" pos="0 0.02 0.0">
        <joint name="finger_l" type="slide" axis="0 1 0" range="0 0.02" limited="true"/>
        <geom type="box" size="0.008 0.004 0.015" pos="0 0 -0.015" rgba="0.1 0.1 0.1 1" mass="0.01"/>
      </body>
      <body name="finger_r" pos="0 -0.02 0.0">
        <joint name="finger_r" type="slide" axis="0 -1 0" range="0 0.02" limited="true"/>
        <geom type="box" size="0.008 0.004 0.015" pos="0 0 -0.015" rgba="0.1 0.1 0.1 1" mass="0.01"/>
      </body>
    </body>
    {objects}
  </worldbody>
  <equality><weld body1="mocap" body2="gripper" solref="0.01 1"/></equality>
  <actuator>
    <position joint="finger_l" kp="50" ctrlrange="0 0.02"/>
    <position joint="finger_r" kp="50" ctrlrange="0 0.02"/>
  </actuator>
</mujoco>"""


class SimRobot(Robot):
    """The MuJoCo stand-in of the xArm for one task.

    Args:
        task: a task name of :data:`TASK_SCENES`.
        object_noise: m of uniform jitter (±) of the objects' positions at each reset (a person's resets vary).
        move_time: s of simulated time per move (the mocap glides to the target, then holds).

    Raises:
        ConfigError: for a task without a simulated version.
    """

    def __init__(self, task: str, object_noise: float = 0.01, move_time: float = 0.1):
        import mujoco

        from polytask.errors import ConfigError

        if task not in TASK_SCENES:
            raise ConfigError(f"The robot gym has no simulated version of task {task!r}; simulated tasks: "
                              f"{', '.join(TASK_SCENES)}")
        self.task, self.object_noise = task, float(object_noise)
        self.model = mujoco.MjModel.from_xml_string(scene_xml(TASK_SCENES[task]))
        self.model.vis.quality.offsamples = 0
        self.data = mujoco.MjData(self.model)
        self.substeps = max(1, round(move_time / self.model.opt.timestep))
        self._mj = mujoco
        self._renderers: dict[int, object] = {}
        self._gripper = self.model.body("gripper").id
        self._mocap = self.model.body("mocap").mocapid[0]
        self._base = {name: self.model.body(name).pos.copy() for name in
                      ("target", "box", "cabinet", "hole_green", "hole_yellow", "bowl") if self._has_body(name)}

    def _has_body(self, name: str) -> bool:
        return self._mj.mj_name2id(self.model, self._mj.mjtObj.mjOBJ_BODY, name) >= 0

    # -- scene ----------------------------------------------------------------------------------
    def reset(self, spec: TaskSpec, rng: np.random.Generator) -> None:
        mj = self._mj
        mj.mj_resetData(self.model, self.data)
        for name, pos in self._base.items():
            self.model.body(name).pos[:2] = pos[:2] + rng.uniform(-self.object_noise, self.object_noise, 2)
        if self._has_body("drawer"):
            self.data.joint("drawer").qpos[0] = -0.12
        home = spec.home[:3] / 1000.0
        self.data.mocap_pos[self._mocap] = home
        self.data.joint(self.model.body("gripper").jntadr[0]).qpos[:3] = home
        self.data.ctrl[:] = 0.02 if spec.reset_gripper == "open" else 0.0
        mj.mj_forward(self.model, self.data)
        for _ in range(50):  # settle
            mj.mj_step(self.model, self.data)

    def objects(self) -> dict[str, np.ndarray]:
        """World positions (m, (3,)) of the task's objects: what a scripted expert may read."""
        return {name: self.data.body(name).xpos.copy() for name in self._base}

    def joint(self, name: str) -> float:
        """The position of joint ``name`` (rad or m)."""
        return float(self.data.joint(name).qpos[0])

    def tcp(self) -> np.ndarray:
        """The gripper's tool centre point in m, float64 (3,)."""
        return self.data.xpos[self._gripper].copy()

    # -- robot interface ------------------------------------------------------------------------
    def pose(self) -> np.ndarray:
        quat = self.data.xquat[self._gripper]
        w, x, y, z = quat
        roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
        pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1, 1))
        yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        # The gripper body is world-aligned when it points down, as the xArm's TCP at roll 180°.
        return np.concatenate([self.tcp() * 1000.0, np.rad2deg([roll, pitch, yaw]) + (180.0, 0.0, 0.0)])

    def move_to(self, xyz_mm: np.ndarray, rpy_deg: np.ndarray, gripper: str | None) -> None:
        mj = self._mj
        if gripper is not None:
            self.data.ctrl[:] = 0.02 if gripper == "open" else 0.0
        start, goal = self.data.mocap_pos[self._mocap].copy(), np.asarray(xyz_mm, float) / 1000.0
        for i in range(1, self.substeps + 1):
            self.data.mocap_pos[self._mocap] = start + (goal - start) * min(1.0, 2.0 * i / self.substeps)
            mj.mj_step(self.model, self.data)

    def frame(self, size: int) -> np.ndarray:
        mj = self._mj
        if size not in self._renderers:
            self._renderers[size] = mj.Renderer(self.model, size, size)
        r = self._renderers[size]
        r.update_scene(self.data, camera="front")
        r.scene.flags[mj.mjtRndFlag.mjRND_SHADOW] = 0
        r.scene.flags[mj.mjtRndFlag.mjRND_REFLECTION] = 0
        return np.ascontiguousarray(r.render())

    def success(self, spec: TaskSpec, final: bool) -> float:
        return float(success_test(spec.name, self))

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def success_test(task: str, robot: SimRobot) -> bool:
    """Whether simulated ``task`` is done: reach within 3 cm of the target; lid slid 6 cm open;
    drawer within 2 cm of closed; the peg's tip inside the named hole (centred within the opening, at
    least 2 cm deep); the cup over the bowl (within 3 cm) with its bottom 2–8 cm above the table."""
    tcp, objects = robot.tcp(), robot.objects()
    if task == "reach":
        return bool(np.linalg.norm(tcp - objects["target"]) < 0.03)
    if task == "boxopen":
        return robot.joint("lid") > 0.06
    if task == "drawerclose":
        return robot.joint("drawer") > -0.02
    if task.startswith("insertpeg_"):
        hole = objects[f"hole_{task.removeprefix('insertpeg_')}"]
        tip = tcp[2] - PEG_LENGTH
        return bool(np.abs(tcp[:2] - hole[:2]).max() < HOLE_HALF_WIDTH and tip < HOLE_DEPTH - 0.02)
    if task == "pour2d":
        bottom = tcp[2] - CUP_HEIGHT
        return bool(np.linalg.norm(tcp[:2] - objects["bowl"][:2]) < 0.03 and 0.02 < bottom < 0.08)
    raise KeyError(task)
