"""DeepMind Control suite: the ``dm_control.suite`` tasks with Gymnasium API and 84×84 pixels.

Task names are ``<domain>_<task>`` with dm_control's names (``cheetah_run``, ``walker_walk``,
``quadruped_run``, ...; the ``ball_in_cup`` domain is written ``cup``, e.g. ``cup_catch``), plus the
PolyTask cheetah morphology variants ``cheetah_run_m1`` .. ``cheetah_run_m10`` (torso length
0.5 .. 1.4 m, see :func:`cheetah_variant_xml`).

Observations are dicts: ``state`` float32 (D,), the dm_control observation dict flattened in its key
order (D is task-specific, e.g. 17 for cheetah: 8 positions, 9 velocities) and, for
``obs_type="pixels"``, ``pixels`` uint8 (3, 84, 84) from camera ``camera_id`` (0, or 2 for quadruped;
frame-stacked to (9, 84, 84) by :func:`make`). Actions are float32 (A,) in [-1, 1], rescaled linearly
to the task's action spec where that differs (quadruped). ``reset(seed=s)`` reseeds the task's
``RandomState``, so the same ``s`` gives the same initial state. Episodes never terminate early;
they are truncated at dm_control's time limit (1000 control steps for every benchmark task, i.e.
500 agent steps with action repeat 2). DMC has no success test: ``info["success"]`` is always 0.0,
so use the return to measure performance.
"""

from __future__ import annotations

import functools
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

from polytask.errors import PolyTaskError
from polytask.suites import check_task, make_registered, stack_pixels
from polytask.suites.base import MujocoDictEnv

ENV_ID = "PolyTask/DMC-v0"

#: dm_control domain names shortened in PolyTask task names.
_DOMAIN_ALIASES = {"ball_in_cup": "cup"}
#: Cheetah morphology variant ids (``cheetah_run_m<k>``).
CHEETAH_VARIANT_IDS = range(1, 11)
CHEETAH_VARIANTS = [f"cheetah_run_m{k}" for k in CHEETAH_VARIANT_IDS]
_CHEETAH_TIME_LIMIT = 10.0  # seconds: dm_control's cheetah default (1000 steps of 0.01 s)
#: Camera for pixels where it is not 0 (DrQ/DrQ-v2 convention): quadruped 2 ("y", tracking the torso).
_DEFAULT_CAMERA = {"quadruped": 2}


class TaskIdError(PolyTaskError, ValueError):
    """A cheetah variant id outside 1..10."""


def _suite():
    """``dm_control.suite``, or an ImportError saying how to install it."""
    try:
        from dm_control import suite
    except ImportError as e:
        raise ImportError('The DMC suite needs dm_control: pip install "polytask[dmc]"') from e
    return suite


@functools.cache
def _standard_tasks() -> dict[str, tuple[str, str]]:
    """PolyTask name -> (dm_control domain, task) for every task of ``dm_control.suite.ALL_TASKS``."""
    return {f"{_DOMAIN_ALIASES.get(d, d)}_{t}": (d, t) for d, t in _suite().ALL_TASKS}


def _tasks() -> list[str]:
    if "TASKS" not in globals():
        globals()["TASKS"] = list(_standard_tasks()) + CHEETAH_VARIANTS
    return globals()["TASKS"]


def __getattr__(name: str):
    # ``TASKS`` (all valid task names: dm_control's 51 and the 10 cheetah variants) is computed on
    # first use, so that importing this module (e.g. for the config resolver) needs no dm_control.
    if name == "TASKS":
        return _tasks()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cheetah_variant_tasks(task_ids: int | Iterable[int]) -> list[str]:
    """Names of cheetah morphology variants: ``[1, 3] -> ["cheetah_run_m1", "cheetah_run_m3"]``.

    Raises:
        TaskIdError: for an id that is not an integer in 1..10.
    """
    ids = [task_ids] if isinstance(task_ids, (int, str)) else list(task_ids)
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int) or i not in CHEETAH_VARIANT_IDS]
    if bad or not ids:
        raise TaskIdError(f"Cheetah variant task_id must be integers in 1-10 (torso length 0.5-1.4 m), "
                          f"got {ids!r}; e.g. suite.task_id=[1,2]")
    return [f"cheetah_run_m{i}" for i in ids]


