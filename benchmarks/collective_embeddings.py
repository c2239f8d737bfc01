"""How well the trajectory transformer's CLS embeddings identify Meta-World tasks, on episodes of
Meta-World's scripted policies (a uniform random action with probability ``--p-random``): the
adjusted Rand index of the Dirichlet-process mixture's clusters against the task ids, the clusters it
used, and nearest-centroid accuracy on windows of held-out episodes, before and after training; plus
the wall time of recording and of a training step. States are compressed to 21-d (the current 18
values and the 3-d goal, as in the reference setup). Writes only the optional plot.

    python benchmarks/collective_embeddings.py --tasks mt10 --steps 2000 --plot embeddings.png
    python benchmarks/collective_embeddings.py --tasks reach push --episodes 4 --steps 200   # quick
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from polytask.collective.analysis import embedding_report, plot_embeddings
from polytask.collective.training import embed_windows, train_transformer
from polytask.collective.windows import sample_windows
from polytask.experts.metaworld import ScriptedExpert
from polytask.nets.trajectory_transformer import TrajectoryTransformer
from polytask.suites.metaworld import MT10, MetaWorldEnv


def compress(state: np.ndarray) -> np.ndarray:
    """39-d Meta-World state → 21-d: the current 18 values (hand, gripper, objects) and the goal."""
    return np.concatenate([state[:18], state[36:39]]).astype(np.float32)


def record(task: str, task_id: int, episodes: int, length: int, p_random: float, seed: int) -> list:
    """``episodes`` episodes of ``length`` steps of the (probabilistic) scripted policy."""
    env, expert = MetaWorldEnv(task, episode_len=length), ScriptedExpert(task)
    rng = np.random.default_rng(seed)
    out = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + e)
        states, actions, rewards = [obs["state"]], [], []
        for _ in range(length):
            a = rng.uniform(-1, 1, 4).astype(np.float32) if rng.random() < p_random else expert.act(obs)
            obs, r, _, _, _ = env.step(a)
            states.append(obs["state"])
            actions.append(a)
            rewards.append(r)
        out.append((task_id, np.stack([compress(s) for s in states]), np.stack(actions), np.asarray(rewards)))
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["mt10"], help="Meta-World task names, or mt10")
    parser.add_argument("--episodes", type=int, default=6, help="training episodes per task")
    parser.add_argument("--held-out", type=int, default=2, help="held-out episodes per task")
    parser.add_argument("--episode-len", type=int, default=150)
    parser.add_argument("--p-random", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--windows", type=int, default=100, help="windows per task scored")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="PNG path of the 2-D embedding plot")
    args = parser.parse_args()
    tasks = MT10 if args.tasks == ["mt10"] else args.tasks
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    start = time.perf_counter()
    train, held = [], []
    for i, task in enumerate(tasks):
        eps = record(task, i, args.episodes + args.held_out, args.episode_len, args.p_random, args.seed + i)
        train += eps[:args.episodes]
        held += eps[args.episodes:]
    steps = len(tasks) * (args.episodes + args.held_out) * args.episode_len
    print(f"recorded {steps} steps of {len(tasks)} tasks in {time.perf_counter() - start:.1f} s")

    model = TrajectoryTransformer(train[0][1].shape[1], 4).to(args.device)
    n = args.windows * len(tasks)
    w, h = sample_windows(train, model.window, n, rng), sample_windows(held, model.window, n, rng)
    model.fit_normalization(w["obs"], w["rewards"])

    def score(label: str) -> None:
        e, eh = embed_windows(model, w), embed_windows(model, h)
        r = embedding_report(e, w["task_id"], tasks, held_out=(eh, h["task_id"]), seed=args.seed)
        print(f"{label}: ARI {r['ari']:.3f}, {r['n_clusters']} clusters for {r['n_tasks']} tasks, held-out "
              f"nearest-centroid accuracy {r['nearest_centroid_accuracy']:.3f}")
        print("  per task: " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_task_accuracy"].items()))

    score("untrained")
    start = time.perf_counter()
    last = train_transformer(lambda k: sample_windows(train, model.window, k, rng), model, args.steps,
                             args.batch_size, log_fn=lambda s, m: print(f"  step {s + 1}: " + ", ".join(
                                 f"{k} {v:.3f}" for k, v in m.items())), log_every=max(args.steps // 5, 1))
    seconds = time.perf_counter() - start
    print(f"trained {args.steps} steps (batch {args.batch_size}, {args.device}) in {seconds:.1f} s "
          f"({1000 * seconds / max(args.steps, 1):.0f} ms/step); last loss {last.get('loss', float('nan')):.3f}")
    score("trained")
    if args.plot:
        print("plot:", plot_embeddings(embed_windows(model, w), w["task_id"], tasks, args.plot))


if __name__ == "__main__":
    main()
