"""Building a run from its config. ``build_trainer`` prepares the run directory and seeds, then hands
over to the trainer class named by ``cfg.agent.trainer`` (its ``from_config``), which uses the
helpers here to make its parts."""

from __future__ import annotations

import inspect
import json
import logging
from functools import partial
from pathlib import Path
from typing import Callable

import gymnasium as gym
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from polytask.data.buffer import DemoBuffer
from polytask.data.demos import Episode
from polytask.errors import ConfigError
from polytask.suites import make_env
from polytask.training.demos import frame_stack_of, load_or_collect_demos
from polytask.training.evaluator import Evaluator
from polytask.training.trainer import Trainer
from polytask.utils import instantiate, resolve_device, set_seed

log = logging.getLogger("polytask")


def run_dir_for(cfg: DictConfig) -> Path:
    """``cfg.resume`` when it names a run directory, else Hydra's run directory."""
    if cfg.resume not in ("auto", "never"):
        path = Path(cfg.resume)
        if not (path / "checkpoints" / "latest.pt").exists():
            raise ConfigError(f"resume={cfg.resume}: no checkpoint at {path / 'checkpoints' / 'latest.pt'}")
        return path
    return Path(HydraConfig.get().runtime.output_dir)


def tasks_of(cfg: DictConfig) -> list[str]:
    """The run's task names (``cfg.suite.task``), in task-id order."""
    return [str(t) for t in cfg.suite.task]


def env_factory(cfg: DictConfig) -> Callable[[str], gym.Env]:
    """``task -> env`` for the run's suite and obs_type."""
    return partial(make_env, cfg.suite, obs_type=cfg.obs_type)


def make_agent(cfg: DictConfig, env: gym.Env, **extra):
    """Instantiate ``cfg.agent`` (its ``_target_`` and options) for ``env``'s spaces; ``extra`` are
    further constructor arguments (e.g. a student's goals)."""
    options = {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items()
               if k not in ("name", "trainer")}
    obs_shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
    return instantiate(options, obs_shapes=obs_shapes, action_dim=int(env.action_space.shape[0]),
                       obs_type=cfg.obs_type, device=resolve_device(cfg.device), **extra)


def make_evaluator(cfg: DictConfig, train_env: gym.Env | None = None) -> Evaluator:
    """The :class:`Evaluator` over every task of the run, with ``cfg.eval``'s episode count,
    parallel envs, and whether an episode ends at its first success. With ``train_env`` (a
    single-task run with ``eval.on_train_env``: one real robot) it evaluates on that env, one
    episode at a time, and leaves it open."""
    if train_env is not None:
        from polytask.suites.wrappers import KeepOpen

        return Evaluator(lambda task: KeepOpen(train_env), tasks_of(cfg), cfg.eval.num_episodes, 1,
                         cfg.eval.stop_on_success)
    return Evaluator(env_factory(cfg), tasks_of(cfg), cfg.eval.num_episodes, cfg.eval.num_envs,
                     cfg.eval.stop_on_success)


def load_demo_buffer(cfg: DictConfig) -> tuple[DemoBuffer, dict[int, list[Episode]]]:
    """Demos of every task (collected first where missing), as a :class:`DemoBuffer` over the obs
    key the agent uses, and per task id."""
    demos = {}
    for i, task in enumerate(tasks_of(cfg)):
        env = env_factory(cfg)(task)
        try:
            demos[i] = load_or_collect_demos(cfg, task, env)
        finally:
            env.close()
    obs_keys = ("pixels",) if cfg.obs_type == "pixels" else ("state",)
    buffer = DemoBuffer(demos, obs_keys, frame_stack=frame_stack_of(cfg), seed=cfg.seed)
    log.info(f"{len(buffer)} demo transitions from {sum(map(len, demos.values()))} episodes over "
             f"{len(demos)} task(s)")
    return buffer, demos


def bc_train_command(cfg: DictConfig) -> str:
    """The ``train.py`` command that trains BC on the run's suite, tasks, obs_type, demo count and seed
    (its weights go to ``weights_path(cfg, agent="bc")``), for error messages."""
    return (f"python train.py agent=bc suite={cfg.suite.name} obs_type={cfg.obs_type} "
            f"'suite.task=[{','.join(tasks_of(cfg))}]' num_demos_per_task={cfg.num_demos_per_task} seed={cfg.seed} "
            f"data_dir={cfg.data_dir}")


