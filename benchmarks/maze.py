"""Maze suite figures: env steps/s (random actions), the expert's success and demo speed per task,
and play-data generation speed.

    python benchmarks/maze.py --episodes 20 --play-episodes 40
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from polytask.data.collect import collect_episodes
from polytask.experts.maze import MazeExpert, play_episodes
from polytask.suites.maze import TASKS, make


def env_speed(task: str, obs_type: str, steps: int) -> float:
    """Random-action agent steps/s of ``task``."""
    env = make(task, obs_type, seed=0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=20, help="expert episodes per task")
    parser.add_argument("--noise", type=float, default=0.1, help="expert action noise (the demos' default)")
    parser.add_argument("--env-steps", type=int, default=5000)
    parser.add_argument("--play-episodes", type=int, default=40)
    args = parser.parse_args()
    for obs_type in ("features", "pixels"):
        print(f"env umaze {obs_type:8s} {env_speed('umaze', obs_type, args.env_steps):8.0f} steps/s (random actions)")
    for task in TASKS:
        env = make(task, "features", frame_stack=1, terminate_on_success=True)
        expert = MazeExpert(task, env, noise_std=args.noise)
        eps, stats = collect_episodes(env, expert.act, args.episodes, keep_failed=True)
        steps = sum(len(e) for e in eps)
        print(f"expert {task:8s} success {stats.successes}/{stats.attempts}  steps to goal "
              f"{np.mean([len(e) for e in eps]):6.1f}  {steps / stats.seconds:7.0f} steps/s")
        env.close()
    start = time.perf_counter()
    eps = list(play_episodes(None, args.play_episodes, seed=1))
    seconds = time.perf_counter() - start
    steps = sum(len(e) for e in eps)
    print(f"play   {len(eps)} episodes, {steps} steps ({steps / len(eps):.0f}/episode) in {seconds:.1f}s: "
          f"{steps / seconds:.0f} steps/s, goals reached {np.mean([e.success[-1] for e in eps]):.2f}")


if __name__ == "__main__":
    main()
