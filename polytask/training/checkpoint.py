"""Checkpoints holding the full training state, written atomically (DESIGN §6)."""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Any

import torch

from polytask.errors import ConfigError, PolyTaskError
from polytask.utils import atomic_torch_save

log = logging.getLogger("polytask")


class CheckpointError(PolyTaskError, RuntimeError):
    """A checkpoint that cannot be read; the message says which file and what to do."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints``, where ``latest.pt`` (resume) and ``best.pt`` live."""
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], name: str = "latest") -> Path:
    """Write ``state`` to ``<run_dir>/checkpoints/<name>.pt`` via temp file + rename."""
    path = checkpoint_dir(run_dir) / f"{name}.pt"
    atomic_torch_save(state, path)
    return path


def weights_path(cfg: Any, agent: str | None = None) -> Path:
    """Where a finished run's weights go: ``<data_dir>/weights/<agent>/<suite>/<tasks>-<obs_type>
    [-d<num_demos>]-seed<seed>[-on-<base>][-<settings>].pt``.

    - ``-d<num_demos>`` when the run learns from demos (:func:`polytask.config.demos_tag`).
    - ``-on-<base>`` for a run that decorates a ``base_policy``: the base file's agent folder and stem
      (``bet-hammer-features-d10-seed1``), so residuals on different bases do not overwrite each other.
    - ``-<settings>``: ``cfg.weights_tag``, the run's other command-line settings
      (:func:`polytask.config.settings_tag`: ``agent.lr-0.001+recipe-drqv2_state``), so the runs of a
      sweep write distinct files; runs with the default settings keep the plain name.

    ``agent`` names another agent's weights for the same suite, tasks, demo count and seed with the
    default settings, trained on the demos (``"bc"`` for ``load_bc`` and BC bases)."""
    from polytask.config import base_tag, demos_tag, tasks_tag

    # a named agent's file is an offline one (no irl option): always tagged
    uses = () if agent is not None else (cfg.get("irl"), cfg.get("load_bc", False), cfg.get("bc_regularize", False))
    demos = demos_tag(cfg.num_demos_per_task, *uses)
    base, settings = "", ""
    if agent is None:  # the run's own weights, not a named agent's
        base = base_tag(cfg.get("base_policy"))
        settings = str(cfg.get("weights_tag") or "")
    name = f"{tasks_tag(cfg.suite.task)}-{cfg.obs_type}{demos}-seed{cfg.seed}{base}{'-' if settings else ''}{settings}.pt"
    return Path(cfg.data_dir) / "weights" / (agent or cfg.agent.name) / cfg.suite.name / name


def find_weights(path: str | Path, choose: str = "name one explicitly") -> Path:
    """``path`` (a weights file named by :func:`weights_path` for the default settings), or, when
    it is missing, the one file of the same run with other settings (``<stem>-<settings>.pt``, e.g.
    BC trained with ``agent.hidden_dim=256``); ``path`` itself when there is none.

    Raises:
        ConfigError: when several runs with other settings match: the message lists them and ends
            with ``choose`` (how to name one, e.g. ``pass bc_weights=<file>``).
    """
    path = Path(path)
    if path.exists():
        return path
    candidates = sorted(path.parent.glob(f"{glob.escape(path.stem)}-*.pt"))
    if len(candidates) > 1:
        raise ConfigError(f"No weights at {path}, but {len(candidates)} runs with other settings match: "
                          + ", ".join(c.name for c in candidates) + f" (in {path.parent}); {choose}")
    if candidates:
        log.info(f"No weights at {path}; using {candidates[0].name}, the one run with other settings")
        return candidates[0]
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: if it is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises several types for torn or foreign files
        raise CheckpointError(f"Checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                              "delete it to start over, or pass resume=never") from e
