"""Stable-Baselines3's SAC against PolyTask's SAC, side by side: the same DMC task on state features
(the project's own env, :func:`polytask.suites.dmc.make`, for both), the same networks (2×256 MLPs),
batch (256), update-to-data ratio (1 update per agent step), random actions and no updates for the
first ``--learning-starts`` steps, one torch thread each, one process after the other. Prints agent
steps/s of each and their ratio.

    pip install -e '.[bench]'     # Stable-Baselines3 (not a dependency of the project)
    python benchmarks/vs_sb3.py --steps 11000

PolyTask's side is its online trainer's training step (:meth:`OnlineTrainer.train_step`: act,
env step, replay insert and sample, update) built from ``agent=sac suite=dmc`` with evaluation,
logging and checkpoints left out; SB3's is ``SAC.learn`` (the same parts, its own logging at
``verbose=0``). Both time the whole run including the random steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _state_env(task: str, action_repeat: int, seed: int):
    """The project's DMC env with its ``state`` vector as the observation (SB3's MlpPolicy takes a Box)."""
    import gymnasium as gym

    from polytask.suites.dmc import make

    env = make(task, "features", seed=seed, action_repeat=action_repeat)
    return gym.wrappers.TransformObservation(env, lambda obs: obs["state"], env.observation_space["state"])


def run_sb3(args: argparse.Namespace) -> float:
    """Agent steps/s of Stable-Baselines3's SAC."""
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", _state_env(args.task, args.action_repeat, args.seed), learning_rate=3e-4,
                buffer_size=args.steps, learning_starts=args.learning_starts, batch_size=256, tau=0.005,
                gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs={"net_arch": [256, 256]}, seed=args.seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    return args.steps / (time.perf_counter() - start)


def run_polytask(args: argparse.Namespace) -> float:
    """Agent steps/s of PolyTask's SAC in its online trainer."""
    from hydra import compose, initialize_config_dir

    import polytask.config  # noqa: F401  (the config's resolvers)
    from polytask.training.online import OnlineTrainer

    overrides = ["agent=sac", "suite=dmc", f"suite.task=[{args.task}]", "irl=false", "device=cpu",
                 f"suite.env.action_repeat={args.action_repeat}", f"seed={args.seed}", "batch_size=256",
                 "agent.hidden_dim=256", "agent.hidden_depth=2", f"agent.num_expl_steps={args.learning_starts}",
                 f"update_after_steps={args.learning_starts}", "update_every_steps=1", "updates_per_step=1",
                 f"replay_capacity={args.steps + 1000}", *args.polytask_overrides]
    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = OnlineTrainer.from_config(cfg, Path(run_dir))
        trainer.agent.train(True)
        start = time.perf_counter()
        for trainer.step in range(args.steps):
            trainer.train_step()
        return args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=11_000, help="agent steps of each run")
    parser.add_argument("--learning-starts", type=int, default=1_000, help="random steps before the first update")
    parser.add_argument("--task", default="cheetah_run")
    parser.add_argument("--action-repeat", type=int, default=2, help="as the dmc suite config")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("sb3", "polytask"), help="run one side in this process (used internally)")
    parser.add_argument("polytask_overrides", nargs="*", help="extra config overrides of PolyTask's run, "
                        "e.g. agent.compile=true")
    args = parser.parse_args()
    if args.only:
        import torch

        torch.set_num_threads(1)
        steps_per_s = (run_sb3 if args.only == "sb3" else run_polytask)(args)
        print(json.dumps({"steps_per_s": steps_per_s}))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = {}
    for side in ("sb3", "polytask"):
        cmd = [sys.executable, __file__, "--only", side, *sys.argv[1:]]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if p.returncode != 0:
            sys.exit(f"the {side} run failed:\n{p.stderr[-3000:]}")
        result[side] = json.loads(p.stdout.strip().splitlines()[-1])["steps_per_s"]
        print(f"{side:9s} {result[side]:8.1f} agent steps/s ({args.steps} steps, {args.learning_starts} random, "
              f"{args.task}, action repeat {args.action_repeat}, 1 thread)", flush=True)
    print(f"PolyTask / SB3: {result['polytask'] / result['sb3']:.2f}x the agent steps/s")


if __name__ == "__main__":
    main()
