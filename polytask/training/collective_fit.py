"""``train_collective.py``'s offline modes: the trajectory transformer on windows of every task's data
(``train_transformer``), the collective actor distilled on [embedding, state] (``distill_collective``)
and the collective acting on every task against its teachers (``evaluate``). Paths:
:mod:`polytask.training.collective`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from polytask.collective.data import command, episode_tuples, load_task_data, split_held_out
from polytask.collective.policy import EMBEDDING_KEY, Collective, TrajectoryEmbedding, build_module, module_state
from polytask.errors import ConfigError
from polytask.training.checkpoint import checkpoint_dir, load_checkpoint, save_checkpoint
from polytask.training.collective import collective_file, collective_tasks, make_teacher, read_collective, task_env
from polytask.training.evaluator import Evaluator, results_table
from polytask.training.logger import Logger
from polytask.training.run import tasks_of
from polytask.utils import atomic_torch_save, resolve_device, rng_state, set_rng_state

log = logging.getLogger("polytask")


def _task_data(cfg: DictConfig) -> tuple[list[str], list[list], list[dict]]:
    """The collective's tasks, each one's labelled episodes and dataset metadata.

    Raises:
        ConfigError: if the run's tasks are not the collective's (``collective.tasks`` is for students).
    """
    tasks = tasks_of(cfg)
    if tasks != collective_tasks(cfg):
        raise ConfigError(f"mode={cfg.mode} works on the collective's own tasks: the run's tasks {tasks} differ from "
                          f"collective.tasks={collective_tasks(cfg)}; leave collective.tasks unset")
    loaded = [load_task_data(cfg, t) for t in tasks]
    return tasks, [episodes for episodes, _ in loaded], [meta for _, meta in loaded]


def _keep_dagger_output(path: Path) -> None:
    """Refuse to replace a file that ``online_distill.student=collective`` wrote (its rounds' state).

    Raises:
        ConfigError: if ``path`` holds a collective of a DAgger round (the message says how to proceed).
    """
    if path.exists() and "dagger_rounds" in (saved := load_checkpoint(path)):
        raise ConfigError(f"{path} is the collective of DAgger round {saved['dagger_rounds']} (mode=online_distill "
                          f"online_distill.student=collective), which this mode would replace; "
                          "delete it first if that is what you want (the DAgger then starts again only once its "
                          "online datasets are deleted too)")


def per_task_windows(episodes_per_task: list[list], window: int, num: int, rng: np.random.Generator) -> dict:
    """``num`` windows (:func:`~polytask.collective.windows.sample_windows`) of each task with at least one
    episode (balanced), concatenated; ``episodes_per_task[i]`` are task ``i``'s labelled episodes, and
    ``task_id`` in the result is ``i``."""
    from polytask.collective.windows import sample_windows

    parts = [sample_windows([(i, *ep[1:]) for ep in episode_tuples([eps])], window, num, rng)
             for i, eps in enumerate(episodes_per_task) if eps]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def train_transformer_mode(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``mode=train_transformer``: the trajectory transformer trained on windows of every task's
    episodes except the last ``transformer.held_out`` fraction per task; then the embedding report
    (DP-mixture clusters against task ids: ARI and cluster count, on ``report_windows`` training
    windows per task; nearest-centroid accuracy on as many held-out windows) as JSON and the 2-D PNG.
    Writes the transformer's file (:func:`collective_file` ``"transformer"``) and returns the report.
    A checkpoint every ``save_every_steps`` updates lets a re-run of the command resume."""
    from polytask.collective.analysis import embedding_report, plot_embeddings
    from polytask.collective.training import embed_windows, train_transformer
    from polytask.collective.windows import sample_windows
    from polytask.nets.trajectory_transformer import TrajectoryTransformer

    opts, window = cfg.transformer, int(cfg.collective.window)
    _keep_dagger_output(collective_file(cfg, "transformer"))
    tasks, data, _ = _task_data(cfg)
    split = [split_held_out(eps, float(opts.held_out)) for eps in data]
    train_eps = episode_tuples([s[0] for s in split])
    rng = np.random.default_rng(int(cfg.seed))
    kwargs = {"obs_dim": int(train_eps[0][1].shape[1]), "action_dim": int(train_eps[0][2].shape[1]), "window": window,
              **OmegaConf.to_container(opts.model, resolve=True)}
    model = TrajectoryTransformer(**kwargs).to(resolve_device(cfg.device))
    opt = torch.optim.Adam(model.parameters(), lr=float(opts.lr))
    step = _resume_transformer(cfg, run_dir, model, opt, rng)
    logger = Logger(run_dir, start_step=step)
    start = time.perf_counter()
    try:
        while step < int(opts.steps):  # in pieces of save_every_steps, each followed by a checkpoint
            end = min(int(opts.steps), step + int(cfg.save_every_steps))
            train_transformer(lambda n: sample_windows(train_eps, window, n, rng), model, end, int(opts.batch_size),
                              log_fn=lambda i, m: logger.log("train", m, i + 1, console=False),
                              log_every=int(cfg.log_every_steps), optimizer=opt, start_step=step)
            step = end
            save_checkpoint(run_dir, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                                      "windows_rng": rng.bit_generator.state, "rng": rng_state()})
        seconds = time.perf_counter() - start
        fit = per_task_windows([s[0] for s in split], window, int(opts.report_windows), rng)
        held = per_task_windows([s[1] for s in split], window, int(opts.report_windows), rng) \
            if any(s[1] for s in split) else None
        emb = embed_windows(model, fit)
        report = embedding_report(emb, fit["task_id"], tasks, seed=int(cfg.seed),
                                  held_out=None if held is None else (embed_windows(model, held), held["task_id"]))
        report["train_seconds"] = round(seconds, 2)
        logger.log("eval", {k: float(v) for k, v in report.items() if isinstance(v, (int, float))}, int(opts.steps))
    finally:
        logger.close()
    path = collective_file(cfg, "transformer")
    save_collective(cfg, path, module_state(model, kwargs), None, None, tasks, report=report)
    path.with_suffix(".json").write_text(json.dumps(report, indent=2))
    plot_embeddings(emb, fit["task_id"], tasks, path.with_suffix(".png"))
    log.info(f"Embeddings: ARI {report['ari']:.3f}, {report['n_clusters']} clusters for {len(tasks)} tasks, "
             f"nearest-centroid accuracy {report.get('nearest_centroid_accuracy', float('nan')):.3f} "
             f"({seconds:.0f}s training)\n"
             f"Transformer: {path} (report {path.with_suffix('.json')}, plot {path.with_suffix('.png')})")
    return report


