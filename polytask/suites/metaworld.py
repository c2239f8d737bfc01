"""Meta-World 3 suite: the 50 ``-v3`` tasks with Gymnasium API and 84×84 pixels.

Observations are dicts: ``state`` float32 (39,) (hand, gripper, object poses, previous frame, goal
in ``state[-3:]``) and, for ``obs_type="pixels"``, ``pixels`` uint8 (3, 84, 84) from the ``corner``
camera (frame-stacked to (9, 84, 84) by :func:`make`). Actions are float32 (4,) in [-1, 1]
(end-effector xyz delta, gripper). Each ``reset`` resamples the task variation (object and goal
positions) from the env's RNG, so ``reset(seed=s)`` gives the same variation for the same ``s``.
``info["success"]`` is 1.0 on steps where Meta-World's success test holds. Episodes never terminate
on success; they are truncated after ``episode_len`` simulator steps (500, Meta-World's own).
"""

from __future__ import annotations

import os
import sys
from typing import Any

if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

from polytask.suites import check_task, make_registered, stack_pixels
from polytask.suites.base import MujocoDictEnv

ENV_ID = "PolyTask/MetaWorld-v0"

#: The 16 Meta-World tasks of the PolyTask paper.
POLYTASK16 = [
    "button-press", "button-press-wall", "coffee-button", "door-unlock", "drawer-close",
    "drawer-open", "plate-slide", "plate-slide-back", "plate-slide-back-side", "plate-slide-side",
    "bin-picking", "button-press-topdown", "door-open", "hammer", "button-press-topdown-wall",
    "coffee-pull",
]
#: Meta-World's MT10 set.
MT10 = [
    "reach", "push", "pick-place", "door-open", "drawer-open", "drawer-close",
    "button-press-topdown", "peg-insert-side", "window-open", "window-close",
]


#: Instructions for language goals (PolyTask-style sentences; other tasks use their name in words).
DESCRIPTIONS = {
    "button-press": "press the button", "button-press-wall": "press the button behind the wall",
    "button-press-topdown": "press the button from the top",
    "button-press-topdown-wall": "press the button from the top behind the wall",
    "coffee-button": "press the button on the coffee machine", "coffee-pull": "pull the coffee mug",
    "coffee-push": "push the coffee mug", "door-unlock": "unlock the door", "door-lock": "lock the door",
    "door-open": "open the door", "door-close": "close the door", "drawer-close": "close the drawer",
    "drawer-open": "open the drawer", "plate-slide": "slide the plate into the goal",
    "plate-slide-back": "slide the plate back out of the goal",
    "plate-slide-side": "slide the plate sideways into the goal",
    "plate-slide-back-side": "slide the plate sideways back out of the goal",
    "bin-picking": "pick the cube and place it in the other bin", "hammer": "hammer the nail into the wall",
    "reach": "reach the goal position", "push": "push the puck to the goal", "pick-place": "pick and place the puck",
    "peg-insert-side": "insert the peg into the hole from the side", "window-open": "open the window",
    "window-close": "close the window",
}


def describe(task: str) -> str:
    """A sentence for ``task`` (language goals)."""
    return DESCRIPTIONS.get(task, task.replace("-", " "))


def _all_tasks() -> list[str]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return [name.removesuffix("-v3") for name in ALL_V3_ENVIRONMENTS]


#: All 50 tasks (MT50), without the ``-v3`` suffix.
TASKS = MT50 = _all_tasks()


class MetaWorldEnv(MujocoDictEnv):
    """One Meta-World task as a Gymnasium env with dict observations (no frame stacking).

    Args:
        task: Meta-World task name without version suffix, e.g. ``"hammer"``.
        obs_type: ``"features"`` (state only) or ``"pixels"`` (state and one RGB frame).
        img_size: side of the square pixel observation.
        camera: MuJoCo camera name for pixel observations.
        episode_len: simulator steps before truncation (at most 500).
        render_size: side of frames returned by :meth:`render` (videos).
        action_repeat: simulator steps per :meth:`step` (rewards summed, success maxed); the pixel
            observation is rendered once per step, after the last of them.

    Raises:
        UnknownTaskError: for a task name Meta-World does not have (the message lists them).
    """

    def __init__(self, task: str, obs_type: str = "features", img_size: int = 84,
                 camera: str = "corner", episode_len: int = 500, render_size: int = 256, action_repeat: int = 1):
        check_task(task, TASKS, "metaworld")
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        env = ALL_V3_ENVIRONMENTS[f"{task}-v3"]()
        if not 0 < episode_len <= env.max_path_length:
            raise ValueError(f"episode_len must be in 1..{env.max_path_length}, got {episode_len}")
        self.task, self.camera, self.episode_len = task, camera, episode_len
        # Goal visible, a fresh random variation at every reset, drawn from the env's own RNG.
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)  # cached property: recompute unmasked
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._set_task_called = True
        self._env = env
        self._setup(obs_type, 39, 4, img_size, render_size, action_repeat, env.model)

    # -- rendering -----------------------------------------------------------------------------
    def _scene(self):
        return self._env.model, self._env.data, self.camera

    def _orient(self, frame: np.ndarray) -> np.ndarray:
        # The corner camera's image axes point down/left; a 180° turn gives the upright view.
        return frame[::-1, ::-1]

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(seed)
        state, _ = self._env.reset()
        self._t = 0
        return self._obs(state), {"success": 0.0}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        total, success = 0.0, 0.0
        for _ in range(self.action_repeat):
            state, reward, _, _, info = self._env.step(action)
            self._t += 1
            total += float(reward)
            success = max(success, float(info["success"]))
            if self._t >= self.episode_len:
                break
        return self._obs(state), total, False, self._t >= self.episode_len, {"success": success}

    def close(self):
        self._close_renderers()
        self._env.close()


def make_wrapped(task: str, obs_type: str = "features", action_repeat: int = 2, frame_stack: int = 3,
                 img_size: int = 84, camera: str = "corner", episode_len: int = 500,
                 render_size: int = 256) -> gym.Env:
    """:class:`MetaWorldEnv` with (pixels only) frame stacking; gym entry point."""
    env = MetaWorldEnv(task, obs_type, img_size, camera, episode_len, render_size, action_repeat)
    return stack_pixels(env, obs_type, frame_stack)


gym.register(ENV_ID, entry_point="polytask.suites.metaworld:make_wrapped", disable_env_checker=True)


def make(task: str, obs_type: str = "features", seed: int | None = None, **options: Any) -> gym.Env:
    """Make a Meta-World env through ``gym.make`` so that its spec (and Minari datasets) record every
    option. ``options`` are those of :func:`make_wrapped` (the ``suite.env`` config)."""
    return make_registered(ENV_ID, task, obs_type, seed, **options)
