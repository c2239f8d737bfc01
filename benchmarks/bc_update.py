"""BC update speed (batch 256, default network): seconds per 1k updates for features and pixels.

    python benchmarks/bc_update.py --updates 20
"""

from __future__ import annotations

import argparse

import torch
from timing import seconds_per_call  # benchmarks/timing.py

from polytask.agents.bc import BCAgent
from polytask.utils import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    shapes = {"state": (39,), "pixels": (9, 84, 84)}
    for obs_type in ("features", "pixels"):
        agent = BCAgent(shapes, 4, obs_type, device=device)
        key = agent.obs_key
        batch = {"action": torch.rand(args.batch_size, 4) * 2 - 1}
        batch[key] = (torch.randint(0, 256, (args.batch_size, *shapes[key]), dtype=torch.uint8) if key == "pixels"
                      else torch.randn(args.batch_size, *shapes[key]))
        per = seconds_per_call(lambda agent=agent, batch=batch: agent.update(batch), args.updates, device)
        print(f"{obs_type:8s} on {device}: {per * 1e3:8.1f} ms/update, {per * 1000 / 60:6.1f} min per 1k updates "
              f"(batch {args.batch_size}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
