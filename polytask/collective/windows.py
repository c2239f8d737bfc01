"""Windows of W consecutive states (with the W − 1 actions and rewards between them) cut from
recorded episodes, the trajectory transformer's input: random windows for training
(:func:`sample_windows`) and the last window of a running episode (:func:`last_window`).

An episode is a tuple ``(task_id, obs (T+1, D), actions (T, A), rewards (T,))`` of numpy arrays:
a_t and r_t are the action taken in s_t and the reward it earned, leading to s_{t+1}.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from polytask.errors import ConfigError, PolyTaskError

Episode = tuple[int, np.ndarray, np.ndarray, np.ndarray]


def _check_episode(i: int, ep: Episode) -> None:
    _, obs, actions, rewards = ep
    if obs.ndim != 2 or actions.ndim != 2 or rewards.ndim != 1 or not len(obs) == len(actions) + 1 == len(rewards) + 1:
        raise PolyTaskError(f"episode {i}: expected obs (T+1, D), actions (T, A), rewards (T,), got obs "
                            f"{obs.shape}, actions {actions.shape}, rewards {rewards.shape}")


def sample_windows(episodes: Sequence[Episode], window: int, num: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``num`` windows drawn uniformly (with replacement) over all valid start positions of all
    episodes (an episode of T + 1 states has T + 2 − W of them; shorter episodes are skipped).

    Returns:
        dict ``obs`` float32 (N, W, D), ``actions`` float32 (N, W−1, A), ``rewards`` float32 (N, W−1),
        ``task_id`` int64 (N,).
    Raises:
        ConfigError: for ``window < 2`` or ``num < 1``.
        PolyTaskError: for a malformed episode, or when no episode holds ``window`` states.
    """
    if window < 2 or num < 1:
        raise ConfigError(f"sample_windows needs window >= 2 and num >= 1, got window={window}, num={num}")
    for i, ep in enumerate(episodes):
        _check_episode(i, ep)
    starts = np.array([max(len(ep[1]) - window + 1, 0) for ep in episodes], dtype=np.int64)
    if starts.sum() == 0:
        longest = max((len(ep[1]) for ep in episodes), default=0)
        raise PolyTaskError(f"no episode holds a window of {window} states (longest: {longest} states, "
                            f"{len(episodes)} episodes); record longer episodes or use a shorter window")
    flat = rng.integers(0, starts.sum(), size=num)
    ep_idx = np.searchsorted(np.cumsum(starts), flat, side="right")
    offsets = flat - (np.cumsum(starts) - starts)[ep_idx]
    picked = [(episodes[e], s) for e, s in zip(ep_idx, offsets)]
    return {"obs": np.stack([ep[1][s:s + window] for ep, s in picked]).astype(np.float32),
            "actions": np.stack([ep[2][s:s + window - 1] for ep, s in picked]).astype(np.float32),
            "rewards": np.stack([ep[3][s:s + window - 1] for ep, s in picked]).astype(np.float32),
            "task_id": np.array([ep[0] for ep, _ in picked], dtype=np.int64)}


def last_window(obs_hist: np.ndarray | Sequence, act_hist: np.ndarray | Sequence, rew_hist: np.ndarray | Sequence,
                window: int, action_dim: int | None = None) -> dict[str, np.ndarray]:
    """The last ``window`` states of a running episode, left-padded at the episode start.

    With fewer than ``window`` states so far, the first state is repeated in front, with zero
    actions and zero rewards between the repeats (as if the robot had stood still), so the window
    always ends at the current state.

    Args:
        obs_hist: (n, D) states so far (n >= 1, the last is the current state).
        act_hist: (n − 1, A) actions so far (a list of (A,) arrays or an array).
        rew_hist: (n − 1,) rewards so far.
        window: W.
        action_dim: A; needed only when ``act_hist`` is empty and not a (0, A) array.

    Returns:
        dict ``obs`` float32 (W, D), ``actions`` float32 (W−1, A), ``rewards`` float32 (W−1,).
    Raises:
        PolyTaskError: for histories of inconsistent lengths, no state, or an unknown action dim.
    """
    obs = np.asarray(obs_hist, dtype=np.float32)
    acts = np.asarray(act_hist, dtype=np.float32)
    rews = np.asarray(rew_hist, dtype=np.float32).reshape(-1)
    if acts.ndim != 2:
        if len(acts) or action_dim is None:
            raise PolyTaskError(f"last_window: act_hist must be (n − 1, A), got shape {acts.shape} (pass action_dim "
                                "with an empty history)")
        acts = np.zeros((0, action_dim), np.float32)
    if obs.ndim != 2 or len(obs) == 0 or len(acts) != len(obs) - 1 or len(rews) != len(acts):
        raise PolyTaskError(f"last_window: expected n >= 1 states (n, D), n − 1 actions and rewards, got states "
                            f"{obs.shape}, actions {acts.shape}, rewards {rews.shape}")
    keep = min(len(acts), window - 1)
    obs, acts, rews = obs[-window:], acts[len(acts) - keep:], rews[len(rews) - keep:]
    pad = window - len(obs)
    return {"obs": np.concatenate([np.repeat(obs[:1], pad, axis=0), obs]),
            "actions": np.concatenate([np.zeros((pad, acts.shape[1]), np.float32), acts]),
            "rewards": np.concatenate([np.zeros(pad, np.float32), rews])}


def trailing_windows(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, window: int) -> dict[str, np.ndarray]:
    """For every state s_t of one episode, the window ending at it, padded at the start exactly as
    :func:`last_window` does: the embeddings a collective actor sees at run time, for all its
    training states at once.

    Args:
        obs: (T+1, D). actions: (T, A). rewards: (T,). window: W >= 2.

    Returns:
        dict ``obs`` float32 (T+1, W, D), ``actions`` float32 (T+1, W−1, A), ``rewards`` float32 (T+1, W−1);
        row t equals ``last_window(obs[:t+1], actions[:t], rewards[:t], W)``.
    Raises:
        ConfigError: for ``window < 2``. PolyTaskError: for a malformed episode.
    """
    if window < 2:
        raise ConfigError(f"trailing_windows needs window >= 2, got {window}")
    obs, actions, rewards = (np.asarray(x, np.float32) for x in (obs, actions, rewards))
    _check_episode(0, (0, obs, actions, rewards))
    obs_p = np.concatenate([np.repeat(obs[:1], window - 1, axis=0), obs])
    act_p = np.concatenate([np.zeros((window - 1, actions.shape[1]), np.float32), actions])
    rew_p = np.concatenate([np.zeros(window - 1, np.float32), rewards])
    view = np.lib.stride_tricks.sliding_window_view
    return {"obs": np.ascontiguousarray(view(obs_p, window, axis=0).transpose(0, 2, 1)),
            "actions": np.ascontiguousarray(view(act_p, window - 1, axis=0).transpose(0, 2, 1)),
            "rewards": np.ascontiguousarray(view(rew_p, window - 1, axis=0))}


def to_tensors(windows: dict[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The same dict as torch tensors on ``device`` (floats float32, ``task_id`` int64)."""
    return {k: torch.as_tensor(v, dtype=torch.int64 if k == "task_id" else torch.float32, device=device)
            for k, v in windows.items()}
