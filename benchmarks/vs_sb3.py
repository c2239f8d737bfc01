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
``verbose=0``). Both time the whole run including the random steps, in wall time and in the process's
CPU time (steadier on a shared machine); ``--repeats`` alternates the two sides and reports each one's
best and median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


class Clock:
    """Wall and process CPU seconds since it was made."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, steps: int) -> dict[str, float]:
        """``steps`` per wall second and per CPU second."""
        return {"wall": steps / (time.perf_counter() - self.wall), "cpu": steps / (time.process_time() - self.cpu)}


def run_sb3(args: argparse.Namespace) -> dict[str, float]:
    """Agent steps per wall and CPU second of Stable-Baselines3's SAC."""
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", _state_env(args.task, args.action_repeat, args.seed), learning_rate=3e-4,
                buffer_size=args.steps, learning_starts=args.learning_starts, batch_size=256, tau=0.005,
                gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs={"net_arch": [256, 256]}, seed=args.seed, device="cpu", verbose=0)
    clock = Clock()
    model.learn(total_timesteps=args.steps)
    return clock.rates(args.steps)


def run_polytask(args: argparse.Namespace) -> dict[str, float]:
    """Agent steps per wall and CPU second of PolyTask's SAC in its online trainer."""
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
        clock = Clock()
        for trainer.step in range(args.steps):
            trainer.train_step()
        return clock.rates(args.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=11_000, help="agent steps of each run")
    parser.add_argument("--learning-starts", type=int, default=1_000, help="random steps before the first update")
    parser.add_argument("--task", default="cheetah_run")
    parser.add_argument("--action-repeat", type=int, default=2, help="as the dmc suite config")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, alternating")
    parser.add_argument("--only", choices=("sb3", "polytask"), help="run one side in this process (used internally)")
    parser.add_argument("polytask_overrides", nargs="*", help="extra config overrides of PolyTask's run, "
                        "e.g. agent.compile=true")
    args = parser.parse_args()
    if args.only:
        import torch

        torch.set_num_threads(1)
        print(json.dumps((run_sb3 if args.only == "sb3" else run_polytask)(args)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs: dict[str, list[dict[str, float]]] = {"sb3": [], "polytask": []}
    for _ in range(args.repeats):
        for side in runs:
            p = subprocess.run([sys.executable, __file__, "--only", side, *sys.argv[1:]], capture_output=True,
                               text=True, env=env, cwd=ROOT)
            if p.returncode != 0:
                sys.exit(f"the {side} run failed:\n{p.stderr[-3000:]}")
            runs[side].append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(f"{side:9s} {runs[side][-1]['wall']:7.1f} steps per wall s, {runs[side][-1]['cpu']:7.1f} per CPU s",
                  flush=True)
    print(f"{args.steps} agent steps ({args.learning_starts} random), {args.task}, action repeat {args.action_repeat}, "
          f"1 thread, {args.repeats} run(s) each:")
    summary = {side: {k: (max(r[k] for r in rs), statistics.median(r[k] for r in rs)) for k in ("wall", "cpu")}
               for side, rs in runs.items()}
    for side, rates in summary.items():
        print(f"  {side:9s} " + "; ".join(f"per {k} s: best {b:.1f}, median {m:.1f}" for k, (b, m) in rates.items()))
    for k in ("wall", "cpu"):
        (pb, pm), (sb, sm) = summary["polytask"][k], summary["sb3"][k]
        print(f"PolyTask / SB3 agent steps per {k} second: {pb / sb:.2f}x (best), {pm / sm:.2f}x (median)")


if __name__ == "__main__":
    main()
