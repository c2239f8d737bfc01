"""The trained collective at run time: the frozen trajectory transformer and collective actor
(:class:`Collective`), its weights file, and the env wrapper that embeds the last W steps of the
episode so far (:class:`TrajectoryEmbedding`), through which the collective and its students act."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from polytask.errors import ConfigError

#: the observation key :class:`TrajectoryEmbedding` adds: float32 (E,)
EMBEDDING_KEY = "collective_embedding"


def module_state(module: torch.nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{"kwargs": constructor arguments, "state": state_dict}``: a network as plain data and tensors."""
    return {"kwargs": dict(kwargs), "state": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}}


def build_module(cls: type, saved: dict[str, Any], device: torch.device | str = "cpu") -> torch.nn.Module:
    """``cls(**saved["kwargs"])`` with ``saved["state"]`` loaded, frozen (eval mode, no gradients), on ``device``."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["kwargs"].items()}
    module = cls(**kwargs)
    module.load_state_dict(saved["state"])
    return module.to(device).eval().requires_grad_(False)


class Collective:
    """The frozen collective: ``transformer`` (:class:`~polytask.nets.trajectory_transformer.TrajectoryTransformer`)
    embeds a window of W states, W−1 actions and rewards into E dims; ``actor``
    (:class:`~polytask.nets.collective.CollectiveActor`) maps [embedding, state] to the pre-tanh μ and log σ.

    Args:
        state: the plain-data form (:meth:`state_dict`): ``transformer`` and ``actor`` (each
            ``{"kwargs", "state"}``, :func:`module_state`); ``actor`` may be None (a transformer alone).
        device: torch device.
    """

    def __init__(self, state: dict[str, Any], device: torch.device | str = "cpu"):
        from polytask.nets.collective import CollectiveActor
        from polytask.nets.trajectory_transformer import TrajectoryTransformer

        self.device = torch.device(device)
        self._state = state
        self.transformer = build_module(TrajectoryTransformer, state["transformer"], self.device)
        self.actor = build_module(CollectiveActor, state["actor"], self.device) if state.get("actor") else None
        self.window, self.embed_dim = self.transformer.window, self.transformer.cls_dim
        self.obs_dim, self.action_dim = self.transformer.obs_dim, self.transformer.action_dim

    def state_dict(self) -> dict[str, Any]:
        """The plain-data form this collective was made from (tensors and plain values only)."""
        return self._state

    @torch.no_grad()
    def embed(self, window: dict[str, np.ndarray]) -> np.ndarray:
        """float32 (E,) embedding of one window (``obs`` (W, D), ``actions`` (W−1, A), ``rewards`` (W−1,))."""
        t = {k: torch.as_tensor(window[k][None], dtype=torch.float32, device=self.device)
             for k in ("obs", "actions", "rewards")}
        return self.transformer.embed(t["obs"], t["actions"], t["rewards"])[0].cpu().numpy()

    def gaussian(self, embedding: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The collective actor's (pre-tanh μ, log σ), each (B, A), for embeddings (B, E) and states (B, D).

        Raises:
            ConfigError: if this collective holds a transformer only.
        """
        if self.actor is None:
            raise ConfigError("this collective holds no actor yet: run mode=distill_collective first")
        with torch.no_grad():
            return self.actor(embedding.to(self.device), state.to(self.device))


class TrajectoryEmbedding(gym.Wrapper):
    """Adds ``obs["collective_embedding"]`` float32 (E,): the collective's transformer embedding of
    the episode's last W states (the current one last), W−1 actions and rewards, left-padded at the
    episode start (:func:`polytask.collective.windows.last_window`). The wrapped env's observations
    must hold ``state`` (D,); the window's rewards are the env's own (``info["env_reward"]`` where a
    reward wrapper such as :class:`~polytask.suites.wrappers.SparseReward` changed them), as recorded.
    """

    def __init__(self, env: gym.Env, collective: Collective):
        super().__init__(env)
        self.collective = collective
        spaces = dict(env.observation_space.spaces)
        spaces[EMBEDDING_KEY] = gym.spaces.Box(-np.inf, np.inf, (collective.embed_dim,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self._obs: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []

    def _with_embedding(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from polytask.collective.windows import last_window

        window = last_window(self._obs, self._actions, self._rewards, self.collective.window,
                             self.collective.action_dim)
        return {**obs, EMBEDDING_KEY: self.collective.embed(window).astype(np.float32)}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._obs, self._actions, self._rewards = [obs["state"]], [], []
        return self._with_embedding(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        w = self.collective.window  # keep the last W states and the W - 1 steps between them
        self._obs = [*self._obs, obs["state"]][-w:]
        self._actions = [*self._actions, np.asarray(action, np.float32)][-(w - 1):]
        self._rewards = [*self._rewards, float(info.get("env_reward", reward))][-(w - 1):]
        return self._with_embedding(obs), reward, terminated, truncated, info
