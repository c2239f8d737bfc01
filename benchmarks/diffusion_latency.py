"""Diffusion Policy acting latency: milliseconds to denoise one action chunk (16 × 4 actions from a
2-step history of 39-d Meta-World states) with the default network of ``cfgs/agent/diffusion.yaml``,
for batch 1 and 10 (the evaluator's envs), DDIM with 1–20 steps and DDPM with all 100.

    OMP_NUM_THREADS=1 python benchmarks/diffusion_latency.py --repeats 5
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import seconds_per_call  # benchmarks/timing.py

from polytask.agents.diffusion import DiffusionAgent
from polytask.utils import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per setting (after one warm-up)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    agent = DiffusionAgent({"state": (39,)}, 4, "features", device=device)  # agent=diffusion's options
    agent.train(False)
    params = sum(p.numel() for p in agent.net.parameters())
    print(f"UNet down_dims {list(agent.cfg.down_dims)} ({params / 1e6:.1f}M parameters) on {device}, "
          f"{torch.get_num_threads()} threads; ms per chunk of {agent.pred_horizon} actions (executed: "
          f"{agent.action_horizon})")
    settings = [("ddim", n) for n in (1, 2, 5, 10, 20)] + [("ddpm", 100)]
    print(f"{'sampler':8s} {'steps':>5s} {'batch 1':>10s} {'batch 10':>10s}")
    for sampler, steps in settings:
        row = []
        for batch in (1, 10):
            hist = np.random.default_rng(0).standard_normal((batch, agent.obs_horizon, 39)).astype(np.float32)
            row.append(seconds_per_call(lambda hist=hist, steps=steps, sampler=sampler:
                                        agent.sample_chunks(hist, steps, sampler), args.repeats,
                                        device, warmup=1) * 1e3)
        print(f"{sampler:8s} {steps:5d} {row[0]:10.1f} {row[1]:10.1f}")


if __name__ == "__main__":
    main()
