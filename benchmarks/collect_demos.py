"""Demo collection speed with Meta-World's scripted policies: episodes/s and steps/s.

    python benchmarks/collect_demos.py --task drawer-close --episodes 10
"""

from __future__ import annotations

import argparse

from polytask.data.collect import collect_episodes
from polytask.experts.metaworld import ScriptedExpert
from polytask.suites.metaworld import make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="drawer-close")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--obs-types", nargs="+", default=["features", "pixels"])
    args = parser.parse_args()
    expert = ScriptedExpert(args.task)
    for obs_type in args.obs_types:
        env = make(args.task, obs_type, frame_stack=1)
        eps, stats = collect_episodes(env, expert.act, args.episodes, keep_failed=True)
        steps = sum(len(e) for e in eps)
        print(f"{args.task:16s} {obs_type:8s} {stats.attempts} episodes in {stats.seconds:6.1f}s: "
              f"{stats.episodes_per_s:6.2f} episodes/s, {steps / stats.seconds:7.0f} agent steps/s, "
              f"expert success {stats.successes}/{stats.attempts}")
        env.close()


if __name__ == "__main__":
    main()