def cheetah_torso_length(variant: int) -> float:
    """Torso length in metres of cheetah variant ``variant`` (1..10): 0.5 + 0.1 * (variant - 1)."""
    cheetah_variant_tasks([variant])
    return round(0.5 + 0.1 * (variant - 1), 6)


def _xs(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def _fmt(values: Iterable[float]) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def cheetah_variant_xml(variant: int) -> tuple[str, dict[str, Any]]:
    """dm_control's cheetah model with the torso length of ``variant`` (``cheetah_torso_length``).

    The torso capsule's ``fromto`` is scaled along x about the torso origin, the thigh bodies
    (``bthigh``/``fthigh``) move with the torso ends, and the head keeps its offset from the front
    end. Everything else is dm_control's model; ``settotalmass`` keeps the total mass at 14 kg.

    Returns:
        ``(xml, assets)`` for ``Physics.from_xml_string``.
    """
    from dm_control.suite import cheetah

    length = cheetah_torso_length(variant)
    xml, assets = cheetah.get_model_and_assets()
    root = ET.fromstring(xml)
    torso = root.find(".//body[@name='torso']")
    geom = torso.find("geom[@name='torso']")
    x0, y0, z0, x1, y1, z1 = _xs(geom.get("fromto"))
    scale = length / (x1 - x0)  # dm_control's torso runs from x=-0.5 to 0.5 (length 1.0)
    geom.set("fromto", _fmt([x0 * scale, y0, z0, x1 * scale, y1, z1]))
    for name in ("bthigh", "fthigh"):
        body = torso.find(f"body[@name='{name}']")
        x, y, z = _xs(body.get("pos"))
        body.set("pos", _fmt([x * scale, y, z]))
    head = torso.find("geom[@name='head']")
    x, y, z = _xs(head.get("pos"))
    head.set("pos", _fmt([x + x1 * (scale - 1.0), y, z]))
    return ET.tostring(root, encoding="unicode"), assets


def _load(task: str, random: Any = None):
    """The ``dm_control.rl.control.Environment`` of a PolyTask DMC task name (already checked)."""
    suite = _suite()
    if task in CHEETAH_VARIANTS:
        from dm_control.rl import control
        from dm_control.suite import cheetah

        physics = cheetah.Physics.from_xml_string(*cheetah_variant_xml(int(task.rsplit("_m", 1)[1])))
        return control.Environment(physics, cheetah.Cheetah(random=random), time_limit=_CHEETAH_TIME_LIMIT)
    domain, name = _standard_tasks()[task]
    env = suite.load(domain, name, task_kwargs={"random": random})
    if domain == "quadruped" and not hasattr(np, "in1d"):
        _patch_quadruped_sensor_names(env.physics)
    return env


def _patch_quadruped_sensor_names(physics) -> None:
    """dm_control 1.0.28's quadruped calls ``np.in1d``, which NumPy 2.4 removed; replace the one
    method that uses it, on this physics instance only, by the same lookup with ``np.isin``."""
    def get_sensor_names(*sensor_types):
        ids = np.flatnonzero(np.isin(physics.model.sensor_type, sensor_types))
        return [physics.model.id2name(i, "sensor") for i in ids]

    physics._get_sensor_names = get_sensor_names


class DMCEnv(MujocoDictEnv):
    """One DMC task as a Gymnasium env with dict observations (no frame stacking).

    Args:
        task: ``<domain>_<task>`` (see :data:`TASKS`), e.g. ``"cheetah_run"`` or ``"cheetah_run_m3"``.
        obs_type: ``"features"`` (state only) or ``"pixels"`` (state and one RGB frame).
        img_size: side of the square pixel observation.
        camera_id: MuJoCo camera (index or name) for pixels and :meth:`render`; ``None``: 0, or 2
            for quadruped.
        render_size: side of frames returned by :meth:`render` (videos).
        action_repeat: control steps per :meth:`step` (rewards summed); the pixel observation is
            rendered once per step, after the last of them.

    Each :meth:`step` is ``action_repeat`` dm_control control steps (``control_timestep`` seconds, e.g. 0.01 s for
    cheetah, 0.025 s for walker). Rendering uses one persistent ``mujoco.Renderer`` per image size
    with shadows, reflections and multisampling off (~20x faster than ``physics.render``).

    Raises:
        UnknownTaskError: for a task name the suite does not have (the message lists them).
    """

    def __init__(self, task: str, obs_type: str = "features", img_size: int = 84,
                 camera_id: int | str | None = None, render_size: int = 256, action_repeat: int = 1):
        check_task(task, _tasks(), "dmc")
        import mujoco

        env = _load(task)
        domain = "cheetah" if task in CHEETAH_VARIANTS else _standard_tasks()[task][0]
        if camera_id is None:
            camera_id = _DEFAULT_CAMERA.get(domain, 0)
        model = env.physics.model.ptr
        if isinstance(camera_id, str):
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera_id) < 0:
                raise ValueError(f"{task} has no camera named {camera_id!r}")
        elif not -1 <= camera_id < model.ncam:
            raise ValueError(f"camera_id must be in -1..{model.ncam - 1} for {task}, got {camera_id}")
        self.task, self.camera_id, self._env = task, camera_id, env
        self._done = True  # an episode must start with reset()
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / env.control_timestep()))}
        spec = env.action_spec()
        dim = sum(int(np.prod(s.shape)) for s in env.observation_spec().values())
        self._setup(obs_type, dim, int(np.prod(spec.shape)), img_size, render_size, action_repeat, model)
        # Specs other than [-1, 1] (quadruped) are reached by a linear map; effectively unbounded
        # ones (LQR's +-1e10) take the [-1, 1] action unchanged.
        low, high = np.broadcast_to(spec.minimum, spec.shape), np.broadcast_to(spec.maximum, spec.shape)
        bounded = np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(np.abs([low, high]) < 1e6)
        self._scale = None
        if bounded and not (np.all(low == -1.0) and np.all(high == 1.0)):
            self._scale = (low.astype(np.float64), high.astype(np.float64))

    @property
    def physics(self):
        """The dm_control ``Physics`` of the task (model/data, named indexing)."""
        return self._env.physics

    # -- rendering -----------------------------------------------------------------------------
    def _scene(self):
        return self._env.physics.model.ptr, self._env.physics.data.ptr, self.camera_id

    def _obs(self, observation) -> dict[str, np.ndarray]:
        return super()._obs(np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in observation.values()]))

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        time_step = self._env.reset()
        self._done = False
        return self._obs(time_step.observation), {"success": 0.0}

    def step(self, action):
        if self._done:
            raise RuntimeError("The episode is over (or was never started): call reset() first")
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if self._scale is not None:
            low, high = self._scale
            action = low + (action + 1.0) * 0.5 * (high - low)
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(action)
            reward += float(time_step.reward or 0.0)
            if time_step.last():
                break
        last = time_step.last()
        # dm_control ends an episode with discount 0 on a real termination (none of the benchmark
        # tasks do) and with discount 1 at the time limit.
        terminated = bool(last and time_step.discount == 0.0)
        self._done = last
        info = {"success": 0.0}  # DMC has no success test
        return self._obs(time_step.observation), reward, terminated, \
            bool(last and not terminated), info

    def close(self):
        self._close_renderers()
        self._env.close()


def make_wrapped(task: str, obs_type: str = "features", action_repeat: int = 2, frame_stack: int = 3,
                 img_size: int = 84, camera_id: int | str | None = None, render_size: int = 256) -> gym.Env:
    """:class:`DMCEnv` with (pixels only) frame stacking; gym entry point."""
    return stack_pixels(DMCEnv(task, obs_type, img_size, camera_id, render_size, action_repeat), obs_type, frame_stack)


gym.register(ENV_ID, entry_point="polytask.suites.dmc:make_wrapped", disable_env_checker=True)


def make(task: str, obs_type: str = "features", seed: int | None = None, **options: Any) -> gym.Env:
    """Make a DMC env through ``gym.make`` so that its spec (and Minari datasets) record every
    option. ``options`` are those of :func:`make_wrapped` (the ``suite.env`` config)."""
    return make_registered(ENV_ID, task, obs_type, seed, **options)