def load_bc_into(agent, cfg: DictConfig, env: gym.Env) -> None:
    """Start ``agent`` (``load_bc=true``) from BC weights: ``cfg.bc_weights``, or the BC run of the
    same suite, tasks, obs_type, demo count and seed; ``agent.load_bc`` copies them.

    Raises:
        ConfigError: if the file is missing (the message gives the BC command that makes it), is not
            an exported weights file (:func:`read_weights`), holds another agent's weights, or its
            networks do not fit ``agent``: the message names what differs, the suite, tasks and
            obs_type of both runs (with ``env``'s observation and action shapes) or else the sizes.
    """
    from polytask.training.checkpoint import find_weights, weights_path

    path = Path(cfg.bc_weights) if cfg.get("bc_weights") else \
        find_weights(weights_path(cfg, agent="bc"), "pass bc_weights=<file> (load_bc=true)")
    saved = read_weights(path, how_to_make=f"{bc_train_command(cfg)}\n  or pass bc_weights=<path> (load_bc=true)")
    if saved.get("agent_name", "bc") != "bc":
        raise ConfigError(f"{path} holds {saved['agent_name']} weights, not BC ones")
    try:
        agent.load_bc(saved["agent"])
    except ValueError as e:
        bc, mismatch = saved["config"], str(e.__cause__ or e)
        ours = (cfg.suite.name, tasks_of(cfg), cfg.obs_type)
        theirs = (bc.get("suite", {}).get("name"), [str(t) for t in bc.get("suite", {}).get("task", [])],
                  bc.get("obs_type"))
        if theirs != ours:
            shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
            raise ConfigError(
                f"The BC weights at {path} were trained on {theirs[0]} {theirs[1]} with obs_type={theirs[2]}, but "
                f"this run is {ours[0]} {ours[1]} with obs_type={ours[2]} (observations {shapes}, "
                f"{env.action_space.shape[0]}-d actions), so its networks do not fit ({mismatch}). Pass the BC "
                f"weights of this run's suite and task, or train them:\n  {bc_train_command(cfg)}") from e
        sizes = ("hidden_dim", "hidden_depth", "feature_dim", "state_trunk")
        raise ConfigError(f"The BC weights at {path} do not fit this {cfg.agent.name} actor: BC has "
                          + ", ".join(f"agent.{k}={bc.get('agent', {}).get(k, '?')}" for k in sizes)
                          + "; this run has " + ", ".join(f"agent.{k}={cfg.agent.get(k)}" for k in sizes)
                          + ". Train BC with this run's sizes, or give this run BC's.") from e
    log.info(f"Starting from BC weights {path}")


def read_weights(path: str | Path, device: torch.device | str = "cpu", how_to_make: str = "") -> dict:
    """The contents of a weights file exported by a finished run (:meth:`Trainer.export_weights`:
    ``{"agent": state_dict, "agent_name", "config": resolved run config, ...}``; a run's
    ``checkpoints/*.pt`` hold the same keys), tensors on ``device``.

    Raises:
        ConfigError: if the file is missing (with ``how_to_make``, the command that trains it, or a
            BC example), unreadable, or lacks ``config`` or ``agent``.
    """
    from polytask.training.checkpoint import CheckpointError, load_checkpoint

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
        agent = instantiate(options, obs_shapes=obs_shapes, action_dim=int(env.action_space.shape[0]),
                            obs_type=run_cfg["obs_type"], device=torch.device(device), **extra)
        agent.load_state_dict(saved["agent"])
    except (RuntimeError, KeyError, ValueError) as e:  # polytask.utils.instantiate lets the constructor's errors through
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


def load_base_policy(cfg: DictConfig, env: gym.Env):
    """The frozen base policy of a run that decorates one (``cfg.base_policy``, agent=residual).

    Raises:
        ConfigError: if ``base_policy`` is not set or its file is missing (both messages give the BC
            command for the run's suite, task, obs_type and seed, and where its weights go).
    """
    from polytask.training.checkpoint import weights_path

    train_bc = (f"{bc_train_command(cfg)}\nthen pass base_policy={weights_path(cfg, agent='bc')} "
                "(any exported weights file works, e.g. data/weights/diffusion/...)")
    if not cfg.get("base_policy"):
        raise ConfigError(f"agent={cfg.agent.name} decorates a frozen base policy: add base_policy=<weights file>. "
                          f"For a BC base, train one first:\n  {train_bc}")
    return load_policy(cfg.base_policy, env, resolve_device(cfg.device), how_to_make=train_bc, task=tasks_of(cfg)[0])


