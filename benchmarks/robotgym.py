"""Robot gym figures: simulated env steps/s per task (features and pixels), the scripted experts'
success, and the control loop's period and jitter against its target with the xArm SDK double.

    python benchmarks/robotgym.py --steps 400 --loop-steps 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from polytask.data.collect import collect_episodes
from polytask.experts.robotgym import ScriptedExpert
from polytask.suites import make_env
from polytask.suites.robotgym import TASKS

ROOT = Path(__file__).resolve().parents[1]


def suite_cfg():
    """The ``suite`` config of all six tasks, composed as the entry scripts do."""
    from hydra import compose, initialize_config_dir

    import polytask.config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        return compose("config", overrides=["suite=robotgym", "suite/robotgym_task=all"]).suite


def env_speed(cfg, task: str, obs_type: str, steps: int) -> float:
    """Random-action agent steps/s of ``task`` on the simulation (resets included)."""
    env = make_env(cfg, task, obs_type)
    env.action_space.seed(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        *_, truncated, _ = env.step(env.action_space.sample())
        if truncated:
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds


def loop_timing(hz: float, steps: int) -> np.ndarray:
    """Seconds between the steps of the xArm env at ``hz`` on the SDK double (pixels, camera double)."""
    sys.path.insert(0, str(ROOT))
    from tests.robot_doubles import make_xarm_env

    env, _, _ = make_xarm_env(obs_type="pixels", control_hz=hz, answers=[""] * 3, episode_len=steps,
                              ask_success=False)
    env.reset(seed=0)
    for _ in range(steps):
        env.step(np.zeros(3, np.float32))
    periods = env.rate.periods()
    env.close()
    return periods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--loop-steps", type=int, default=20)
    args = parser.parse_args()
    cfg = suite_cfg()
    print(f"{'task':18s} {'features/s':>11s} {'pixels/s':>9s} {'expert success':>15s}")
    for task in TASKS:
        env = make_env(cfg, task, "features", frame_stack=1)
        _, stats = collect_episodes(env, ScriptedExpert(task, env).act, args.episodes, keep_failed=True)
        env.close()
        print(f"{task:18s} {env_speed(cfg, task, 'features', args.steps):11.0f} "
              f"{env_speed(cfg, task, 'pixels', args.steps // 4):9.0f} "
              f"{stats.successes:>9d}/{stats.attempts}")
    for hz in (2.0, 10.0):
        p = loop_timing(hz, args.loop_steps)
        print(f"control loop at {hz:g} Hz (target {1000 / hz:.1f} ms), {len(p)} steps: period mean "
              f"{1000 * p.mean():.2f} ms, std {1000 * p.std():.2f} ms, "
              f"max |error| {1000 * np.abs(p - 1 / hz).max():.2f} ms")


if __name__ == "__main__":
    main()
