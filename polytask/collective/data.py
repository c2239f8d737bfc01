"""The collective's data: per-task datasets of teacher-labelled episodes, where they live, and the
commands that make them.

Every episode holds the executed actions, the env rewards and, per step, the teacher's Gaussian at
the visited state in ``infos``: ``mean`` float32 (T, A), the pre-tanh mean μ (the executed action of
the teacher is tanh(μ)), and ``log_std`` float32 (T, A), its log σ, as SAC's actor outputs them
(:class:`polytask.nets.mlp.GaussianActor`). Teachers:

- ``scripted``: Meta-World's scripted policy; μ = atanh(clip(a, ±:data:`SCRIPTED_CLIP`)) of its
  action a and a fixed log σ (``collective.scripted_log_std``, −1.0: σ ≈ 0.37 in pre-tanh space).
- ``sac``: the SAC worker of the task (``mode=train_worker``): its actor's μ and log σ.

With ``collective.random_prob`` = p > 0 each step executes a uniform random action with probability
p instead of the teacher's (p = 1: random actions), still labelled with the teacher's Gaussian.

Dataset ids (Minari, under ``<data_dir>/datasets/``): ``polytask/<suite>/collective-<source>/<task>-v0``
with ``<source>`` = ``<teacher>[-p<percent>]`` for recorded data, ``<teacher>[-p<percent>]-online`` for
online distillation's with a per-task student and ``<teacher>[-p<percent>]-online-collective`` for online
distillation's with the collective acting (``online_distill.student``, :func:`source_tag`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig

from polytask.data.collect import rollout
from polytask.data.demos import DatasetError, Episode, dataset_path, load_episodes, read_metadata
from polytask.errors import ConfigError

log = logging.getLogger("polytask")

#: scripted actions are clipped to ±SCRIPTED_CLIP before atanh, so saturated ones get a finite mean (±3.8)
SCRIPTED_CLIP = 0.999
#: the teachers a collective can learn from
TEACHERS = ("scripted", "sac")
#: which datasets the transformer and the collective actor read (``collective.data``)
DATA_KINDS = ("recorded", "online")
#: who acts in online distillation (``online_distill.student``): a temporary state-only student per task,
#: or the collective itself (:mod:`polytask.training.collective_dagger`)
STUDENTS = ("task", "collective")
#: the modes whose outputs depend on ``collective.data``
AFTER_DATA = ("train_transformer", "distill_collective", "evaluate", "train_student", "finetune_student")

#: ``obs -> (mean (A,), log_std (A,))``: a teacher's pre-tanh Gaussian at one observation dict
Teacher = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def check_collective_options(cfg: DictConfig) -> None:
    """Check ``cfg.collective`` before any work.

    Raises:
        ConfigError: for an unknown teacher, data kind, online student or ``distill.mean_loss``, a random_prob
            outside [0, 1], another suite than Meta-World or pixels (the collective acts on state features).
    """
    from polytask.nets.collective import check_mean_loss

    c = cfg.collective
    if "distill" in cfg:
        check_mean_loss(cfg.distill.mean_loss)
    if online_student(cfg) not in STUDENTS:
        raise ConfigError(f"online_distill.student={online_student(cfg)!r}: use one of {', '.join(STUDENTS)}")
    if c.teacher not in TEACHERS:
        raise ConfigError(f"collective.teacher={c.teacher!r}: use one of {', '.join(TEACHERS)}")
    if c.data not in DATA_KINDS:
        raise ConfigError(f"collective.data={c.data!r}: use one of {', '.join(DATA_KINDS)}")
    if not 0.0 <= float(c.random_prob) <= 1.0:
        raise ConfigError(f"collective.random_prob={c.random_prob}: a probability in [0, 1]")
    if cfg.suite.name != "metaworld" or cfg.obs_type != "features":
        raise ConfigError(f"train_collective.py runs on suite=metaworld with obs_type=features (got suite="
                          f"{cfg.suite.name}, obs_type={cfg.obs_type})")


def online_student(cfg: DictConfig) -> str:
    """Who acts in online distillation: ``online_distill.student`` (``task`` when the config has none)."""
    return str(cfg.get("online_distill", {}).get("student", "task"))


def source_tag(cfg: DictConfig, online: bool = False) -> str:
    """``<teacher>[-p<percent>][-online[-collective]]``: names the datasets and the collective's weights
    (``percent``: ``collective.random_prob`` in whole percent, as Minari ids take no dots: 0.2 -> ``p20``;
    ``-collective``: online data in which the collective acted, ``online_distill.student=collective``)."""
    p = float(cfg.collective.random_prob)
    online_tag = ("-online-collective" if online_student(cfg) == "collective" else "-online") if online else ""
    return f"{cfg.collective.teacher}{f'-p{round(100 * p)}' if p > 0 else ''}{online_tag}"


def collective_dataset_id(cfg: DictConfig, task: str, online: bool = False) -> str:
    """Minari id of ``task``'s teacher-labelled episodes: ``polytask/<suite>/collective-<source>/<task>-v0``."""
    return f"polytask/{cfg.suite.name}/collective-{source_tag(cfg, online)}/{task}-v0"


def collective_dataset_path(cfg: DictConfig, task: str, online: bool = False) -> Path:
    """The folder of :func:`collective_dataset_id` under ``cfg.data_dir``."""
    return dataset_path(cfg.data_dir, collective_dataset_id(cfg, task, online))


