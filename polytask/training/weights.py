"""Exported weights files: where a run writes them, finding another run's, reading them without
running code, and rebuilding a frozen policy from one (``load_bc``, ``base_policy=``, ``evaluate.py``,
DMC experts)."""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from hydra.utils import get_class
from omegaconf import DictConfig

from polytask.errors import ConfigError
from polytask.training.checkpoint import CheckpointError, load_checkpoint
from polytask.utils import instantiate

log = logging.getLogger("polytask")

#: agent classes renamed since files were written: ``_target_`` in an old file's config -> now
RENAMED_TARGETS = {"polytask.agents.drqv2.DrQV2Agent": "polytask.agents.rot.ROTAgent"}


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
    settings = f"-{settings}" if settings else ""
    name = f"{tasks_tag(cfg.suite.task)}-{cfg.obs_type}{demos}-seed{cfg.seed}{base}{settings}.pt"
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


def read_weights(path: str | Path, device: torch.device | str = "cpu", how_to_make: str = "") -> dict:
    """The contents of a weights file exported by a finished run (:meth:`Trainer.export_weights`:
    ``{"agent": state_dict, "agent_name", "config": resolved run config, ...}``; a run's
    ``checkpoints/*.pt`` hold the same keys), tensors on ``device``. The file is read as tensors and
    plain data only (:func:`polytask.training.checkpoint.load_checkpoint`): nothing in it is run.

    Raises:
        ConfigError: if the file is missing (with ``how_to_make``, the command that trains it, or a
            BC example), unreadable, holds other objects (the message gives the conversion command for
            a file from an older PolyTask), or lacks ``config`` or ``agent``.
    """
    path = Path(path)
    if not path.exists():
        how = how_to_make or ("python train.py agent=bc suite=<suite> obs_type=<obs_type> 'suite.task=[<task>]' "
                              "(its weights go to <data_dir>/weights/bc/<suite>/...)")
        raise ConfigError(f"No policy weights at {path}. Train the policy first:\n  {how}")
    try:
        saved = load_checkpoint(path, map_location=device)
    except CheckpointError as e:
        raise ConfigError(str(e)) from e
    if "config" not in saved or "agent" not in saved:
        raise ConfigError(f"{path} is not a weights file exported by train.py (it lacks 'config' or 'agent')")
    return saved


def load_policy(path: str | Path, env: gym.Env, device: torch.device | str = "cpu", how_to_make: str = "",
                saved: dict | None = None, task: str | None = None):
    """A frozen policy from a weights file exported by a finished run (see :func:`read_weights`),
    rebuilt from the file's own ``config.agent`` for ``env``'s observation and action spaces.

    The agent is returned in eval mode with every network's ``requires_grad`` off; call its
    ``act(obs, eval_mode=True)`` with obs arrays (B, ...) (plus ``env_index``/``is_first`` for
    policies with memory). An agent whose config names a ``base_policy`` (a residual policy) gets
    that base loaded the same way. Constructor arguments that an agent class keeps in its state
    rather than in the config (its ``state_init_args``, e.g. a distillation student's ``goals``) are
    passed from the saved state. A multi-task policy (a student) used in a single-task run is
    restricted to that run's ``task``: its ``task_id`` 0 then means that task (the id the online
    trainer and a single-task evaluator pass).

    Args:
        path: the weights file, e.g. ``data/weights/bc/metaworld/reach-features-d10-seed1.pt``.
        env: an env of the task it will act in.
        device: torch device for the networks.
        how_to_make: the command that trains the missing weights, for the error message.
        saved: the file's contents when the caller has read them already (:func:`read_weights`).
        task: the one task the policy will act in, or None (it acts for the tasks it was trained on,
            ``task_id`` being the index in its own task list).

    Raises:
        ConfigError: if the file is missing (with ``how_to_make`` or a BC example), unreadable, lacks
            a constructor argument its agent keeps in its state, or its agent does not fit ``env``
            (other obs_type or action size); if a multi-task policy was not trained on ``task``, or
            cannot be restricted to one task (no ``restrict_to_task``).
    """
    from polytask.agents.frozen import freeze

    if saved is None:
        saved = read_weights(path, device, how_to_make)
    run_cfg = saved["config"]
    options = {k: v for k, v in run_cfg["agent"].items() if k not in ("name", "trainer")}
    options["_target_"] = RENAMED_TARGETS.get(options["_target_"], options["_target_"])
    name = saved.get("agent_name", run_cfg["agent"].get("name", "?"))
    state_args = getattr(get_class(options["_target_"]), "state_init_args", ())
    missing = [k for k in state_args if k not in saved["agent"]]
    if missing:
        raise ConfigError(f"The {name} policy in {path} lacks {', '.join(missing)} in its saved agent state, which "
                          f"the agent needs to be rebuilt: it was not exported by this version's train.py; retrain it")
    extra = {k: saved["agent"][k] for k in state_args}
    if run_cfg.get("base_policy"):  # a residual policy: its frozen base first, for the residual's task
        extra["base_policy"] = load_policy(run_cfg["base_policy"], env, device, task=str(run_cfg["suite"]["task"][0]))
    obs_shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
    try:
        agent = instantiate(options, _partial_=True)(obs_shapes=obs_shapes, action_dim=int(env.action_space.shape[0]),
                                                     obs_type=run_cfg["obs_type"], device=torch.device(device), **extra)
        agent.load_state_dict(saved["agent"])
    except (RuntimeError, KeyError, ValueError) as e:  # the constructor's own errors (polytask.utils.instantiate)
        raise ConfigError(f"The {name} policy in {path} (obs_type={run_cfg['obs_type']}) does not fit this env "
                          f"(observations {obs_shapes}, {env.action_space.shape[0]} actions): {e}") from e
    tasks = [str(t) for t in run_cfg["suite"]["task"]]
    log.info(f"Loaded a frozen {name} policy from {path} (trained on {run_cfg['suite']['name']} {tasks}, "
             f"step {saved.get('step', '?')})")
    if task is not None and len(tasks) > 1:
        _restrict_to_task(agent, f"The {name} policy in {path}", tasks, task)
    return freeze(agent)