def make_ot_rewarder(cfg: DictConfig, agent, demos: list[Episode]):
    """ROT's optimal-transport rewarder against ``demos``: raw states for features; for pixels, the
    features of frame stacks from the agent's reward (target) encoder, refreshed every
    ``ot.update_target_every`` agent steps."""
    from polytask.data.buffer import stack_frames
    from polytask.rewards.ot import OTRewarder

    if cfg.obs_type == "pixels":
        obs = [stack_frames(ep.obs["pixels"], frame_stack_of(cfg)) for ep in demos]
        featurize, refresh = agent.reward_features, agent.refresh_reward_encoder
    else:
        obs, featurize, refresh = [ep.obs["state"] for ep in demos], None, None
    return OTRewarder(obs, featurize, refresh, refresh_every=int(cfg.ot.update_target_every), eps=cfg.ot.eps,
                      num_iters=cfg.ot.num_iters, target_return=cfg.ot.target_return)


def check_agent_options(agent_cfg: DictConfig) -> None:
    """Every option in ``agent_cfg`` (besides ``name``, ``trainer``, ``_target_``) must be an argument
    of its ``_target_`` class.

    Raises:
        ConfigError: naming the options the agent does not take, e.g. ``agent=bc recipe=drqv2_state``
            (the recipe's DrQ-v2 options on a BC agent).
    """
    cls = get_class(agent_cfg._target_)
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(k for k in agent_cfg if k not in ("name", "trainer", "_target_") and k not in params)
    if unknown:
        takes = ", ".join(k for k in params if k not in ("self", "obs_shapes", "action_dim", "obs_type", "device"))
        raise ConfigError(f"agent={agent_cfg.name} ({cls.__name__}) has no option {', '.join(unknown)}; it takes: "
                          f"{takes}. Drop the override, or pick the agent it was meant for (a recipe sets its own "
                          f"agent: leave out agent=... when using recipe=...).")


def build_trainer(cfg: DictConfig, run_dir: Path | None = None) -> Trainer:
    """Everything a run needs, wired together by ``cfg.agent.trainer``'s ``from_config``.

    Raises:
        ConfigError: if the agent config has options its class does not take (:func:`check_agent_options`).
    """
    check_agent_options(cfg.agent)
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info(f"Run directory: {run_dir}")
    set_seed(cfg.seed)
    return get_class(cfg.agent.trainer).from_config(cfg, run_dir)


def evaluate_weights(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Score the exported weights file ``cfg.policy`` on the suite, task(s) and obs_type it was
    trained on (from the file's own config), with ``cfg.eval``'s episodes: the same eval seeds as
    training runs, so two files (a base and its decorated version) meet the same episodes.

    Stochastic policies (BeT's sampled bins) are seeded with the run's seed. Writes ``results.json``
    (``{"policy", "num_episodes", <task>/success, <task>/return, ..., success, return}``) to
    ``run_dir`` and returns the metrics.

    Raises:
        ConfigError: if the file is missing, not an exported weights file, or its agent cannot be
            rebuilt on its own env (see :func:`load_policy`).
    """
    from polytask.training.evaluator import results_table

    path, device = Path(cfg.policy), resolve_device(cfg.device)
    saved = read_weights(path, device, how_to_make=(
        "python train.py  (a finished run's log ends with 'Weights: <file>'; pass that file as policy=<file>, "
        "e.g. policy=data/weights/bc/metaworld/button-press-features-d10-seed1.pt)"))
    run_cfg = OmegaConf.create(saved["config"])
    run_cfg.eval = cfg.eval
    tasks = tasks_of(run_cfg)
    env = env_factory(run_cfg)(tasks[0])
    try:
        agent = load_policy(path, env, device, saved=saved)
    finally:
        env.close()
    evaluator = make_evaluator(run_cfg)
    set_seed(int(run_cfg.get("seed", 1)))
    video = run_dir / "videos" if cfg.eval.video == "final" else None
    metrics = evaluator.run(lambda obs: agent.act(obs, eval_mode=True), video)
    log.info(f"{path} ({run_cfg.agent.name}), {evaluator.num_episodes} episodes per task:\n"
             + results_table(tasks, metrics))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(
        {"policy": str(path), "num_episodes": evaluator.num_episodes, **metrics}, indent=2))
    return metrics