def command(cfg: DictConfig, mode: str, tasks: list[str], multirun: bool = False) -> str:
    """The ``train_collective.py`` command of ``mode`` on ``tasks`` with the run's teacher, random_prob,
    data kind, online student, seed and data_dir (for error messages). ``multirun``: one job per task (``-m``)."""
    task_arg = f"suite.task={','.join(f'[{t}]' for t in tasks)}" if multirun else f"suite.task=[{','.join(tasks)}]"
    online = mode == "online_distill" or (cfg.collective.data == "online" and mode in AFTER_DATA)
    data_arg = "collective.data=online " if cfg.collective.data == "online" and mode in AFTER_DATA else ""
    if online and online_student(cfg) != "task":
        data_arg += f"online_distill.student={online_student(cfg)} "
    return (f"python train_collective.py {'-m ' if multirun else ''}mode={mode} '{task_arg}' "
            f"collective.teacher={cfg.collective.teacher} collective.random_prob={cfg.collective.random_prob} "
            f"{data_arg}seed={cfg.seed} data_dir={cfg.data_dir}")


def make_data_command(cfg: DictConfig, task: str, online: bool = False) -> str:
    """The command that makes ``task``'s dataset: ``online_distill`` for online data (on all the
    collective's tasks when the collective acts), else ``record`` (scripted teacher) or ``train_worker``
    (SAC teacher)."""
    if online:
        tasks = [str(t) for t in cfg.collective.tasks] if online_student(cfg) == "collective" else [task]
        return command(cfg, "online_distill", tasks)
    return command(cfg, "record" if cfg.collective.teacher == "scripted" else "train_worker", [task])


def load_task_data(cfg: DictConfig, task: str, online: bool | None = None) -> tuple[list[Episode], dict]:
    """``task``'s labelled episodes (state observations) and the dataset's ``polytask`` metadata
    (``teacher_success``, ...). ``online`` None: ``cfg.collective.data == "online"``.

    Raises:
        DatasetError: if the dataset is missing (the message gives the command that makes it) or lacks
            the ``mean``/``log_std`` labels.
    """
    online = cfg.collective.data == "online" if online is None else online
    path = collective_dataset_path(cfg, task, online)
    how = make_data_command(cfg, task, online)
    if not (path / "data" / "metadata.json").exists():
        raise DatasetError(f"No collective data for {task} at {path}. Make it with:\n  {how}")
    episodes = load_episodes(path, obs_keys=("state",), make_cmd=how)
    if not episodes or "mean" not in episodes[0].infos or "log_std" not in episodes[0].infos:
        raise DatasetError(f"{path} holds no teacher labels (infos 'mean' and 'log_std'). Make it again with:\n  {how}")
    return episodes, read_metadata(path).get("polytask", {})


def scripted_teacher(task: str, log_std: float) -> Teacher:
    """Meta-World's scripted policy of ``task`` as a teacher: μ = atanh(clip(a, ±SCRIPTED_CLIP)),
    log σ = ``log_std`` on every action dimension."""
    from polytask.experts.metaworld import ScriptedExpert

    expert = ScriptedExpert(task)

    def label(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        action = expert.act(obs)
        mean = np.arctanh(np.clip(action, -SCRIPTED_CLIP, SCRIPTED_CLIP)).astype(np.float32)
        return mean, np.full_like(mean, log_std)

    return label


def actor_teacher(actor, device="cpu") -> Teacher:
    """A Gaussian actor (``actor(h) -> (μ, log σ)`` on the state, e.g. a SAC worker's
    :class:`~polytask.nets.mlp.GaussianActor`) as a teacher."""
    import torch

    @torch.no_grad()
    def label(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        mean, log_std = actor(torch.as_tensor(obs["state"][None], device=device))
        return mean[0].cpu().numpy().astype(np.float32), log_std[0].cpu().numpy().astype(np.float32)

    return label


def labelled_rollout(env: gym.Env, teacher: Teacher, seed: int, rng: np.random.Generator, random_prob: float = 0.0,
                     student: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None) -> Episode:
    """One episode from ``reset(seed=seed)`` in which every visited state is labelled by ``teacher``
    (``infos["mean"]``, ``infos["log_std"]``, float32 (T, A)).

    The executed action is ``student(obs)`` when given (DAgger: the student acts, the teacher labels),
    else the teacher's tanh(μ); with probability ``random_prob`` per step a uniform random action in
    [-1, 1] instead (drawn from ``rng``).
    """
    means, log_stds = [], []

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        mean, log_std = teacher(obs)
        means.append(mean)
        log_stds.append(log_std)
        action = student(obs) if student is not None else np.tanh(mean)
        if random_prob > 0 and rng.random() < random_prob:
            action = rng.uniform(-1.0, 1.0, size=mean.shape)
        return np.asarray(action, np.float32)

    ep = rollout(env, act, seed)
    ep.infos = {"mean": np.asarray(means, np.float32), "log_std": np.asarray(log_stds, np.float32)}
    return ep


def episode_tuples(episodes_per_task: list[list[Episode]]) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(task_id, obs (T+1, D), actions (T, A), rewards (T,))`` for every episode, task ids in list
    order: the input of :func:`polytask.collective.windows.sample_windows`."""
    return [(i, ep.obs["state"], ep.action, ep.reward) for i, eps in enumerate(episodes_per_task) for ep in eps]


def split_held_out(episodes: list[Episode], fraction: float) -> tuple[list[Episode], list[Episode]]:
    """``(train, held_out)``: the last ``ceil(fraction·n)`` episodes held out (at least one episode
    stays for training; none is held out from a single episode).

    Raises:
        DatasetError: for an empty episode list.
    """
    if not episodes:
        raise DatasetError("no episodes to split")
    n_held = min(len(episodes) - 1, int(np.ceil(fraction * len(episodes))))
    return episodes[:len(episodes) - n_held], episodes[len(episodes) - n_held:]
