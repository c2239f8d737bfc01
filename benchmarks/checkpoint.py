"""Checkpoint size and save time of a pixel DrQ-v2 run: ``latest.pt`` (+ replay chunks) and ``best.pt``
with a replay buffer of ``--steps`` pixel steps (3×84×84 uint8 frames and 39-d states, Meta-World's
pixel observations), as PolyTask saved them before (the whole buffer inside ``latest.pt``, and again
in ``best.pt``) and now (the buffer in chunk files of the steps added since the last save,
``best.pt`` the agent only).

    python benchmarks/checkpoint.py --steps 50000 --more 10000

The agent is ``agent=drqv2``'s (1024 wide, feature_dim 512, with its Adam states); ``--more`` is the
number of steps added between two saves (``save_every_steps``, 10000 for DrQ-v2). Files go to a
temporary folder under ``--dir`` that is removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from polytask.agents.drqv2 import DrQV2Agent
from polytask.data.replay import SLOT_ARRAYS, ReplayBuffer
from polytask.training.replay_store import ReplayStore
from polytask.utils import atomic_torch_save, rng_state

EPISODE_LEN = 250


def _fill(buf: ReplayBuffer, steps: int, rng: np.random.Generator) -> None:
    """``steps`` steps in episodes of 250, random frames (cycled from a pool) and states."""
    frames = rng.integers(0, 256, (64, 9, 84, 84), dtype=np.uint8)
    action = np.zeros(4, np.float32)
    for t in range(steps):
        obs = {"pixels": frames[t % 64], "state": rng.standard_normal(39).astype(np.float32)}
        if buf.count == 0 or t % EPISODE_LEN == 0:
            buf.add_first(obs)
        buf.add(action, 0.0, obs, False, t % EPISODE_LEN == EPISODE_LEN - 1)


def _before_replay_state(buf: ReplayBuffer) -> dict:
    """The replay buffer as ``latest.pt`` held it before: every stored row, inline."""
    n = len(buf)
    return {**buf.state_dict(), "obs": {k: v[:n].copy() for k, v in buf.obs.items()},
            **{k: getattr(buf, k)[:n].copy() for k in SLOT_ARRAYS}}


def _timed_save(state_fn, path: Path) -> float:
    """Seconds to build the state and write it (temp file, fsync, rename), as a run's save does."""
    start = time.perf_counter()
    atomic_torch_save(state_fn(), path)
    return time.perf_counter() - start


def _gb(*paths: Path) -> str:
    return f"{sum(p.stat().st_size for p in paths) / 1e9:7.3f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50_000, help="pixel steps in the replay buffer")
    parser.add_argument("--more", type=int, default=10_000, help="steps added before the next save")
    parser.add_argument("--dir", default=None, help="where to write the files (default: the system temp folder)")
    args = parser.parse_args()
    agent = DrQV2Agent({"pixels": (9, 84, 84), "state": (39,)}, 4, "pixels")
    buf = ReplayBuffer(args.steps + args.more + 1000, {"pixels": (9, 84, 84), "state": (39,)}, 4)
    rng = np.random.default_rng(0)
    _fill(buf, args.steps, rng)
    base = {"agent": agent.state_dict(), "step": args.steps, "rng": rng_state()}
    weights = {"agent": agent.state_dict(), "agent_name": "drqv2", "step": args.steps, "eval": {"success": 0.0}}
    out = Path(tempfile.mkdtemp(prefix="polytask-ckpt-", dir=args.dir))
    try:
        old = out / "before"
        t_old = _timed_save(lambda: {**base, "replay": _before_replay_state(buf)}, old / "latest.pt")
        atomic_torch_save({**base, "replay": _before_replay_state(buf)}, old / "best.pt")
        new, store = out / "now", ReplayStore(out / "now" / "replay")
        t_first = _timed_save(lambda: {**base, "replay": store.save(buf)}, new / "latest.pt")
        first_chunks = sorted((new / "replay").glob("*.npz"))
        t_best = _timed_save(lambda: weights, new / "best.pt")
        _fill(buf, args.more, rng)
        t_next = _timed_save(lambda: {**base, "replay": store.save(buf)}, new / "latest.pt")
        next_chunk = [p for p in (new / "replay").glob("*.npz") if p not in first_chunks]

        print(f"pixel DrQ-v2 (agent=drqv2 networks), replay buffer of {args.steps} steps (3x84x84 uint8 frames, "
              f"39-d states, {buf.obs['pixels'][0].nbytes + buf.obs['state'][0].nbytes} B per step)")
        print(f"{'':36s} {'latest.pt':>10s} {'replay chunks':>14s} {'best.pt':>10s} {'one latest save':>16s}")
        print(f"{'before (buffer inside both)':36s} {_gb(old / 'latest.pt')} {'-':>14s} {_gb(old / 'best.pt')} "
              f"{t_old:14.2f} s")
        print(f"{f'now, first save ({args.steps} steps)':36s} {_gb(new / 'latest.pt')} {_gb(*first_chunks):>14s} "
              f"{_gb(new / 'best.pt')} {t_first:14.2f} s")
        print(f"{f'now, next save (+{args.more} steps)':36s} {_gb(new / 'latest.pt')} {'+' + _gb(*next_chunk):>14s} "
              f"{'':10s} {t_next:14.2f} s")
        print(f"best.pt save now: {t_best:.2f} s (before: the same state as latest.pt, {t_old:.2f} s)")
    finally:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
