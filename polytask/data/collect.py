"""Rolling out an expert to make demonstrations."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from polytask.data.demos import Episode

log = logging.getLogger(__name__)

#: Demonstrations use reset seeds DEMO_SEED_BASE, DEMO_SEED_BASE+1, ...; evaluation uses other seeds
#: (see ``polytask.training.evaluator.EVAL_SEED_BASE``) so policies are never scored on demo layouts.
DEMO_SEED_BASE = 0


def rollout(env: gym.Env, policy: Callable[[dict], np.ndarray], seed: int | None) -> Episode:
    """Run one episode of ``policy`` in ``env`` from ``reset(seed=seed)`` and record it.

    ``env`` must not stack frames: the episode stores one observation per step.
    """
    obs, _ = env.reset(seed=seed)
    keys = list(obs)
    traj: dict[str, list] = {k: [obs[k]] for k in keys}
    actions, rewards, terms, truncs, succ = [], [], [], [], []
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        for k in keys:
            traj[k].append(obs[k])
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        succ.append(float(info.get("success", 0.0)))
        if terminated or truncated:
            break
    return Episode(obs={k: np.stack(v) for k, v in traj.items()},
                   action=np.asarray(actions, np.float32), reward=np.asarray(rewards, np.float32),
                   terminated=np.asarray(terms, bool), truncated=np.asarray(truncs, bool),
                   success=np.asarray(succ, np.float32), seed=seed)


@dataclass
class CollectStats:
    """What a collection did: attempts, kept episodes, accepted episodes, time."""

    attempts: int
    kept: int
    successes: int
    seconds: float

    @property
    def episodes_per_s(self) -> float:
        """Attempted episodes (kept or not) per wall-clock second."""
        return self.attempts / max(self.seconds, 1e-9)


def is_success(ep: Episode) -> bool:
    """Whether the task's success test held at some step."""
    return bool(ep.success.max(initial=0.0) > 0)


def collect_episodes(env: gym.Env, policy: Callable[[dict], np.ndarray], num_episodes: int,
                     keep_failed: bool = False, seed_base: int = DEMO_SEED_BASE,
                     max_attempts: int | None = None, desc: str = "demos",
                     accept: Callable[[Episode], bool] = is_success) -> tuple[list[Episode], CollectStats]:
    """Collect ``num_episodes`` episodes, keeping only accepted ones (``accept``: successful by
    default; e.g. a return threshold for suites without a success test) unless ``keep_failed``.

    Episode ``i`` is reset with seed ``seed_base + i`` (attempt index, so the seeds of kept
    episodes are recorded and replayable).

    Raises:
        RuntimeError: if ``max_attempts`` (default ``5 * num_episodes + 10``) pass without enough
            successful episodes.
    """
    max_attempts = max_attempts or 5 * num_episodes + 10
    kept: list[Episode] = []
    attempts = successes = 0
    start = time.perf_counter()
    with tqdm(total=num_episodes, desc=desc, unit="ep", leave=False) as bar:
        while len(kept) < num_episodes:
            if attempts >= max_attempts:
                raise RuntimeError(
                    f"Only {len(kept)} of {num_episodes} successful episodes after {attempts} attempts; "
                    "the expert is too weak on this task (set keep_failed_demos=true to keep failures).")
            ep = rollout(env, policy, seed_base + attempts)
            attempts += 1
            ok = accept(ep)
            successes += ok
            if ok or keep_failed:
                kept.append(ep)
                bar.update(1)
    return kept, CollectStats(attempts, len(kept), successes, time.perf_counter() - start)


def relabel_rollout(env: gym.Env, expert: Callable[[dict], np.ndarray], noise_std: float, seed: int,
                    rng: np.random.Generator) -> Episode:
    """One episode that executes the expert's action plus Gaussian noise (std ``noise_std``, clipped
    to [-1, 1]) and stores, for every visited observation, the expert's own action there: the
    relabelled data of PolyTask distillation (the states an expert visits, labelled by it)."""
    labels: list[np.ndarray] = []

    def noisy(obs: dict) -> np.ndarray:
        action = expert(obs)
        labels.append(action)
        return np.clip(action + noise_std * rng.standard_normal(action.shape), -1.0, 1.0).astype(np.float32)

    ep = rollout(env, noisy, seed)
    ep.action = np.asarray(labels, np.float32)
    return ep
