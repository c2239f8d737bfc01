"""Success of skills sampled from a skill model's prior (agent=skill_prior) or from a skill posterior
(agent=skill_posterior) in maze tasks, through :class:`polytask.suites.skills.SkillWrapper`: each
wrapper step draws z at the current state and runs the frozen decoder for H env steps. Episodes start
from the training runs' eval seeds. ``--skills standard`` draws z from N(0, I) instead (what the learned
prior is compared with).

    python benchmarks/skill_rollouts.py data/weights/skill_prior/maze/play-features-seed1.pt --tasks umaze spirl40
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from polytask.suites.maze import make
from polytask.suites.skills import SkillWrapper
from polytask.training.evaluator import EVAL_SEED_BASE
from polytask.training.weights import load_policy


def rollouts(path: str, task: str, episodes: int, skills: str = "learned", seed: int = 0) -> dict[str, float]:
    """Success rate, mean return and mean env steps of ``episodes`` skill-space episodes in ``task``
    (success ends an episode, as in evaluation), skills from the file's prior or posterior
    (``skills="learned"``) or from N(0, I) (``"standard"``)."""
    env = make(task)
    agent = load_policy(path, env)
    env = SkillWrapper(env, agent.decode, agent.horizon, agent.z_dim)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    successes, returns, steps = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED_BASE + i)
        done, ret, n, success = False, 0.0, 0, 0.0
        while not done and not success:
            z = agent.sample_skill(obs["state"][None])[0] if skills == "learned" else rng.standard_normal(agent.z_dim)
            obs, reward, terminated, truncated, info = env.step(z)
            ret, n, success = ret + reward, n + info["env_steps"], max(success, info["success"])
            done = terminated or truncated
        successes.append(success)
        returns.append(ret)
        steps.append(n)
    env.close()
    return {"success": float(np.mean(successes)), "return": float(np.mean(returns)), "env_steps": float(np.mean(steps))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights", help="an exported skill_prior or skill_posterior weights file")
    parser.add_argument("--tasks", nargs="+", default=["umaze", "spirl40"])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--skills", choices=("learned", "standard"), default="learned",
                        help="z from the file's prior/posterior, or from N(0, I)")
    args = parser.parse_args()
    for task in args.tasks:
        start = time.perf_counter()
        m = rollouts(args.weights, task, args.episodes, args.skills)
        print(f"{task:10s} success {m['success']:.2f}  return {m['return']:.2f}  env steps {m['env_steps']:.0f}  "
              f"({args.episodes} episodes, {time.perf_counter() - start:.0f}s)")


if __name__ == "__main__":
    main()
