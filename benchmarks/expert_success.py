"""Success of a suite's expert on the evaluation seeds (the teachers' success for distillation).

    python benchmarks/expert_success.py --tasks reach push pick-place --episodes 20
"""

from __future__ import annotations

import argparse
import time

from polytask.experts.metaworld import ScriptedExpert
from polytask.suites.metaworld import MT10, make
from polytask.training.evaluator import Evaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=MT10)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    experts = {i: ScriptedExpert(t) for i, t in enumerate(args.tasks)}
    evaluator = Evaluator(lambda task: make(task, "features"), args.tasks, args.episodes, num_envs=10)

    def policy(obs):
        import numpy as np

        expert = experts[int(obs["task_id"][0])]
        return np.stack([expert.act({"state": s}) for s in obs["state"]])

    start = time.perf_counter()
    m = evaluator.run(policy)
    for t in args.tasks:
        print(f"{t:28s} success {m[f'{t}/success']:.2f}  return {m[f'{t}/return']:8.1f}")
    print(f"{'mean':28s} success {m['success']:.2f}   ({time.perf_counter() - start:.0f}s)")


if __name__ == "__main__":
    main()
