"""ManiSkill 3 suite: Panda tabletop tasks on CPU physics, state observations.

Tasks are ManiSkill env ids without the version suffix: ``PickCube``, ``StackCube``,
``PegInsertionSide`` (all three have ManiSkill motion-planning solutions, the suite's expert; see
:mod:`polytask.experts.maniskill`). Each env is one ManiSkill env (``num_envs=1``,
``sim_backend="physx_cpu"``, ``render_backend="cpu"``) with its torch tensors turned into NumPy:

- observations ``{"state": float32 (D,)}``: ManiSkill's ``obs_mode="state"`` vector (D = 42 for
  PickCube, 48 for StackCube, 43 for PegInsertionSide). It starts with the robot's joint positions
  ``state[:9]`` (7 arm joints, 2 fingers, radians / metres) and velocities ``state[9:18]``, then the
  task's poses and goals. Pixels are not supported yet (``obs_type="pixels"`` raises ValueError).
- actions float32 (8,) in [-1, 1] with the default ``control_mode="pd_joint_delta_pos"``: arm
  joint position targets relative to the current joint positions, ``action[:7] * 0.1`` rad, and the
  gripper target ``action[7]`` (-1 closed, 1 open). This is the controller the motion-planned demos
  (planned as absolute ``pd_joint_pos`` targets) convert to exactly whenever a target is within
  0.1 rad of the current joints (see :mod:`polytask.experts.maniskill`). Other ManiSkill controllers
  with [-1, 1] actions (``pd_ee_delta_pose``, ``pd_ee_delta_pos``, ...) work for the env, not the expert.
- ``info["success"]`` 1.0 on steps where ManiSkill's success test holds. Episodes never terminate
  on success (as in Meta-World; the evaluator stops at the first success); ``terminated`` is
  ManiSkill's ``fail`` where a task has one. They are truncated after ``episode_len`` steps: by
  default :data:`EPISODE_LEN` (100 / 200 / 300, the lengths ManiSkill's own imitation-learning
  baselines use), since the motion-planned demos take longer than ManiSkill's RL limits (50 / 50 / 100).
- ``reset(seed=s)`` gives the same initial state for the same ``s``.
- ``render()``: RGB uint8 (render_size, render_size, 3) from ManiSkill's ``render_camera``
  (software Vulkan: about 5-10 frames/s at 256x256; the first frame also compiles shaders).
- ``reward``: ManiSkill's ``normalized_dense`` reward in [0, 1] per step.

ManiSkill is optional: importing this module needs nothing, building an env raises
:class:`ManiSkillUnavailableError` saying how to install it (``bash scripts/setup_maniskill.sh``).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from polytask.errors import PolyTaskError
from polytask.suites import check_task, make_registered

ENV_ID = "PolyTask/ManiSkill-v0"

#: Tasks (ManiSkill ids without ``-v1``) and their default episode lengths in agent steps (20 Hz).
EPISODE_LEN = {"PickCube": 100, "StackCube": 200, "PegInsertionSide": 300}
TASKS = list(EPISODE_LEN)

#: Instructions for language goals.
DESCRIPTIONS = {
    "PickCube": "pick up the red cube and move it to the green goal",
    "StackCube": "stack the red cube on top of the green cube",
    "PegInsertionSide": "insert the peg into the hole in the box from the side",
}

#: Controllers whose actions are normalised to [-1, 1] (the others take raw joint or pose targets).
CONTROL_MODES = ("pd_joint_delta_pos", "pd_joint_target_delta_pos", "pd_ee_delta_pos", "pd_ee_delta_pose",
                 "pd_ee_target_delta_pos", "pd_ee_target_delta_pose")

INSTALL_HINT = ("run `bash scripts/setup_maniskill.sh` (pip extra polytask[maniskill] plus a Vulkan "
                "driver: on Debian 12 `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`)")


class ManiSkillUnavailableError(PolyTaskError, ImportError):
    """ManiSkill is not installed or finds no Vulkan driver; the message says how to fix it."""


def describe(task: str) -> str:
    """A sentence for ``task`` (language goals)."""
    return DESCRIPTIONS.get(task, task)


def env_id(task: str) -> str:
    """ManiSkill's env id of a task: ``PickCube -> PickCube-v1``."""
    return f"{task}-v1"


