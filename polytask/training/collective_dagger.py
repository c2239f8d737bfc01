"""``mode=online_distill online_distill.student=collective``: DAgger with the collective itself acting.

Each round, the current collective acts in every task's env exactly as at evaluation (tanh μ of its
actor on [the transformer's embedding of its own last W steps, state]: :class:`TrajectoryEmbedding`)
for ``online_distill.episodes_per_round`` episodes; the task's teacher labels every state it visits
(:func:`~polytask.collective.data.labelled_rollout`). The episodes join the data so far (at first the
recorded ones), then the transformer goes on training on windows of all of it (``transformer.steps``
more updates: the collective's windows carry the true task id, so it learns to name the task along
the collective's own behaviour) and the actor is distilled again on the new embeddings, warm-started
from the previous round's (``distill.steps`` updates, :func:`~polytask.training.collective_fit.fit_actor`;
the actor keeps round 0's sizes).

Round 0's collective is the recorded data's (``mode=distill_collective``). After every round the
aggregate is written as the online datasets (source ``<teacher>-online-collective``) and the collective
and its transformer to their conventional files for ``collective.data=online
online_distill.student=collective``, so the downstream modes find them; a copy of each round's
collective stays in the run directory (``collective-round<r>.pt``, for ``mode=evaluate
collective.weights=…``). A re-run with more ``online_distill.rounds`` continues from the last round
written; one with as many or fewer does nothing.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from polytask.collective.data import (
    collective_dataset_id,
    collective_dataset_path,
    command,
    episode_tuples,
    labelled_rollout,
    load_task_data,
)
from polytask.collective.policy import EMBEDDING_KEY, Collective, TrajectoryEmbedding, build_module, module_state
from polytask.data.collect import is_success
from polytask.data.demos import Episode, write_dataset
from polytask.errors import ConfigError
from polytask.training.checkpoint import load_checkpoint
from polytask.training.collective import (
    ONLINE_SEED_BASE,
    collective_file,
    collective_tasks,
    make_teacher,
    read_collective,
    task_env,
)
from polytask.training.collective_fit import fit_actor, per_task_windows, save_collective
from polytask.training.logger import Logger
from polytask.training.run import tasks_of
from polytask.utils import resolve_device

log = logging.getLogger("polytask")


def _with_data(cfg: DictConfig, data: str) -> DictConfig:
    """A copy of ``cfg`` with ``collective.data=data`` (where that data kind's files are)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    out.collective.data = data
    return out


def collective_rollouts(cfg: DictConfig, collective: Collective, task: str, round_: int,
                        num: int) -> list[Episode]:
    """``num`` episodes of ``collective`` acting on ``task`` (tanh μ on its own embedding, as
    ``mode=evaluate`` runs it) from the seeds ``ONLINE_SEED_BASE + 1000·round_ + i``, every visited state
    labelled by the task's teacher. The episodes hold the ``state`` observations only."""
    env = task_env(cfg, task)
    try:
        teacher = make_teacher(cfg, task, env)
        wrapped = TrajectoryEmbedding(env, collective)

        def act(obs: dict[str, np.ndarray]) -> np.ndarray:
            mean, _ = collective.gaussian(torch.as_tensor(obs[EMBEDDING_KEY][None]),
                                          torch.as_tensor(obs["state"][None]))
            return torch.tanh(mean)[0].cpu().numpy()

        rng = np.random.default_rng([int(cfg.seed), round_])  # unused: the collective acts without random actions
        episodes = [labelled_rollout(wrapped, teacher, ONLINE_SEED_BASE + 1000 * round_ + i, rng, student=act)
                    for i in range(num)]
    finally:
        env.close()
    for ep in episodes:
        ep.obs = {"state": ep.obs["state"]}
    return episodes


def own_window_accuracy(cfg: DictConfig, collective: Collective, reference: list[list[Episode]],
                        own: list[list[Episode]], rng: np.random.Generator) -> dict[str, Any]:
    """How well ``collective``'s transformer names the task along the collective's own episodes: the
    fraction of ``transformer.report_windows`` windows per task of ``own`` whose embedding is nearest to
    their task's centroid among the centroids of as many windows of ``reference`` (the recorded
    teachers' episodes), overall and per task (:func:`~polytask.collective.analysis.embedding_report`)."""
    from polytask.collective.analysis import embedding_report
    from polytask.collective.training import embed_windows

    n = int(cfg.transformer.report_windows)
    fit = per_task_windows(reference, collective.window, n, rng)
    held = per_task_windows(own, collective.window, n, rng)
    report = embedding_report(embed_windows(collective.transformer, fit), fit["task_id"], tasks_of(cfg),
                              held_out=(embed_windows(collective.transformer, held), held["task_id"]),
                              seed=int(cfg.seed))
    return {"accuracy": report["nearest_centroid_accuracy"], "per_task": report["per_task_accuracy"]}


def _train_transformer(cfg: DictConfig, collective: Collective, data: list[list[Episode]],
                       rng: np.random.Generator, logger: Logger) -> Collective:
    """``transformer.steps`` more updates of ``collective``'s transformer (warm, a fresh Adam) on windows
    of all of ``data``; returns a transformer-only :class:`Collective` of the result."""
    from polytask.collective.training import train_transformer
    from polytask.collective.windows import sample_windows
    from polytask.nets.trajectory_transformer import TrajectoryTransformer

    saved = collective.state_dict()["transformer"]
    model = build_module(TrajectoryTransformer, saved, resolve_device(cfg.device)).train().requires_grad_(True)
    episodes, opts = episode_tuples(data), cfg.transformer
    train_transformer(lambda n: sample_windows(episodes, collective.window, n, rng), model, int(opts.steps),
                      int(opts.batch_size), float(opts.lr), log_every=int(cfg.log_every_steps),
                      log_fn=lambda i, m: logger.log("train", {f"transformer_{k}": v for k, v in m.items()}, i + 1,
                                                     console=False))
    return Collective({"transformer": module_state(model, saved["kwargs"]), "actor": None}, collective.device)


def _start(cfg: DictConfig, tasks: list[str]) -> tuple[int, list[list[Episode]], list[dict], Collective]:
    """Where the DAgger stands: ``(rounds done, data per task, metadata per task, current collective)``;
    from the recorded data's collective when no online data exists yet.

    Raises:
        ConfigError: if only some tasks' online datasets exist, or the online collective's file is
            missing or from another round than the datasets (a run changed one of them: delete the
            online datasets and files to start again); if the recorded collective is missing (with
            the command that makes it) or holds a transformer only.
    """
    online, recorded = _with_data(cfg, "online"), _with_data(cfg, "recorded")
    paths = [collective_dataset_path(cfg, t, online=True) for t in tasks]
    have = [(p / "data" / "metadata.json").exists() for p in paths]
    if any(have) and not all(have):
        some = [t for t, h in zip(tasks, have) if h]
        raise ConfigError(f"Online data of the collective exist for some tasks only ({some}); delete "
                          f"{paths[0].parent} to start again")
    device = resolve_device(cfg.device)
    if not any(have):
        how = command(recorded, "distill_collective", tasks)
        collective = read_collective(collective_file(recorded), device, how_to_make=how)
        if collective.actor is None:
            raise ConfigError(f"{collective_file(recorded)} holds the transformer only; make the actor with:\n  {how}")
        loaded = [load_task_data(cfg, t, online=False) for t in tasks]
        return 0, [e for e, _ in loaded], [m for _, m in loaded], collective
    loaded = [load_task_data(online, t) for t in tasks]
    done = {int(m.get("online_rounds", -1)) for _, m in loaded}
    path = collective_file(online)
    saved_round = load_checkpoint(path).get("dagger_rounds") if path.exists() else None
    if len(done) != 1 or saved_round not in done:
        raise ConfigError(f"The collective's online data ({paths[0].parent}: rounds {sorted(done)}) and its file "
                          f"{path} (round {saved_round}) do not match; delete both to start the DAgger again")
    return done.pop(), [e for e, _ in loaded], [m for _, m in loaded], read_collective(path, device)


def collective_dagger(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``mode=online_distill online_distill.student=collective``: ``online_distill.rounds`` DAgger rounds
    with the collective acting (the module docstring). Returns per task the success of the last round's
    acting collective (``<task>/collective_success``), the transformer's accuracy on its windows before
    that round's training (``<task>/own_window_accuracy``, :func:`own_window_accuracy`) and the actor's
    last distillation metrics.

    Raises:
        ConfigError: if the run's tasks are not the collective's, or from :func:`_start`.
    """
    tasks = tasks_of(cfg)
    if tasks != collective_tasks(cfg):
        raise ConfigError(f"online_distill.student=collective works on the collective's own tasks: the run's tasks "
                          f"{tasks} differ from collective.tasks={collective_tasks(cfg)}; leave collective.tasks unset")
    done, data, meta, collective = _start(cfg, tasks)
    online, opts = _with_data(cfg, "online"), cfg.online_distill
    if done >= int(opts.rounds):
        log.info(f"The collective's DAgger has done {done} rounds already (online_distill.rounds={opts.rounds}); "
                 f"raise online_distill.rounds to go on")
        return {**{f"{t}/collective_success": m["collective_success"][-1] for t, m in zip(tasks, meta)},
                **{f"{t}/own_window_accuracy": m["own_window_accuracy"][-1] for t, m in zip(tasks, meta)}}
    reference = [eps[:m.get("recorded_episodes", len(eps))] for eps, m in zip(data, meta)]  # the teachers'
    rng = np.random.default_rng([int(cfg.seed), done])
    logger = Logger(run_dir, start_step=done)
    results: dict[str, Any] = {}
    try:
        for r in range(done, int(opts.rounds)):
            new = [collective_rollouts(cfg, collective, t, r, int(opts.episodes_per_round)) for t in tasks]
            success = {t: float(np.mean([is_success(ep) for ep in eps])) for t, eps in zip(tasks, new)}
            own = own_window_accuracy(cfg, collective, reference, new, rng)
            data = [old + eps for old, eps in zip(data, new)]
            round_logger = Logger(Path(run_dir) / f"round{r + 1}")  # the transformer's and actor's updates
            try:
                transformer = _train_transformer(cfg, collective, data, rng, round_logger)
                actor, kwargs, fit = fit_actor(cfg, transformer, data, round_logger, collective.state_dict()["actor"])
            finally:
                round_logger.close()
            collective = _save_round(cfg, online, run_dir, r, tasks, data, meta, transformer, actor, kwargs,
                                     success, own["per_task"])
            logger.log("train", {"collective_success": float(np.mean(list(success.values()))),
                                 "own_window_accuracy": own["accuracy"], **fit,
                                 **{f"{t}/collective_success": s for t, s in success.items()}}, r + 1)
            log.info(f"DAgger round {r + 1}: the acting collective's success {success}; the transformer names the task "
                     f"on {own['accuracy']:.3f} of its windows {own['per_task']}")
            results = {**{f"{t}/collective_success": s for t, s in success.items()},
                       **{f"{t}/own_window_accuracy": a for t, a in own["per_task"].items()}, **fit}
    finally:
        logger.close()
    return results


def _save_round(cfg: DictConfig, online: DictConfig, run_dir: Path, round_: int, tasks: list[str],
                data: list[list[Episode]], meta: list[dict], transformer: Collective, actor: torch.nn.Module,
                actor_kwargs: dict, success: dict[str, float], own_accuracy: dict[str, float]) -> Collective:
    """Write round ``round_``'s aggregate as the online datasets (metadata extended by the task's
    ``collective_success`` and ``own_window_accuracy`` of this round), its transformer and collective to
    their conventional files and the collective to ``<run_dir>/collective-round<r>.pt``; returns the new
    collective."""
    for i, task in enumerate(tasks):
        old = meta[i]
        recorded = old.get("recorded_episodes", len(data[i]) - int(cfg.online_distill.episodes_per_round))
        meta[i] = {**old, "online_student": "collective", "online_rounds": round_ + 1, "recorded_episodes": recorded,
                   "collective_success": [*old.get("collective_success", []), success[task]],
                   "own_window_accuracy": [*old.get("own_window_accuracy", []), own_accuracy[task]]}
        env = task_env(cfg, task)
        try:
            write_dataset(cfg.data_dir, collective_dataset_id(cfg, task, online=True), data[i], env, "DAgger",
                          f"Teacher-labelled recorded and collective episodes of {task}", meta[i])
        finally:
            env.close()
    t_state = transformer.state_dict()["transformer"]
    save_collective(cfg, collective_file(online, "transformer"), t_state, None, None, tasks, dagger_rounds=round_ + 1)
    path = save_collective(cfg, collective_file(online), t_state, actor, actor_kwargs, tasks, dagger_rounds=round_ + 1,
                           teacher_success={t: m.get("teacher_success") for t, m in zip(tasks, meta)})
    shutil.copyfile(path, Path(run_dir) / f"collective-round{round_ + 1}.pt")
    log.info(f"DAgger round {round_ + 1}: {sum(map(len, data))} episodes -> "
             f"{collective_dataset_path(cfg, tasks[0], True).parent}; collective -> {path}")
    return read_collective(path, transformer.device)
