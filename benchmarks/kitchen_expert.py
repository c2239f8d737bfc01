"""Franka Kitchen: success of the scripted expert per task, demo collection speed, env speed and
play-data speed.

    python benchmarks/kitchen_expert.py --episodes 20
    python benchmarks/kitchen_expert.py --episodes 5 --tasks task6 --obs-types features pixels --play 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from polytask.data.collect import collect_episodes
from polytask.experts.kitchen import KitchenExpert, play_episodes
from polytask.suites.kitchen import SEQUENCES, TASK_IDS, make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=list(TASK_IDS) + SEQUENCES)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--obs-types", nargs="+", default=["features"])
    parser.add_argument("--random-steps", type=int, default=500, help="env steps/s with random actions (0: skip)")
    parser.add_argument("--play", type=int, default=0, help="play episodes to time (0: skip)")
    args = parser.parse_args()
    for obs_type in args.obs_types:
        for task in args.tasks:
            env = make(task, obs_type, seed=0)
            expert = KitchenExpert(task, env)
            eps, stats = collect_episodes(env, expert.act, args.episodes, keep_failed=True, desc=task)
            steps = sum(len(e) for e in eps)
            subtasks = np.mean([e.reward.sum() for e in eps])
            print(f"{task:32s} {obs_type:8s} success {stats.successes}/{stats.attempts}  subtasks done {subtasks:.2f}  "
                  f"mean length {steps / len(eps):5.0f}  {stats.episodes_per_s:5.2f} episodes/s  "
                  f"{steps / stats.seconds:5.0f} steps/s", flush=True)
            env.close()
        if args.random_steps:
            env = make("microwave-kettle-light-slide", obs_type, seed=0, terminate_on_success=False)
            env.reset(seed=0)
            start = time.perf_counter()
            for _ in range(args.random_steps):
                _, _, _, truncated, _ = env.step(env.action_space.sample())
                if truncated:
                    env.reset()
            print(f"random actions {obs_type:8s} {args.random_steps / (time.perf_counter() - start):6.0f} env steps/s")
            env.close()
    if args.play:
        start = time.perf_counter()
        eps = list(play_episodes(None, args.play, seed=0))
        seconds = time.perf_counter() - start
        done = np.mean([e.infos["num_completed"][-1] for e in eps])
        drawn = np.mean([len(e.extras["subtasks"]) for e in eps])
        print(f"play (features) {args.play} episodes in {seconds:.1f}s: {args.play / seconds:.2f} episodes/s, "
              f"{drawn:.2f} subtasks drawn and {done:.2f} done per episode; 600 episodes would take "
              f"{600 * seconds / args.play / 60:.0f} min")


if __name__ == "__main__":
    main()
