"""Evaluation: N episodes per task, return and success rate per task and their mean."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

log = logging.getLogger("polytask")

#: Eval episode ``i`` of every run starts from ``reset(seed=EVAL_SEED_BASE + i)``: a fixed set of
#: task variations, disjoint from the demonstrations' seeds (``polytask.data.collect.DEMO_SEED_BASE``).
EVAL_SEED_BASE = 1_000_000

#: ``policy(obs_batch) -> actions``: obs dict of arrays (B, ...) holding also ``task_id`` int64 (B,),
#: the index of the task in the evaluator's list, ``env_index`` int64 (B,), the env slot (0 ..
#: num_envs − 1) each row comes from, and ``is_first`` bool (B,), true on an episode's first step;
#: returns float32 (B, A). Policies with memory (observation history, action chunks) keep it per
#: ``env_index`` and clear it where ``is_first``.
Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def _stack_obs(obs_list: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}


class Evaluator:
    """Runs ``num_episodes`` episodes on each task, ``num_envs`` at a time with one batched policy
    call per step.

    Args:
        make_env: ``make_env(task) -> gym.Env``.
        tasks: task names; the ``task_id`` passed to the policy in the observation is the index.
        num_episodes: episodes per task.
        num_envs: envs stepped together (batch size of policy calls).
        stop_on_success: end an episode at its first success (its return then sums up to there).
        video_dir: where ``<task>_<step>.mp4`` of each task's first episode go (None: no videos).
    """

    def __init__(self, make_env: Callable[[str], gym.Env], tasks: list[str], num_episodes: int = 20,
                 num_envs: int = 10, stop_on_success: bool = True, seed_base: int = EVAL_SEED_BASE):
        self.make_env, self.tasks = make_env, list(tasks)
        self.num_episodes, self.num_envs = num_episodes, max(1, min(num_envs, num_episodes))
        self.stop_on_success, self.seed_base = stop_on_success, seed_base

    def run_task(self, policy: Policy, task_id: int, video_path: Path | None = None) -> dict[str, float]:
        """Evaluate one task; returns ``{"success": rate, "return": mean, "length": mean steps}`` and, for
        envs whose info flags the subtasks of a multi-subtask task (``info["subtask_success"]`` float
        (n,), the kitchen's), ``subtask<j>`` for j = 1..n: the share of episodes that completed the
        task's j-th subtask (in the task's order, e.g. ``kettle-burner-light-slide``: 1 is the kettle)."""
        task = self.tasks[task_id]
        envs = [self.make_env(task) for _ in range(self.num_envs)]
        successes, returns, lengths, frames, subtasks = [], [], [], [], []
        try:
            for first in range(0, self.num_episodes, self.num_envs):
                n = min(self.num_envs, self.num_episodes - first)
                obs = [envs[i].reset(seed=self.seed_base + first + i)[0] for i in range(n)]
                active = list(range(n))
                is_first = np.ones(n, bool)
                ret, succ, length = np.zeros(n), np.zeros(n), np.zeros(n, int)
                done: list[np.ndarray | None] = [None] * n
                record = video_path is not None and first == 0
                if record:
                    frames.append(envs[0].render())
                while active:
                    batch = _stack_obs([obs[i] for i in active])
                    batch["task_id"] = np.full(len(active), task_id, np.int64)
                    batch["env_index"] = np.asarray(active, np.int64)
                    batch["is_first"] = is_first[active]
                    actions = policy(batch)
                    is_first[:] = False
                    still = []
                    for a, i in zip(actions, active):
                        obs[i], r, terminated, truncated, info = envs[i].step(a)
                        ret[i] += r
                        length[i] += 1
                        succ[i] = max(succ[i], float(info.get("success", 0.0)))
                        if "subtask_success" in info:
                            flags = np.asarray(info["subtask_success"], np.float64)
                            done[i] = flags if done[i] is None else np.maximum(done[i], flags)
                        if record and i == 0:
                            frames.append(envs[0].render())
                        if not (terminated or truncated or (self.stop_on_success and succ[i] > 0)):
                            still.append(i)
                    active = still
                successes += succ.tolist()
                returns += ret.tolist()
                lengths += length.tolist()
                subtasks += [d for d in done if d is not None]
        finally:
            for env in envs:
                env.close()
        if video_path is not None and frames:
            write_video(video_path, frames)
        metrics = {"success": float(np.mean(successes)), "return": float(np.mean(returns)),
                   "length": float(np.mean(lengths))}
        if subtasks and len(subtasks) == len(successes):
            metrics.update({f"subtask{j + 1}": float(v) for j, v in enumerate(np.mean(subtasks, axis=0))})
        return metrics

    def run(self, policy: Policy, video_dir: Path | None = None, step: int = 0) -> dict[str, float]:
        """Evaluate every task. Returns ``<task>/success``, ``<task>/return`` per task and their means
        ``success`` and ``return``."""
        metrics: dict[str, float] = {}
        for task_id, task in enumerate(self.tasks):
            video = None if video_dir is None else Path(video_dir) / f"{task}_{step}.mp4"
            for k, v in self.run_task(policy, task_id, video).items():
                metrics[f"{task}/{k}"] = v
        for k in ("success", "return", "length"):
            metrics[k] = float(np.mean([metrics[f"{t}/{k}"] for t in self.tasks]))
        return metrics


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """Write uint8 (H, W, 3) frames to an mp4 (H.264 through imageio-ffmpeg).

    Where imageio has no mp4 backend (imageio-ffmpeg missing) the video is skipped with a warning that
    says how to install one, so that a run is not lost at its final eval for want of a video."""
    import imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
    except ValueError as e:
        if "Could not find a backend" not in str(e):
            raise
        log.warning("video %s not written: imageio has no mp4 backend (pip install imageio-ffmpeg, or "
                    "eval.video=off)", path)


def results_table(tasks: list[str], metrics: dict[str, float]) -> str:
    """Per-task success and return, and their mean, as a text table (``metrics`` as :meth:`Evaluator.run`)."""
    lines = [f"{'task':28s} {'success':>8s} {'return':>9s}"]
    lines += [f"{t:28s} {metrics[f'{t}/success']:8.2f} {metrics[f'{t}/return']:9.1f}" for t in tasks]
    lines.append(f"{'mean':28s} {metrics['success']:8.2f} {metrics['return']:9.1f}")
    return "\n".join(lines)