def _import_maniskill():
    """Import ManiSkill (registering its envs), or raise :class:`ManiSkillUnavailableError`."""
    try:
        import mani_skill.envs  # noqa: F401
    except ImportError as e:
        raise ManiSkillUnavailableError(f"ManiSkill is not installed ({e}): {INSTALL_HINT}") from e


@functools.cache
def availability() -> tuple[bool, str]:
    """Whether ManiSkill envs can be built here: ``(True, "")`` or ``(False, reason)``.

    Checks in a subprocess (a broken Vulkan driver can crash the process that probes it) that
    ManiSkill imports and that a PickCube env resets on the CPU backends. Takes a few seconds; the
    answer is cached per process.
    """
    import subprocess
    import sys

    try:
        import mani_skill  # noqa: F401
    except ImportError:
        return False, f"ManiSkill is not installed: {INSTALL_HINT}"
    code = ("import gymnasium as gym, mani_skill.envs\n"
            "e = gym.make('PickCube-v1', obs_mode='state', num_envs=1, sim_backend='physx_cpu', render_backend='cpu')\n"
            "e.reset(seed=0); e.close(); print('MANISKILL_OK')")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "building a ManiSkill env timed out after 300 s"
    if "MANISKILL_OK" in proc.stdout:
        return True, ""
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return False, f"ManiSkill is installed but cannot build an env ({tail}); for a missing Vulkan driver {INSTALL_HINT}"


