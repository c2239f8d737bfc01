"""DrQ-v2 update speed: milliseconds per update (one critic and one actor step, batch 256) for state
features at several MLP widths, and for pixels (9×84×84 frame stacks, random-shift augmentation)
with and without ROT's BC term (a second, demo batch through the actor).

    python benchmarks/drqv2_update.py --widths 256 1024 --updates 20
    python benchmarks/drqv2_update.py --device cuda
    python benchmarks/drqv2_update.py --device cuda --compile   # also with agent.compile=true

Features use cheetah_run's sizes (17-d state, 6-d action) and ``recipe=drqv2_state``'s networks (2
hidden layers, LayerNorm in the critic); pixels use Meta-World's (4-d action) and the ``agent=drqv2``
config's networks (1024 wide, feature_dim 512, as ROT). One agent step costs
``updates_per_step / update_every_steps`` updates.
"""

from __future__ import annotations

import argparse

import torch
from timing import seconds_per_call  # benchmarks/timing.py

from polytask.agents.bc import BCAgent
from polytask.agents.drqv2 import DrQV2Agent
from polytask.agents.rot import ROTAgent
from polytask.utils import resolve_device


def _batch(shape: tuple[int, ...], action_dim: int, batch_size: int, pixels: bool) -> dict:
    def obs():
        if pixels:
            return {"pixels": torch.randint(0, 256, (batch_size, *shape), dtype=torch.uint8)}
        return {"state": torch.randn(batch_size, *shape)}
    return {"obs": obs(), "next_obs": obs(), "action": torch.rand(batch_size, action_dim) * 2 - 1,
            "reward": torch.rand(batch_size), "discount": torch.full((batch_size,), 0.99)}


class FixedDemos:
    """Demonstrations that are always the same batch (what ROT's BC term samples from)."""

    def __init__(self, batch: dict[str, torch.Tensor]):
        self.batch = batch

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        return {k: v[:n] for k, v in self.batch.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024], help="feature MLP widths")
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also time each update with agent.compile=true "
                        "(torch.compile of the networks; compiled at the warm-up updates)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    where = f"on {device}" + ("" if device.type == "cuda" else f", {torch.get_num_threads()} threads")
    for width in args.widths:
        for compiled in (False, True) if args.compile else (False,):
            agent = DrQV2Agent({"state": (17,)}, 6, "features", device=device, lr=3e-4, hidden_dim=width,
                               hidden_depth=2, critic_layer_norm=True, compile=compiled)
            batch = _batch((17,), 6, args.batch_size, pixels=False)
            t = seconds_per_call(lambda agent=agent, batch=batch: agent.update(batch, step=10_000), args.updates,
                                 device)
            label = f"features, {width} wide" + (", compiled" if compiled else "")
            print(f"{label:31s} {where}: {t * 1e3:8.1f} ms/update (batch {args.batch_size})")
    shapes = {"pixels": (9, 84, 84)}
    batch = _batch(shapes["pixels"], 4, args.batch_size, pixels=True)
    demos = FixedDemos({"pixels": batch["obs"]["pixels"], "action": batch["action"]})
    bc = BCAgent(shapes, 4, "pixels", device=device)
    for rot in (False, True):
        agent = ROTAgent(shapes, 4, "pixels", device=device, bc_regularize=rot, load_bc=rot,
                         bc_state=bc.state_dict() if rot else None, demos=demos if rot else None)
        t = seconds_per_call(lambda agent=agent: agent.update(batch, step=10_000), args.updates, device)
        label = "pixels, ROT (BC term, Q-filter)" if rot else "pixels"
        print(f"{label:31s} {where}: {t * 1e3:8.1f} ms/update (batch {args.batch_size})")


if __name__ == "__main__":
    main()
