"""Task-agnostic play data (SPiRL/SkiLD/EXTRACT pre-training): one Minari dataset per suite and
obs_type, ``polytask/<suite>/play-<obs_type>-v0``, made by the suite's ``play`` config node.

A suite config's ``play`` node names ``play_episodes(env_factory, num_episodes, seed, **options)``
(``_target_``) and its options; it yields :class:`~polytask.data.demos.Episode` objects whose
per-step labels (e.g. the maze goal, the kitchen subtask) are in ``Episode.infos``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from polytask.data.demos import DatasetError, Episode, dataset_id, write_dataset

log = logging.getLogger("polytask")

#: ``suite.play`` entries that are not options of the play data (the generator, the run's obs_type, the count)
NOT_PLAY_OPTIONS = ("_target_", "obs_type", "num_episodes")


def play_dataset_id(suite: str, obs_type: str) -> str:
    """Minari id of a suite's play data, e.g. ``polytask/maze/play-features-v0``."""
    return dataset_id(suite, "play", obs_type)


def with_intended_actions(episodes: list[Episode]) -> list[Episode]:
    """The episodes (changed in place) with each ``action`` float32 (T, A) replaced by the play
    generator's noise-free labels ``infos["intended_action"]`` (DART-style labels of a noisy execution;
    DAgger episodes: the scripts' labels of what a learned policy did)."""
    for ep in episodes:
        ep.action = np.asarray(ep.infos["intended_action"], np.float32)
    return episodes


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
