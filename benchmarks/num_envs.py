"""Online training throughput against ``num_envs``: agent steps (env transitions) per second of SAC
and of the residual agent (Policy Decorator, on an untrained BC base policy) on a Meta-World task,
state features, counting acting, env steps and updates at each agent's update-to-data ratio.

    OMP_NUM_THREADS=1 python benchmarks/num_envs.py --num-envs 1 2 4 --steps 2000

Each row is one run of ``--steps`` steps after ``--warmup`` steps (which build the replay buffer past
``update_after_steps``); ``--sync`` steps the envs in this process instead of subprocesses;
``--overlap`` adds a row per ``num_envs`` with ``overlap_updates=true`` (the envs step while the
agent updates; its ``env`` column is then the wait beyond the updates).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import polytask.config  # noqa: F401  (registers the config resolvers)
from polytask.suites import make_env
from polytask.training.build import build_trainer
from polytask.utils import atomic_torch_save, instantiate

ROOT = Path(__file__).resolve().parents[1]


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def write_base_policy(task: str, path: Path) -> Path:
    """A BC weights file (default BC config, untrained networks) for the residual agent's base."""
    cfg = config("agent=bc", f"suite/metaworld_task={task}")
    env = make_env(cfg.suite, task, obs_type="features")
    options = {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items() if k not in ("name", "trainer")}
    agent = instantiate(options, _partial_=True)(
        obs_shapes={k: tuple(s.shape) for k, s in env.observation_space.spaces.items()},
        action_dim=int(env.action_space.shape[0]), obs_type="features", device=torch.device("cpu"))
    env.close()
    atomic_torch_save({"agent": agent.state_dict(), "agent_name": "bc", "step": 0, "eval": {},
                       "config": OmegaConf.to_container(cfg, resolve=True)}, path)
    return path


def steps_per_second(overrides: list[str], warmup: int, steps: int, run_dir: Path) -> tuple[float, dict[str, float]]:
    """Agent steps/s of ``train_step`` calls over ``steps`` steps after ``warmup`` steps, and the
    milliseconds per step spent acting, in the envs and updating (the trainer's own clocks)."""
    trainer = build_trainer(config(*overrides), run_dir=run_dir)
    trainer.agent.train(True)
    try:
        while trainer.step < warmup:
            trainer.train_step()
            trainer.step += trainer.steps_per_train_step
        start, s0, seconds = time.perf_counter(), trainer.step, dict(trainer.seconds)
        while trainer.step < warmup + steps:
            trainer.train_step()
            trainer.step += trainer.steps_per_train_step
        n = trainer.step - s0
        return n / (time.perf_counter() - start), {k: 1000 * (trainer.seconds[k] - seconds[k]) / n
                                                   for k in ("act", "env", "update")}
    finally:
        trainer.envs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="reach")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--agents", nargs="+", default=["sac", "residual"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--sync", action="store_true", help="step the envs in this process")
    parser.add_argument("--overlap", action="store_true", help="also run each num_envs with overlap_updates=true")
    parser.add_argument("--device", default="cpu", help="where the agent updates (cpu, cuda, auto)")
    args = parser.parse_args()
    logging.getLogger("polytask").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = write_base_policy(args.task, Path(tmp) / "base.pt")
        for name in args.agents:
            agent = [f"agent={name}"] + ([f"base_policy={base}", "prog_explore=0"] if name == "residual" else [])
            for n in args.num_envs:
                for overlap in (False, True) if args.overlap else (False,):
                    overrides = [*agent, f"suite/metaworld_task={args.task}", "obs_type=features",
                                 f"device={args.device}", f"data_dir={tmp}", f"num_envs={n}",
                                 f"async_envs={not args.sync}", f"overlap_updates={overlap}",
                                 f"update_after_steps={args.warmup // 2}",
                                 f"num_train_steps={args.warmup + args.steps}"]
                    rate, ms = steps_per_second(overrides, args.warmup, args.steps,
                                                Path(tmp) / f"{name}-{n}-{'overlap' if overlap else 'plain'}")
                    cfg = config(*overrides)
                    utd = f"{cfg.updates_per_step}/{cfg.update_every_steps}"
                    rows.append((name, n, overlap, utd, rate, ms))
                    print(f"{name:9s} num_envs={n} overlap={overlap}  UTD {utd}  {rate:7.1f} steps/s", flush=True)
    print("\n| agent | num_envs | overlap_updates | updates/env step | agent steps/s | ms/step act | env | update |\n"
          "|---|---|---|---|---|---|---|---|")
    for name, n, overlap, utd, rate, ms in rows:
        print(f"| {name} | {n} | {overlap} | {utd} | {rate:.1f} | {ms['act']:.2f} | {ms['env']:.2f} | "
              f"{ms['update']:.2f} |")


if __name__ == "__main__":
    main()
