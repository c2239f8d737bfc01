"""Meta-World 3 suite (DESIGN §4): the 50 ``-v3`` tasks with Gymnasium API and 84×84 pixels.

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
from polytask.suites.wrappers import check_action_repeat

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


class MetaWorldEnv(gym.Env):
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

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, task: str, obs_type: str = "features", img_size: int = 84,
                 camera: str = "corner", episode_len: int = 500, render_size: int = 256, action_repeat: int = 1):
        check_task(task, TASKS, "metaworld")
        self.action_repeat = check_action_repeat(action_repeat)
        if obs_type not in ("features", "pixels"):
            raise ValueError(f"obs_type must be 'features' or 'pixels', got {obs_type!r}")
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.task, self.obs_type, self.camera = task, obs_type, camera
        self.img_size, self.render_size = img_size, render_size
        env = ALL_V3_ENVIRONMENTS[f"{task}-v3"]()
        if not 0 < episode_len <= env.max_path_length:
            raise ValueError(f"episode_len must be in 1..{env.max_path_length}, got {episode_len}")
        self.episode_len = episode_len
        # Goal visible, a fresh random variation at every reset, drawn from the env's own RNG.
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)  # cached property: recompute unmasked
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._set_task_called = True
        env.model.vis.quality.offsamples = 0  # no multisampling: ~10x faster software rendering
        self._env = env
        self._renderers: dict[int, Any] = {}

        spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (39,), np.float32)}
        if obs_type == "pixels":
            spaces["pixels"] = gym.spaces.Box(0, 255, (3, img_size, img_size), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.render_mode = "rgb_array"

    # -- rendering -----------------------------------------------------------------------------
    def _frame(self, size: int) -> np.ndarray:
        """RGB frame uint8 (size, size, 3) from ``self.camera``, upright, shadows/reflections off."""
        import mujoco

        if size not in self._renderers:
            self._renderers[size] = mujoco.Renderer(self._env.model, size, size)
        r = self._renderers[size]
        r.update_scene(self._env.data, camera=self.camera)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        # The corner camera's image axes point down/left; a 180° turn gives the upright view.
        return np.ascontiguousarray(r.render()[::-1, ::-1])

    def render(self) -> np.ndarray:
        """Frame for videos: uint8 (render_size, render_size, 3)."""
        return self._frame(self.render_size)

    def _obs(self, state: np.ndarray) -> dict[str, np.ndarray]:
        obs = {"state": state.astype(np.float32)}
        if self.obs_type == "pixels":
            obs["pixels"] = self._frame(self.img_size).transpose(2, 0, 1).copy()
        return obs

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
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
        self._env.close()


def make_wrapped(task: str, obs_type: str = "features", action_repeat: int = 2, frame_stack: int = 3,
                 img_size: int = 84, camera: str = "corner", episode_len: int = 500,
                 render_size: int = 256) -> gym.Env:
    """:class:`MetaWorldEnv` with (pixels only) frame stacking; gym entry point."""
    return stack_pixels(MetaWorldEnv(task, obs_type, img_size, camera, episode_len, render_size, action_repeat), obs_type, frame_stack)


gym.register(ENV_ID, entry_point="polytask.suites.metaworld:make_wrapped", disable_env_checker=True)


def make(task: str, obs_type: str = "features", seed: int | None = None, **options: Any) -> gym.Env:
    """Make a Meta-World env through ``gym.make`` so that its spec (and Minari datasets) record every
    option. ``options`` are those of :func:`make_wrapped` (the ``suite.env`` config)."""
    return make_registered(ENV_ID, task, obs_type, seed, **options)
