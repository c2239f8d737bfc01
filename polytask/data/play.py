"""Task-agnostic play data (SPiRL/SkiLD/EXTRACT pre-training): one Minari dataset per suite and
obs_type, ``polytask/<suite>/play-<obs_type>-v0``, made by the suite's ``play`` config node.

A suite config's ``play`` node names ``play_episodes(env_factory, num_episodes, seed, **options)``
(``_target_``) and its options; it yields :class:`~polytask.data.demos.Episode` objects whose
per-step labels (e.g. the maze goal, the kitchen subtask) are in ``Episode.infos``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from polytask.data.demos import DatasetError, Episode, dataset_id, write_dataset

log = logging.getLogger("polytask")


def play_dataset_id(suite: str, obs_type: str) -> str:
    """Minari id of a suite's play data, e.g. ``polytask/maze/play-features-v0``."""
    return dataset_id(suite, "play", obs_type)


def write_play_dataset(data_dir: str | os.PathLike, suite: str, obs_type: str, episodes: Iterable[Episode],
                       metadata: dict | None = None) -> Path:
    """Write play episodes as dataset :func:`play_dataset_id` under ``data_dir`` (replacing an old one).

    The spaces are inferred from the episodes (play data may come from many layouts, so no single
    env spec describes it); ``metadata`` is stored under the dataset's ``polytask`` metadata with the
    episode and step counts.

    Raises:
        DatasetError: if there are no episodes.
    """
    episodes = list(episodes)
    if not episodes:
        raise DatasetError(f"No {suite} play episodes to write; ask for num_episodes >= 1")
    steps = int(sum(len(e) for e in episodes))
    meta = {"suite": suite, "obs_type": obs_type, "episodes": len(episodes), "steps": steps,
            "success_rate": float(np.mean([e.success.max(initial=0.0) > 0 for e in episodes])), **(metadata or {})}
    return write_dataset(data_dir, play_dataset_id(suite, obs_type), episodes, env=None,
                         algorithm_name=f"polytask {suite} play_episodes",
                         description=f"{len(episodes)} task-agnostic {suite} play episodes ({steps} steps, {obs_type})",
                         extra_metadata=meta)


def collect_play(cfg: DictConfig) -> Path:
    """Instantiate ``cfg.suite.play`` with ``cfg.play.num_episodes`` (null: the suite's default) and
    ``cfg.seed``, and write its episodes with :func:`write_play_dataset`.

    Raises:
        DatasetError: if the suite has no ``play`` node.
    """
    from hydra.utils import instantiate

    from polytask.training.build import env_factory

    if cfg.suite.get("play") is None:
        raise DatasetError(f"Suite {cfg.suite.name} has no task-agnostic play data (no `play` node in its config)")
    num = cfg.play.num_episodes if cfg.play.num_episodes is not None else cfg.suite.play.num_episodes
    start = time.perf_counter()
    episodes = list(instantiate(cfg.suite.play, env_factory=env_factory(cfg), num_episodes=int(num), seed=int(cfg.seed)))
    seconds = time.perf_counter() - start
    options = OmegaConf.to_container(cfg.suite.play, resolve=True)
    path = write_play_dataset(cfg.data_dir, cfg.suite.name, cfg.obs_type, episodes,
                              {"seed": int(cfg.seed), "play": {**options, "num_episodes": int(num)},
                               "generation_seconds": round(seconds, 2)})
    steps = sum(len(e) for e in episodes)
    log.info(f"Made {len(episodes)} play episodes ({steps} steps) in {seconds:.1f}s "
             f"({steps / max(seconds, 1e-9):.0f} steps/s) -> {path}")
    return path
