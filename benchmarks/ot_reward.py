"""Time of ROT's optimal-transport rewards for one episode against N demos (batched Sinkhorn,
ε=0.01, 100 iterations), on raw states and on pixel features from the DrQ-v2 reward encoder: for
an ordinary episode (demo features cached) and for one at a reward-encoder refresh (every
``ot.update_target_every`` agent steps; the demos are encoded again).

    python benchmarks/ot_reward.py --steps 250 --demos 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from polytask.agents.rot import ROTAgent
from polytask.rewards.ot import OTRewarder
from polytask.utils import resolve_device


def _time(rewarder: OTRewarder, episode: np.ndarray, repeats: int, refresh: bool) -> float:
    rewarder(episode, step=0)  # warm-up: first refresh, fixes the scale
    start = time.perf_counter()
    for i in range(1, repeats + 1):
        rewarder(episode, step=i * rewarder.refresh_every if refresh else 0)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pixels", action="store_true", help="also time pixel features (encoder forward)")
    parser.add_argument("--device", default="auto", help="where the pixel encoder runs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    demos = [rng.standard_normal((args.steps + 1, 39)) for _ in range(args.demos)]
    t = _time(OTRewarder(demos), rng.standard_normal((args.steps + 1, 39)), args.repeats, refresh=False)
    print(f"states (39-d): {t * 1e3:8.1f} ms per {args.steps}-step episode against {args.demos} demos")
    if args.pixels:
        agent = ROTAgent({"pixels": (9, 84, 84)}, 4, "pixels", device=resolve_device(args.device))
        frames = [rng.integers(0, 256, (args.steps + 1, 9, 84, 84), dtype=np.uint8) for _ in range(args.demos)]
        rewarder = OTRewarder(frames, agent.reward_features, agent.refresh_reward_encoder)
        for refresh, what in ((False, "demo features cached"), (True, "at a refresh, demos re-encoded")):
            t = _time(rewarder, frames[0], args.repeats, refresh)
            print(f"pixels on {agent.device} ({what}): {t * 1e3:8.1f} ms per episode against {args.demos} demos")


if __name__ == "__main__":
    main()
