"""Making a run's agent: its options checked (:func:`check_agent_options`), then the run inputs it
asks for (:meth:`polytask.agents.base.Agent.inputs`: its demonstrations, the BC run's weights, a
frozen base policy) made from the run's config and passed as the constructor arguments of the same
names (:func:`make_agent`), so no trainer or builder code names an algorithm."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from polytask.agents.configs import AgentConfig, make_config
from polytask.errors import ConfigError
from polytask.training import skill_inputs
from polytask.training.run import load_demo_buffer, tasks_of
from polytask.training.weights import find_weights, load_policy, read_weights, weights_path
from polytask.utils import instantiate, resolve_device

log = logging.getLogger("polytask")


def bc_train_command(cfg: DictConfig) -> str:
    """The ``train.py`` command that trains BC on the run's suite, tasks, obs_type, demo count and seed
    (its weights go to ``weights_path(cfg, agent="bc")``), for error messages."""
    return (f"python train.py agent=bc suite={cfg.suite.name} obs_type={cfg.obs_type} "
            f"'suite.task=[{','.join(tasks_of(cfg))}]' num_demos_per_task={cfg.num_demos_per_task} seed={cfg.seed} "
            f"data_dir={cfg.data_dir}")


def bc_state(cfg: DictConfig, env: gym.Env) -> dict[str, Any]:
    """The agent state of the BC run this run starts from (``load_bc``): ``cfg.bc_weights``, or the
    BC run of the same suite, tasks, obs_type, demo count and seed (:func:`find_weights`).

    Raises:
        ConfigError: if the file is missing (the message gives the BC command that makes it), is not
            an exported weights file (:func:`read_weights`), holds another agent's weights, was trained
            on another suite, tasks or obs_type (the message names both, with ``env``'s observation and
            action shapes), or has other network sizes than this run's actor (both are named).
    """
    path = Path(cfg.bc_weights) if cfg.get("bc_weights") else \
        find_weights(weights_path(cfg, agent="bc"), "pass bc_weights=<file> (load_bc=true)")
    saved = read_weights(path, how_to_make=f"{bc_train_command(cfg)}\n  or pass bc_weights=<path> (load_bc=true)")
    if saved.get("agent_name", "bc") != "bc":
        raise ConfigError(f"{path} holds {saved['agent_name']} weights, not BC ones")
    bc = saved["config"]
    ours = (cfg.suite.name, tasks_of(cfg), cfg.obs_type)
    bc_suite = bc.get("suite", {})
    theirs = (bc_suite.get("name"), [str(t) for t in bc_suite.get("task", [])], bc.get("obs_type"))
    if theirs != ours:
        shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
        raise ConfigError(
            f"The BC weights at {path} were trained on {theirs[0]} {theirs[1]} with obs_type={theirs[2]}, but this "
            f"run is {ours[0]} {ours[1]} with obs_type={ours[2]} (observations {shapes}, "
            f"{env.action_space.shape[0]}-d actions). Pass the BC weights of this run's suite and task, or train "
            f"them:\n  {bc_train_command(cfg)}")
    sizes = ("hidden_dim", "hidden_depth", "feature_dim", "state_trunk")
    bc_agent = bc.get("agent", {})
    if any(k in bc_agent and k in cfg.agent and bc_agent[k] != cfg.agent[k] for k in sizes):
        raise ConfigError(f"The BC weights at {path} do not fit this {cfg.agent.name} actor: BC has "
                          + ", ".join(f"agent.{k}={bc.get('agent', {}).get(k, '?')}" for k in sizes)
                          + "; this run has " + ", ".join(f"agent.{k}={cfg.agent.get(k)}" for k in sizes)
                          + ". Train BC with this run's sizes, or give this run BC's.")
    log.info(f"Starting from BC weights {path}")
    return saved["agent"]


def base_policy(cfg: DictConfig, env: gym.Env):
    """The frozen base policy of a run that decorates one (``cfg.base_policy``, agent=residual).

    Raises:
        ConfigError: if ``base_policy`` is not set or its file is missing (both messages give the BC
            command for the run's suite, task, obs_type and seed, and where its weights go).
    """
    train_bc = (f"{bc_train_command(cfg)}\nthen pass base_policy={weights_path(cfg, agent='bc')} "
                "(any exported weights file works, e.g. data/weights/diffusion/...)")
    if not cfg.get("base_policy"):
        raise ConfigError(f"agent={cfg.agent.name} decorates a frozen base policy: add base_policy=<weights file>. "
                          f"For a BC base, train one first:\n  {train_bc}")
    return load_policy(cfg.base_policy, env, resolve_device(cfg.device), how_to_make=train_bc, task=tasks_of(cfg)[0])


def collective(cfg: DictConfig, env: gym.Env) -> dict[str, Any]:
    """The collective's weights (``train_collective.py mode=distill_collective``) as plain data, for its
    students: ``cfg.collective.weights`` or the file of ``cfg.collective.tasks``
    (:func:`polytask.training.collective.collective_state`; the error gives the command that makes it)."""
    from polytask.training.collective import collective_state

    return collective_state(cfg)


#: the run's demos, loaded together (:func:`load_demo_buffer`): ``demos``, a :class:`DemoBuffer` over the
#: run's obs key; ``demo_episodes``, the first task's episodes (``list[Episode]``, raw frames)
DEMO_INPUTS = ("demos", "demo_episodes")
#: every other input: name -> ``(cfg, env) -> value`` (weights files)
PROVIDERS: dict[str, Callable[[DictConfig, gym.Env], Any]] = {
    "bc_state": bc_state, "base_policy": base_policy, "collective": collective,
    # the earlier skill stages' weights (polytask.training.skill_inputs; the builder makes missing ones first)
    "skill_model": skill_inputs.skill_model, "skill_posterior": skill_inputs.skill_posterior,
    "demo_discriminator": skill_inputs.demo_discriminator, "extract_model": skill_inputs.extract_model,
    "flat_prior": skill_inputs.flat_prior}


def agent_inputs(cfg: DictConfig, env: gym.Env, names: tuple[str, ...]) -> dict[str, Any]:
    """``{name: value}`` for the inputs ``names`` an agent asks for: weights files first, so a missing
    one fails before any demo is collected; demos are loaded once for both demo inputs.

    Raises:
        ConfigError: for a name no provider makes (the message lists those that exist), or what the
            provider raises.
    """
    unknown = [n for n in names if n not in PROVIDERS and n not in DEMO_INPUTS]
    if unknown:
        raise ConfigError(f"agent={cfg.agent.name} asks for the inputs {unknown}, which no provider makes; "
                          f"known inputs: {', '.join([*DEMO_INPUTS, *PROVIDERS])}")
    # the files first: a missing weights file fails before demos are collected
    values = {name: PROVIDERS[name](cfg, env) for name in names if name not in DEMO_INPUTS}
    if set(DEMO_INPUTS) & set(names):
        buffer, per_task = load_demo_buffer(cfg)
        loaded = {"demos": buffer, "demo_episodes": per_task[0]}
        values.update({k: v for k, v in loaded.items() if k in names})
    return values


def agent_options(agent_cfg: DictConfig) -> dict[str, Any]:
    """The constructor options of ``agent_cfg`` (resolved; ``name`` and ``trainer`` left out)."""
    return {k: v for k, v in OmegaConf.to_container(agent_cfg, resolve=True).items() if k not in ("name", "trainer")}


def check_agent_options(agent_cfg: DictConfig) -> AgentConfig:
    """Before any heavy work: ``agent_cfg``'s options as its agent's config (``config_class`` of its
    ``_target_``: types, ranges and options that need each other, :mod:`polytask.agents.configs`),
    with each switch that the published yamls read from the top level (``irl``, ``load_bc``,
    ``res_scale``, ...) still read from there, so the switch has one name.

    Raises:
        ConfigError: naming the option and what is wrong with it (e.g. ``agent=bc recipe=drqv2_state``:
            the recipe's DrQ-v2 options on a BC agent), or the top-level key to set instead.
    """
    cls = get_class(agent_cfg._target_)
    raw = OmegaConf.to_container(agent_cfg, resolve=False)
    for f in dataclasses.fields(cls.config_class):
        top = f.metadata.get("top_level")
        if top and f.name in raw and raw[f.name] != f"${{{top}}}":
            raise ConfigError(f"agent.{f.name} is the top-level switch {top}: set {top}=... (run names and weights "
                              f"files read it) and leave agent.{f.name} as ${{{top}}}")
    options = {k: v for k, v in agent_options(agent_cfg).items() if k != "_target_"}
    try:
        return make_config(cls.config_class, options)
    except ConfigError as e:
        raise ConfigError(f"agent={agent_cfg.name} ({cls.__name__}): {e}") from e


def make_agent(cfg: DictConfig, env: gym.Env, **extra: Any):
    """``cfg.agent`` (its ``_target_`` with its options) built for ``env``'s spaces, with the run
    inputs its class asks for (:func:`agent_inputs`); ``extra`` are further constructor arguments
    the trainer makes itself (a student's goals).

    Raises:
        ConfigError: if an input cannot be made, or the constructor refuses its options or inputs
            (its ValueError, with the agent's name).
    """
    options = agent_options(cfg.agent)
    cls = get_class(options["_target_"])
    needed = tuple(n for n in cls.inputs(options) if n not in extra)
    extra.update(agent_inputs(cfg, env, needed))
    obs_shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
    build = instantiate(options, _partial_=True)  # inputs (arrays, datasets) are passed as they are, not as config
    try:
        return build(obs_shapes=obs_shapes, action_dim=int(env.action_space.shape[0]), obs_type=cfg.obs_type,
                     device=resolve_device(cfg.device), **extra)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"agent={cfg.agent.name}: {e}") from e