def _resume_transformer(cfg: DictConfig, run_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                        rng: np.random.Generator) -> int:
    """Restore the run's transformer checkpoint (model, optimiser, window sampler and RNG states) unless
    ``resume=never``; returns the step it reached (0 without one)."""
    path = checkpoint_dir(run_dir) / "latest.pt"
    if cfg.resume == "never" or not path.exists():
        return 0
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    rng.bit_generator.state = state["windows_rng"]
    set_rng_state(state["rng"])
    log.info(f"Resumed from {path} at step {state['step']}")
    return int(state["step"])


def step_windows(episode: tuple, window: int) -> dict[str, np.ndarray]:
    """For every step t of one episode ``(task_id, obs (T+1, D), actions (T, A), rewards (T,))``, the window
    ending at state s_t as the collective sees it at run time (left-padded at the start:
    :func:`polytask.collective.windows.last_window`): ``obs`` (T, W, D), ``actions`` (T, W−1, A),
    ``rewards`` (T, W−1)."""
    from polytask.collective.windows import last_window

    _, obs, actions, rewards = episode
    steps = [last_window(obs[max(0, t - window + 1):t + 1], actions[max(0, t - window + 1):t],
                         rewards[max(0, t - window + 1):t], window, actions.shape[1]) for t in range(len(actions))]
    return {k: np.stack([s[k] for s in steps]) for k in ("obs", "actions", "rewards")}


