"""Franka Kitchen suite: gymnasium-robotics ``FrankaKitchen-v1`` with PolyTask's tasks.

Tasks are one subtask or a sequence of them. PolyTask's single-subtask names ``task1`` .. ``task7``
are bottom burner, top burner, light switch, slide cabinet, hinge cabinet, microwave and kettle; the
same subtasks have readable names (``bottom-burner``, ``top-burner``, ``light-switch``,
``slide-cabinet``, ``hinge-cabinet``, ``microwave``, ``kettle``). A multi-subtask task joins short
names with ``-`` (short names: ``burner`` = bottom burner, ``topburner``, ``light``, ``slide``,
``hinge``, ``microwave``, ``kettle``), e.g. the D4RL sequences ``microwave-kettle-light-slide``
(kitchen-complete/partial) and ``microwave-kettle-burner-light`` (kitchen-mixed).

Observations are dicts: ``state`` float32 (59,) (robot joint positions 9, velocities 9, object
positions 21, velocities 20, with the env's uniform observation noise unless ``obs_noise=False``)
and, for ``obs_type="pixels"``, ``pixels`` uint8 (3, 84, 84) from PolyTask's kitchen camera (free
camera at distance 2.2 looking at (-0.2, 0.5, 2.0), azimuth 70°, elevation -35°). Actions are
float32 (9,) in [-1, 1]: joint velocities (the position target is the observed joint position plus
``2 · a · 0.08`` rad). A subtask is done when its object joints are within 0.3 (L2) of their goal;
the reward is the number of subtasks completed on that step, so the return counts completed
subtasks. ``info["success"]`` is 1.0 once every subtask of the task is done (the episode then
terminates unless ``terminate_on_success=False``); ``info["completed"]`` lists the subtasks done so
far (in completion order) and ``info["subtask_success"]`` float32 (n_subtasks,) flags each subtask
of the task in task order. Episodes are truncated after ``episode_len`` steps (280, the env's own).
The initial state is the same at every reset; only the observation noise depends on the seed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

from polytask.suites import UnknownTaskError, make_registered, stack_pixels
from polytask.suites.base import MujocoDictEnv

ENV_ID = "PolyTask/Kitchen-v0"

#: Subtasks in PolyTask's order (``task<k>`` is ``SUBTASKS[k-1]``), named as in gymnasium-robotics.
SUBTASKS = ["bottom burner", "top burner", "light switch", "slide cabinet", "hinge cabinet", "microwave", "kettle"]
#: Short names usable in multi-subtask task names (``microwave-kettle-light-slide``).
SHORT_NAMES = {"burner": "bottom burner", "topburner": "top burner", "light": "light switch",
               "slide": "slide cabinet", "hinge": "hinge cabinet", "microwave": "microwave", "kettle": "kettle"}
#: Readable single-subtask names.
READABLE = {name.replace(" ", "-"): name for name in SUBTASKS}
#: PolyTask's task ids.
TASK_IDS = {f"task{k + 1}": name for k, name in enumerate(SUBTASKS)}
#: Named multi-subtask tasks (the D4RL sequences).
SEQUENCES = ["microwave-kettle-light-slide", "microwave-kettle-burner-light"]
#: PolyTask's six distillation tasks (hinge cabinet, task5, is unused there).
POLYTASK6 = ["task1", "task2", "task3", "task4", "task6", "task7"]
#: Every named task; other ``-``-joined sequences of short names are accepted too.
TASKS = list(TASK_IDS) + list(READABLE) + SEQUENCES

_CAMERA = {"distance": 2.2, "lookat": (-0.2, 0.5, 2.0), "azimuth": 70.0, "elevation": -35.0}


class UnknownSubtaskError(UnknownTaskError):
    """A kitchen subtask name that does not exist; the message lists the valid ones."""


def subtasks_of(task: str) -> list[str]:
    """The subtasks (gymnasium-robotics names, in order) of ``task``.

    Raises:
        UnknownSubtaskError: naming the unknown part and listing the valid task and short names.
    """
    if task in TASK_IDS:
        return [TASK_IDS[task]]
    if task in READABLE:
        return [READABLE[task]]
    if task in SUBTASKS:
        return [task]
    parts = task.split("-")
    unknown = [p for p in parts if p not in SHORT_NAMES]
    if unknown or not parts:
        raise UnknownSubtaskError(
            f"Unknown kitchen task {task!r} (unknown part(s): {', '.join(map(repr, unknown))}). Valid tasks: "
            f"{', '.join(TASKS)}; or join short subtask names with '-': {', '.join(SHORT_NAMES)}")
    names = [SHORT_NAMES[p] for p in parts]
    if len(set(names)) != len(names):
        raise UnknownSubtaskError(f"Kitchen task {task!r} repeats a subtask; each subtask can be done once.")
    return names


def describe(task: str) -> str:
    """A sentence for ``task`` (language goals), e.g. ``"open the microwave, then move the kettle"``."""
    phrases = {"bottom burner": "turn on the bottom burner", "top burner": "turn on the top burner",
               "light switch": "turn on the light switch", "slide cabinet": "open the slide cabinet",
               "hinge cabinet": "open the hinge cabinet", "microwave": "open the microwave",
               "kettle": "move the kettle to the top burner"}
    return ", then ".join(phrases[s] for s in subtasks_of(task))


def _kitchen_class():
    try:
        import gymnasium_robotics  # noqa: F401  (registers the envs; needed for the class import below)
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
            KitchenEnv as Upstream,
        )
    except ImportError as e:
        raise ImportError('The kitchen suite needs gymnasium-robotics: pip install "polytask[robotics]"') from e
    return Upstream


class KitchenEnv(MujocoDictEnv):
    """One kitchen task as a Gymnasium env with dict observations (no frame stacking).

    Args:
        task: a task name (see the module docstring), e.g. ``"task6"``, ``"microwave"`` or
            ``"microwave-kettle-light-slide"``.
        obs_type: ``"features"`` (state only) or ``"pixels"`` (state and one RGB frame).
        img_size: side of the square pixel observation.
        episode_len: agent steps before truncation (280, the env's own).
        render_size: side of frames returned by :meth:`render` (videos).
        action_repeat: simulator steps (of 0.08 s) per :meth:`step`; rewards summed.
        obs_noise: keep the env's uniform observation noise (robot 0.01, objects 5e-4 of the
            config amplitudes); ``False`` for exact scripted rollouts.
        terminate_on_success: end the episode once every subtask is done (the env's default).

    Raises:
        UnknownSubtaskError: for an unknown task name (the message lists the valid ones).
    """

    def __init__(self, task: str, obs_type: str = "features", img_size: int = 84, episode_len: int = 280,
                 render_size: int = 256, action_repeat: int = 1, obs_noise: bool = True,
                 terminate_on_success: bool = True):
        self.subtasks = subtasks_of(task)
        if episode_len < 1:
            raise ValueError(f"episode_len must be >= 1, got {episode_len}")
        noise = {} if obs_noise else {"robot_noise_ratio": 0.0, "object_noise_ratio": 0.0}
        self.kitchen = _kitchen_class()(tasks_to_complete=self.subtasks, terminate_on_tasks_completed=False,
                                        remove_task_when_completed=True, **noise)
        self.task, self.episode_len, self.terminate_on_success = task, episode_len, terminate_on_success
        self.model, self.data = self.kitchen.model, self.kitchen.data
        import mujoco

        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.distance, self._camera.azimuth = _CAMERA["distance"], _CAMERA["azimuth"]
        self._camera.elevation, self._camera.lookat[:] = _CAMERA["elevation"], _CAMERA["lookat"]
        self._t = 0
        self._completed: list[str] = []
        self._setup(obs_type, 59, 9, img_size, render_size, action_repeat, self.model)

    # -- rendering -----------------------------------------------------------------------------
    def _scene(self):
        return self.model, self.data, self._camera

    # -- gymnasium API -------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        done = np.array([s in self._completed for s in self.subtasks], np.float32)
        return {"success": float(done.all()), "completed": list(self._completed), "subtask_success": done}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # The upstream env draws its noise from its own RNG: seed it from ours so reset(seed) repeats.
        obs, _ = self.kitchen.reset(seed=int(self.np_random.integers(2**31)))
        self._t, self._completed = 0, []
        return self._obs(obs["observation"]), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        total = 0.0
        for _ in range(self.action_repeat):
            obs, reward, _, _, info = self.kitchen.step(action)
            self._t += 1
            total += float(reward)
            # The upstream list is aliased and cleared at reset: keep our own copy.
            self._completed = list(info["episode_task_completions"])
            if self._t >= self.episode_len or len(self._completed) == len(self.subtasks):
                break
        info = self._info()
        terminated = bool(self.terminate_on_success and info["success"])
        return self._obs(obs["observation"]), total, terminated, self._t >= self.episode_len, info

    def close(self):
        self._close_renderers()
        self.kitchen.close()


def make_wrapped(task: str, obs_type: str = "features", action_repeat: int = 1, frame_stack: int = 1,
                 img_size: int = 84, episode_len: int = 280, render_size: int = 256, obs_noise: bool = True,
                 terminate_on_success: bool = True) -> gym.Env:
    """:class:`KitchenEnv` with (pixels only) frame stacking; gym entry point."""
    env = KitchenEnv(task, obs_type, img_size, episode_len, render_size, action_repeat, obs_noise,
                     terminate_on_success)
    return stack_pixels(env, obs_type, frame_stack)


gym.register(ENV_ID, entry_point="polytask.suites.kitchen:make_wrapped", disable_env_checker=True)


def make(task: str, obs_type: str = "features", seed: int | None = None, **options: Any) -> gym.Env:
    """Make a kitchen env through ``gym.make`` so that its spec (and Minari datasets) record every
    option. ``options`` are those of :func:`make_wrapped` (the ``suite.env`` config).

    Raises:
        UnknownSubtaskError: for an unknown task name.
    """
    subtasks_of(task)  # fail before gym.make wraps the error
    return make_registered(ENV_ID, task, obs_type, seed, **options)
