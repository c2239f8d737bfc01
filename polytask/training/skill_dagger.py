"""DAgger rounds of the skill-prior stage (``dagger.rounds``): the skill model in training drives the
suite's DAgger play generator (``suite.play_dagger``, e.g.
:func:`polytask.experts.kitchen_dagger.dagger_play_episodes`), the play scripts label the states its
decoder visits, and training goes on with those episodes added (Ross et al. 2011).

With ``R`` rounds, round ``k`` starts after ``k · num_train_steps / (R + 1)`` updates. Each round's
episodes are written as a Minari dataset under ``<run dir>/dagger`` (:func:`dagger_path`), so a
resumed run reads them back instead of making them again, and they can be inspected or replayed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from polytask.data.demos import Episode, dataset_id, dataset_path, load_episodes, write_dataset
from polytask.data.play import NOT_PLAY_OPTIONS, with_intended_actions
from polytask.errors import ConfigError

log = logging.getLogger("polytask")

def check_dagger(cfg: DictConfig) -> int:
    """The number of DAgger rounds the run asks for (``cfg.dagger.rounds``, 0 when absent).

    Raises:
        ConfigError: for a negative count or ``expert_prob`` outside [0, 1], fewer than one
            episode per round, or rounds in a suite without a DAgger play generator (``suite.play_dagger``).
    """
    dagger = cfg.get("dagger") or {}
    rounds = int(dagger.get("rounds") or 0)
    if rounds < 0:
        raise ConfigError(f"dagger.rounds={rounds}: use 0 (no DAgger) or more")
    if rounds == 0:
        return 0
    if not cfg.suite.get("play_dagger"):
        raise ConfigError(f"dagger.rounds={rounds}, but suite {cfg.suite.name} has no DAgger play generator "
                          "(suite.play_dagger: play scripts that label any state; the kitchen has one). "
                          "Use dagger.rounds=0")
    if not 0.0 <= float(dagger.expert_prob) <= 1.0:
        raise ConfigError(f"dagger.expert_prob={dagger.expert_prob} must lie in [0, 1]")
    if int(dagger.num_episodes) < 1:
        raise ConfigError(f"dagger.num_episodes={dagger.num_episodes}: ask for at least one episode per round")
    return rounds


def round_starts(cfg: DictConfig, rounds: int) -> list[int]:
    """The update counts after which rounds 1..``rounds`` start: ``k · num_train_steps // (rounds + 1)``."""
    return [k * int(cfg.num_train_steps) // (rounds + 1) for k in range(1, rounds + 1)]


def round_dataset_id(cfg: DictConfig, k: int) -> str:
    """Minari id of round ``k``'s episodes: ``polytask/<suite>/dagger<k>-features-v0``."""
    return dataset_id(cfg.suite.name, f"dagger{k}", "features")


def dagger_path(cfg: DictConfig, run_dir: Path, k: int) -> Path:
    """The dataset folder of round ``k``'s episodes: ``<run_dir>/dagger/datasets/polytask/<suite>/
    dagger<k>-features-v0``."""
    return dataset_path(run_dir / "dagger", round_dataset_id(cfg, k))


def collect_round(cfg: DictConfig, run_dir: Path, agent: Any, k: int) -> tuple[list[Episode], dict[str, float]]:
    """Make round ``k``'s ``cfg.dagger.num_episodes`` episodes with ``agent`` (in eval mode) and write
    them to :func:`dagger_path`.

    Returns:
        The episodes (actions relabelled, :func:`polytask.data.play.with_intended_actions`) and
        metrics: ``dagger_round``, ``dagger_decoder_steps`` (fraction of steps the decoder acted),
        ``dagger_completed`` (fraction of the drawn subtasks done per episode, mean), ``dagger_seconds``.
    """
    make = get_method(cfg.suite.play_dagger)
    options = {key: v for key, v in OmegaConf.to_container(cfg.suite.play, resolve=True).items()
               if key not in NOT_PLAY_OPTIONS}  # it makes state-feature episodes
    log.info(f"DAgger round {k}: {cfg.dagger.num_episodes} episodes with the skill model acting "
             f"(expert windows {cfg.dagger.expert_prob})")
    start = time.perf_counter()
    agent.train(False)
    try:
        episodes = list(make(agent, int(cfg.dagger.num_episodes), seed=1000 * k + int(cfg.seed),
                             expert_prob=float(cfg.dagger.expert_prob), **options))
    finally:
        agent.train(True)
    seconds = time.perf_counter() - start
    metrics = {"dagger_round": float(k),
               "dagger_decoder_steps": float(np.mean([1.0 - ep.infos["expert_window"].mean() for ep in episodes])),
               "dagger_completed": float(np.mean([ep.infos["num_completed"][-1] / len(ep.extras["subtasks"])
                                                  for ep in episodes])),
               "dagger_seconds": seconds}
    path = write_dataset(run_dir / "dagger", round_dataset_id(cfg, k), episodes, env=None,
                         algorithm_name=f"polytask {cfg.suite.name} DAgger play",
                         description=f"DAgger round {k}: {len(episodes)} episodes, the skill model acting, "
                                     "the scripts labelling",
                         extra_metadata={"dagger": {**OmegaConf.to_container(cfg.dagger, resolve=True), "round": k},
                                         **metrics})
    log.info(f"DAgger round {k}: {len(episodes)} episodes in {seconds:.0f}s, decoder acting "
             f"{metrics['dagger_decoder_steps']:.0%} of steps, {metrics['dagger_completed']:.0%} of subtasks done "
             f"-> {path}")
    return with_intended_actions(episodes), metrics


def load_rounds(cfg: DictConfig, run_dir: Path, n: int) -> list[list[Episode]]:
    """The episodes of rounds 1..``n`` (actions relabelled) from :func:`dagger_path` (a resumed run).

    Raises:
        DatasetError: if a round's dataset is missing or unreadable (its path is named).
    """
    return [with_intended_actions(load_episodes(dagger_path(cfg, run_dir, k), obs_keys=("state",),
                                                make_cmd="delete the run's checkpoints to start it over"))
            for k in range(1, n + 1)]