def fit_actor(cfg: DictConfig, collective: Collective, data: list[list], logger: Logger,
              warm_start: dict[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    """The collective actor trained on [embedding, state] against the teachers' labels of ``data`` (per
    task, a list of labelled episodes) with :func:`~polytask.nets.collective.distill_loss`
    (``distill.mean_loss``), ``distill.steps`` batches; every step t of every episode is embedded by
    ``collective``'s frozen transformer from the window ending at s_t (left-padded at the start, as at
    run time).

    Args:
        warm_start: an actor's plain state (``{"kwargs", "state"}``, :func:`module_state`) to go on
            training, with its own sizes and state normalisation; None: a new actor of ``distill.*``'s
            sizes, its state normalisation (``distill.normalize_state``) fitted on ``data``'s states.

    Returns:
        ``(actor, its constructor kwargs, {"distill_loss", "labelled_steps", "train_seconds"})``.
    """
    from polytask.collective.training import embed_windows
    from polytask.nets.collective import CollectiveActor, distill_loss

    opts, device = cfg.distill, resolve_device(cfg.device)
    embeddings, states, means, log_stds = [], [], [], []
    for episode in episode_tuples(data):
        embeddings.append(embed_windows(collective.transformer, step_windows(episode, collective.window)))
        states.append(episode[1][:-1])
    for eps in data:
        means += [ep.infos["mean"] for ep in eps]
        log_stds += [ep.infos["log_std"] for ep in eps]
    x_emb, x_state, y_mean, y_log_std = (torch.as_tensor(np.concatenate(a), dtype=torch.float32, device=device)
                                         for a in (embeddings, states, means, log_stds))
    if warm_start is not None:
        kwargs = dict(warm_start["kwargs"])
        actor = build_module(CollectiveActor, warm_start, device).requires_grad_(True)
    else:
        kwargs = {"obs_dim": x_state.shape[1], "action_dim": y_mean.shape[1], "embed_dim": collective.embed_dim,
                  "hidden_dim": int(opts.hidden_dim), "hidden_depth": int(opts.hidden_depth),
                  "normalize_state": bool(opts.normalize_state)}
        actor = CollectiveActor(**kwargs).to(device)
        if actor.normalize_state:
            actor.fit_state_normalization(x_state)
    actor.train()
    opt = torch.optim.Adam(actor.parameters(), lr=float(opts.lr))
    gen = torch.Generator(device="cpu").manual_seed(int(cfg.seed))
    start, loss = time.perf_counter(), torch.zeros(())
    for step in range(int(opts.steps)):
        idx = torch.randint(0, len(x_state), (int(opts.batch_size),), generator=gen).to(device)
        mean, log_std = actor(x_emb[idx], x_state[idx])
        loss = distill_loss(mean, log_std, y_mean[idx], y_log_std[idx], float(opts.log_std_weight),
                            str(opts.mean_loss))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % int(cfg.log_every_steps) == 0:
            logger.log("train", {"distill_loss": loss.item()}, step + 1, console=False)
    seconds = time.perf_counter() - start
    return actor, kwargs, {"distill_loss": float(loss.item()), "labelled_steps": int(len(x_state)),
                           "train_seconds": round(seconds, 2)}


def save_collective(cfg: DictConfig, path: Path, transformer_state: dict[str, Any], actor: torch.nn.Module | None,
                    actor_kwargs: dict[str, Any] | None, tasks: list[str], **extra: Any) -> Path:
    """Write a collective's weights file (read back by :func:`read_collective`): the transformer's plain
    state, the actor (None: a transformer-only file), the task list, the run's config and ``extra``
    entries (plain data). Returns ``path``."""
    actor_state = None if actor is None else module_state(actor, actor_kwargs or {})
    atomic_torch_save({"collective": {"transformer": transformer_state, "actor": actor_state}, "tasks": tasks,
                       "config": OmegaConf.to_container(cfg, resolve=True), **extra}, path)
    return path


def distill(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``mode=distill_collective``: the collective actor distilled from every task's episodes on the frozen
    transformer's embeddings (:func:`fit_actor`). Writes the collective's file (transformer + actor,
    :func:`collective_file`) and returns the last loss."""
    _keep_dagger_output(collective_file(cfg))
    source = collective_file(cfg, "transformer")
    transformer = read_collective(source, resolve_device(cfg.device),
                                  how_to_make=command(cfg, "train_transformer", tasks_of(cfg)))
    tasks, data, meta = _task_data(cfg)
    logger = Logger(run_dir)
    try:
        actor, kwargs, metrics = fit_actor(cfg, transformer, data, logger)
    finally:
        logger.close()
    path = save_collective(cfg, collective_file(cfg), transformer.state_dict()["transformer"], actor, kwargs, tasks,
                           teacher_success={t: m.get("teacher_success") for t, m in zip(tasks, meta)})
    log.info(f"Collective actor: {metrics['labelled_steps']} labelled steps, loss {metrics['distill_loss']:.4f} "
             f"({metrics['train_seconds']:.0f}s) -> {path}")
    return metrics


def _collective_policy(collective: Collective):
    """The collective's evaluation policy: tanh(μ) of its actor on the batch's embedding and state."""
    def policy(batch: dict[str, np.ndarray]) -> np.ndarray:
        mean, _ = collective.gaussian(torch.as_tensor(batch[EMBEDDING_KEY]), torch.as_tensor(batch["state"]))
        return torch.tanh(mean).cpu().numpy().astype(np.float32)
    return policy


def _teachers_policy(cfg: DictConfig, tasks: list[str]):
    """The teachers' evaluation policy: tanh(μ) of each row's task's teacher."""
    envs = [task_env(cfg, t) for t in tasks]
    try:
        teachers = [make_teacher(cfg, t, env) for t, env in zip(tasks, envs)]
    finally:
        for env in envs:
            env.close()

    def policy(batch: dict[str, np.ndarray]) -> np.ndarray:
        rows = [{k: v[i] for k, v in batch.items()} for i in range(len(batch["task_id"]))]
        return np.stack([np.tanh(teachers[int(r["task_id"])](r)[0]) for r in rows]).astype(np.float32)
    return policy


def evaluate(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``mode=evaluate``: the collective acting on each of its tasks (its own last W steps embedded),
    ``eval.num_episodes`` episodes per task on the evaluation seeds, and its teachers on the same episodes;
    logs the per-task table and returns ``<task>/success`` (collective), ``<task>/teacher_success`` and
    the means ``success``, ``teacher_success`` and their ratio ``success_vs_teachers``."""
    tasks = tasks_of(cfg)
    path = Path(cfg.collective.weights) if cfg.collective.get("weights") else collective_file(cfg)
    collective = read_collective(path, resolve_device(cfg.device), command(cfg, "distill_collective", tasks))
    if collective.actor is None:
        raise ConfigError(f"{path} holds the transformer only; make the collective actor with:\n  "
                          + command(cfg, "distill_collective", tasks))
    ev = cfg.eval
    mine = Evaluator(lambda t: TrajectoryEmbedding(task_env(cfg, t), collective), tasks, ev.num_episodes, ev.num_envs,
                     ev.stop_on_success).run(_collective_policy(collective))
    theirs = Evaluator(lambda t: task_env(cfg, t), tasks, ev.num_episodes, ev.num_envs,
                       ev.stop_on_success).run(_teachers_policy(cfg, tasks))
    results = {**mine, **{f"{k.removesuffix('success')}teacher_success": v for k, v in theirs.items()
                          if k.endswith("success")}}
    results["success_vs_teachers"] = mine["success"] / max(theirs["success"], 1e-9)
    log.info(f"Collective {path} ({ev.num_episodes} episodes per task):\n" + results_table(tasks, mine)
             + f"\nTeachers ({cfg.collective.teacher}) on the same episodes:\n" + results_table(tasks, theirs)
             + f"\nCollective / teachers success: {results['success_vs_teachers']:.3f}")
    return results