def _restrict_to_task(agent, what: str, tasks: list[str], task: str) -> None:
    """Have a policy trained on ``tasks`` act for ``task`` at ``task_id`` 0 (``agent.restrict_to_task``).

    Raises:
        ConfigError: if ``task`` is not one of ``tasks``, or the agent has no ``restrict_to_task``.
    """
    if task not in tasks:
        raise ConfigError(f"{what} was trained on {tasks}, not on {task}: run one of those tasks, or pass another "
                          "policy")
    if not hasattr(agent, "restrict_to_task"):
        raise ConfigError(f"{what} was trained on {len(tasks)} tasks {tasks} and cannot be restricted to {task} "
                          f"(its agent has no restrict_to_task); pass a single-task policy")
    agent.restrict_to_task(tasks.index(task))


def play_weights_path(cfg: DictConfig, stage: str, own: bool = False) -> Path:
    """Where a stage trained on the suite's play data (``skill_prior``, ``extract_skill``, ``flat_prior``)
    exports its weights: ``<data_dir>/weights/<stage>/<suite>/play-<obs_type>-seed<seed>[-<settings>].pt``
    (``settings``: ``cfg.weights_tag`` when ``own``, for the stage's run itself; left out when another run
    looks it up, which then takes the one file with other settings through :func:`find_weights`)."""
    settings = str(cfg.get("weights_tag") or "") if own else ""
    name = f"play-{cfg.obs_type}-seed{cfg.seed}{'-' if settings else ''}{settings}.pt"
    return Path(cfg.data_dir) / "weights" / stage / cfg.suite.name / name


def skill_model_path(cfg: DictConfig) -> Path:
    """Where a skill-prior run exports its skill model (:func:`play_weights_path` of ``skill_prior``, with the
    run's settings when the run is a skill-prior run)."""
    return play_weights_path(cfg, "skill_prior", own=cfg.agent.name == "skill_prior")


#: what a flat prior is trained on (``prior_data``): the suite's play data, or the run's demos
PRIOR_DATA = ("play", "demos")


def flat_prior_path(cfg: DictConfig, own: bool = False) -> Path:
    """Where the flat prior of the run's ``prior_data`` goes: on play data :func:`play_weights_path`; on
    the demos the demos convention of :func:`weights_path` (``<tasks>-<obs_type>-d<N>-seed<seed>.pt``).
    ``own``: the flat-prior run's own file (with its settings); else the file another run looks for.

    Raises:
        ConfigError: for a ``prior_data`` other than ``play`` or ``demos``.
    """
    data = cfg.get("prior_data", "play")
    if data not in PRIOR_DATA:
        raise ConfigError(f"prior_data must be one of {PRIOR_DATA}, got {data!r}")
    if data == "play":
        return play_weights_path(cfg, "flat_prior", own)
    return weights_path(cfg) if own else weights_path(cfg, agent="flat_prior")
