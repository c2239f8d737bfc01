"""Replay buffer throughput: inserts/s, sampled batches and transitions/s (batch 256, 9×84×84 stacks,
n=3) and bytes stored per transition. A batch moves about 32 MB (obs and next_obs stacks), so memory
bandwidth bounds sampling.

    python benchmarks/replay_buffer.py --capacity 100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from polytask.data.replay import ReplayBuffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--episode-len", type=int, default=250)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    buf = ReplayBuffer(args.capacity, {"pixels": (9, 84, 84), "state": (39,)}, 4, frame_stack=3, nstep=3)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (64, 9, 84, 84), dtype=np.uint8)
    obs = [{"pixels": frames[i], "state": rng.standard_normal(39).astype(np.float32)} for i in range(64)]
    action = np.zeros(4, np.float32)
    start = time.perf_counter()
    t = 0
    while buf.count < args.capacity:
        buf.add_first(obs[t % 64])
        for k in range(args.episode_len):
            buf.add(action, 0.0, obs[(t + k) % 64], False, k == args.episode_len - 1)
        t += 1
    insert_s = time.perf_counter() - start
    buf.sample(args.batch_size)
    start = time.perf_counter()
    for _ in range(args.batches):
        buf.sample(args.batch_size)
    sample_s = (time.perf_counter() - start) / args.batches
    stored = sum(a.nbytes for a in buf.obs.values()) + sum(
        getattr(buf, k).nbytes for k in ("action", "reward", "terminated", "truncated", "has_action", "ep_start"))
    print(f"capacity {args.capacity}: insert {buf.count / insert_s:,.0f} steps/s; "
          f"sample {1 / sample_s:,.1f} batches/s = {args.batch_size / sample_s:,.0f} transitions/s "
          f"({sample_s * 1e3:.1f} ms per batch of {args.batch_size}, "
          f"9x84x84 stacks, n=3); {stored / args.capacity:,.0f} bytes per transition "
          f"(a stacked uint8 copy would take {9 * 84 * 84:,} for pixels alone)")


if __name__ == "__main__":
    main()
