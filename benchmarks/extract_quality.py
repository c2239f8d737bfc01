"""Quality of EXTRACT's skill discovery against the play data's recorded per-step labels, for several
embeddings: the adjusted Rand index and purity of the raw and the median-filtered clusters, per-cluster
purity, the kept segments, how much choice of skill the state leaves (held-out accuracy and mean
entropy of a logistic p(k | s_1), ``polytask.skills.extract.skill_choice``), and the wall time of each
stage. Reads an existing play dataset (make it with ``collect_play.py``); writes nothing.

    python benchmarks/extract_quality.py data/datasets/polytask/maze/play-features-v0 --label goal \\
        --transform direction --embedding state_delta state_delta:0,1 state_delta:2,3 random
    python benchmarks/extract_quality.py data/datasets/polytask/kitchen/play-features-v0 --label subtask

An embedding is ``name`` or ``state_delta:<dims>`` (comma-separated state dimensions); ``random`` is
the chance baseline (uniform random cluster labels, filtered and segmented the same way).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from polytask.data.demos import load_episodes
from polytask.skills.extract import (
    Discovery,
    discover_skills,
    quality,
    runs,
    segment_labels,
    skill_choice,
    smooth_labels,
    true_labels,
)


def random_discovery(episodes, k: int, seed: int = 0) -> Discovery:
    """Uniform random cluster labels, filtered and segmented as :func:`discover_skills` does."""
    rng = np.random.default_rng(seed)
    clusters = [rng.integers(0, k, len(ep)) for ep in episodes]
    smoothed = [smooth_labels(c) for c in clusters]
    labelled = [segment_labels(s) for s in smoothed]
    segments = [s for i, c in enumerate(smoothed) for s in runs(c, i) if 5 <= len(s) <= 30]
    return Discovery(clusters, smoothed, [a for a, _ in labelled], [b for _, b in labelled], segments, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--label", required=True, help="the infos key of the recorded labels")
    parser.add_argument("--transform", default="none", help="none | direction")
    parser.add_argument("--embedding", nargs="+", default=["state_delta"])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    episodes = load_episodes(args.dataset)
    print(f"{len(episodes)} episodes, {sum(map(len, episodes))} steps, loaded in {time.perf_counter() - start:.1f}s")
    truth = np.concatenate(true_labels(episodes, args.label, args.transform))
    print("| embedding | ARI raw | ARI filtered | purity filtered | per-cluster purity | segments (steps kept) | "
          "p(k \\| s_1) accuracy / entropy (nats) | seconds (embed / cluster / segment) |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec in args.embedding:
        if spec == "random":
            found = random_discovery(episodes, args.k, args.seed)
        else:
            name, _, dims = spec.partition(":")
            options = {"name": name, "dims": [int(d) for d in dims.split(",")] if dims else None}
            found = discover_skills(episodes, k=args.k, seed=args.seed, embedding=options)
        raw, smooth = quality(np.concatenate(found.clusters), truth), quality(np.concatenate(found.smoothed), truth)
        per = " ".join(f"{c['purity']:.2f}" for c in smooth["clusters"].values())
        secs = " / ".join(f"{found.seconds.get(k, 0.0):.2f}" for k in ("embed", "cluster", "segment"))
        kept = sum(len(s) for s in found.segments)
        choice = skill_choice(episodes, found.segments)
        choice = f"{choice['accuracy']:.2f} / {choice['entropy']:.2f}" if choice else "-"
        print(f"| {spec} | {raw['ari']:.3f} | {smooth['ari']:.3f} | {smooth['purity']:.3f} | {per} | "
              f"{len(found.segments)} ({kept}) | {choice} | {secs} |")


if __name__ == "__main__":
    main()