class ManiSkillEnv(gym.Env):
    """One ManiSkill task as a Gymnasium env with PolyTask dict observations (module docstring).

    Args:
        task: task name without version suffix (see :data:`TASKS`), e.g. ``"PickCube"``.
        obs_type: ``"features"`` only (pixels are not supported yet).
        control_mode: a ManiSkill controller from :data:`CONTROL_MODES`; the motion-planner expert
            needs ``"pd_joint_delta_pos"`` (the default).
        episode_len: agent steps before truncation; ``None``: :data:`EPISODE_LEN` of the task.
        render_size: side of the frames returned by :meth:`render` (videos).
        reward_mode: ManiSkill reward mode (``normalized_dense``, ``dense``, ``sparse``, ``none``).

    Raises:
        UnknownTaskError: for a task name the suite does not have (the message lists them).
        ValueError: for ``obs_type="pixels"``, an unknown ``control_mode`` or a bad ``episode_len``.
        ManiSkillUnavailableError: ManiSkill is missing or finds no Vulkan driver.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    render_mode = "rgb_array"

    def __init__(self, task: str, obs_type: str = "features", control_mode: str = "pd_joint_delta_pos",
                 episode_len: int | None = None, render_size: int = 256, reward_mode: str = "normalized_dense"):
        check_task(task, TASKS, "maniskill")
        if obs_type == "pixels":
            raise ValueError("The maniskill suite has state observations only (obs_type=features); "
                             "pixel observations are not supported yet")
        if obs_type != "features":
            raise ValueError(f"obs_type must be 'features' for the maniskill suite, got {obs_type!r}")
        if control_mode not in CONTROL_MODES:
            raise ValueError(f"control_mode must be one of {', '.join(CONTROL_MODES)} (controllers with "
                             f"actions in [-1, 1]), got {control_mode!r}")
        episode_len = EPISODE_LEN[task] if episode_len is None else int(episode_len)
        if episode_len < 1:
            raise ValueError(f"episode_len must be >= 1, got {episode_len}")
        _import_maniskill()
        try:
            env = gym.make(env_id(task), obs_mode="state", control_mode=control_mode, reward_mode=reward_mode,
                           num_envs=1, sim_backend="physx_cpu", render_backend="cpu", render_mode="rgb_array",
                           human_render_camera_configs=dict(width=render_size, height=render_size))
        except RuntimeError as e:
            if "vk::" in str(e) or "Vulkan" in str(e) or "vulkan" in str(e):
                raise ManiSkillUnavailableError(f"ManiSkill found no usable Vulkan driver ({e}): {INSTALL_HINT}") from e
            raise
        self._env = env
        self.task, self.obs_type, self.control_mode = task, obs_type, control_mode
        self.episode_len, self.render_size = episode_len, render_size
        #: The ``reset(seed=)`` of the current episode (None when reset without a seed).
        self.episode_seed: int | None = None
        #: Counts resets, so that an expert can tell that a new episode began.
        self.episode_index = -1
        self._t, self._done = 0, True
        state_dim = int(np.prod(env.unwrapped.single_observation_space.shape))
        self.observation_space = gym.spaces.Dict(
            {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)})
        single = env.unwrapped.single_action_space
        if not (np.all(single.low == -1.0) and np.all(single.high == 1.0)):
            raise ValueError(f"control_mode {control_mode} of {task} does not take actions in [-1, 1]")
        self.action_space = gym.spaces.Box(-1.0, 1.0, single.shape, np.float32)

    @property
    def maniskill_env(self):
        """The underlying ManiSkill ``BaseEnv`` (torch tensors, batch of 1)."""
        return self._env.unwrapped

    def robot_qpos(self) -> np.ndarray:
        """Joint positions of the robot, float32 (9,): 7 arm joints (rad), 2 fingers (m)."""
        return self.maniskill_env.agent.robot.get_qpos().cpu().numpy()[0].astype(np.float32)

    @staticmethod
    def _np(x) -> np.ndarray:
        return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)

    def _obs(self, obs) -> dict[str, np.ndarray]:
        return {"state": self._np(obs).reshape(-1).astype(np.float32)}

    def _info(self, info: dict) -> dict[str, float]:
        return {"success": float(self._np(info["success"]).reshape(-1)[0]) if "success" in info else 0.0}

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed)
        self.episode_seed, self.episode_index = seed, self.episode_index + 1
        self._t, self._done = 0, False
        return self._obs(obs), self._info(info)

    def step(self, action):
        if self._done:
            raise RuntimeError("The episode is over (or was never started): call reset() first")
        import torch

        action = np.clip(np.asarray(action, dtype=np.float32).reshape(self.action_space.shape), -1.0, 1.0)
        obs, reward, _, _, info = self._env.step(torch.from_numpy(action)[None])
        self._t += 1
        terminated = bool(self._np(info["fail"]).reshape(-1)[0]) if "fail" in info else False
        truncated = self._t >= self.episode_len and not terminated
        self._done = terminated or truncated
        return self._obs(obs), float(self._np(reward).reshape(-1)[0]), terminated, truncated, self._info(info)

    def render(self) -> np.ndarray:
        """Frame for videos: uint8 (render_size, render_size, 3)."""
        return np.ascontiguousarray(self._np(self._env.render())[0], dtype=np.uint8)

    def close(self):
        self._env.close()


def make_wrapped(task: str, obs_type: str = "features", control_mode: str = "pd_joint_delta_pos",
                 episode_len: int | None = None, render_size: int = 256, reward_mode: str = "normalized_dense",
                 frame_stack: int = 1) -> gym.Env:
    """:class:`ManiSkillEnv`; gym entry point (``frame_stack`` is accepted for the common suite
    options and unused: there are no pixels to stack)."""
    return ManiSkillEnv(task, obs_type, control_mode, episode_len, render_size, reward_mode)


gym.register(ENV_ID, entry_point="polytask.suites.maniskill:make_wrapped", disable_env_checker=True)


def make(task: str, obs_type: str = "features", seed: int | None = None, **options: Any) -> gym.Env:
    """Make a ManiSkill env through ``gym.make`` so that its spec (and Minari datasets) record every
    option. ``options`` are those of :func:`make_wrapped` (the ``suite.env`` config)."""
    return make_registered(ENV_ID, task, obs_type, seed, **options)
