"""What the MuJoCo suites share: dict observations and fast offscreen rendering."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from polytask.suites.wrappers import check_action_repeat


class MujocoDictEnv(gym.Env):
    """Base of the MuJoCo suites' envs.

    Observations: ``{"state": float32 (D,)}`` plus, for ``obs_type="pixels"``, ``"pixels"`` uint8
    (3, img_size, img_size). Rendering keeps one ``mujoco.Renderer`` per image size with shadows,
    reflections and multisampling off (about 10–20× faster in software than the defaults).
    Subclasses call :meth:`_setup` and implement :meth:`_scene` (and :meth:`_orient` when their
    camera's image needs turning).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    render_mode = "rgb_array"

    def _setup(self, obs_type: str, state_dim: int, action_dim: int, img_size: int, render_size: int,
               action_repeat: int, model: Any) -> None:
        """Validate options and build the spaces; ``model`` is the ``mujoco.MjModel`` to render."""
        if obs_type not in ("features", "pixels"):
            raise ValueError(f"obs_type must be 'features' or 'pixels', got {obs_type!r}")
        self.obs_type, self.img_size, self.render_size = obs_type, img_size, render_size
        self.action_repeat = check_action_repeat(action_repeat)
        model.vis.quality.offsamples = 0  # no multisampling
        self._renderers: dict[int, Any] = {}
        spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
        if obs_type == "pixels":
            spaces["pixels"] = gym.spaces.Box(0, 255, (3, img_size, img_size), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

    def _scene(self) -> tuple[Any, Any, int | str]:
        """``(mujoco.MjModel, mujoco.MjData, camera)`` to render."""
        raise NotImplementedError

    def _orient(self, frame: np.ndarray) -> np.ndarray:
        """Turn a rendered (H, W, 3) frame upright (identity by default)."""
        return frame

    def _frame(self, size: int) -> np.ndarray:
        """RGB frame uint8 (size, size, 3)."""
        import mujoco

        model, data, camera = self._scene()
        if size not in self._renderers:
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
            model.vis.global_.offheight = max(model.vis.global_.offheight, size)
            r = mujoco.Renderer(model, size, size)
            self._renderers[size] = r
        r = self._renderers[size]
        r.update_scene(data, camera=camera)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return np.ascontiguousarray(self._orient(r.render()))

    def render(self) -> np.ndarray:
        """Frame for videos: uint8 (render_size, render_size, 3)."""
        return self._frame(self.render_size)

    def _obs(self, state: np.ndarray) -> dict[str, np.ndarray]:
        obs = {"state": np.asarray(state, dtype=np.float32)}
        if self.obs_type == "pixels":
            obs["pixels"] = self._frame(self.img_size).transpose(2, 0, 1).copy()
        return obs

    def _close_renderers(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
