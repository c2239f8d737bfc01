"""The report of a skill discovery, written beside the labelled dataset:

- ``segments.csv``: one row per kept segment (episode, start, stop, length, skill);
- ``clusters.csv``: per cluster its segment count, lengths, steps and, with recorded labels, its
  purity and majority label;
- ``clusters.png``: per cluster a row of example segments: the middle frame of each for pixel play
  data, else the path of the first two state dimensions relative to the segment's start (matplotlib);
- ``quality.json``: the options, the stage wall times, how much choice of skill the state leaves
  (``skill_choice``: :func:`polytask.skills.extract.skill_choice`, for state play data) and, with
  recorded labels, the adjusted Rand index and purity of the raw and the smoothed clusters against them.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polytask.data.demos import Episode

log = logging.getLogger("polytask")

EXAMPLES = 6  # example segments per cluster in clusters.png


def _examples(found, k: int, n: int = EXAMPLES, seed: int = 0) -> dict[int, list]:
    rng = np.random.default_rng(seed)
    out = {}
    for c in range(k):
        segs = [s for s in found.segments if s.label == c]
        out[c] = [segs[i] for i in sorted(rng.choice(len(segs), min(n, len(segs)), replace=False))] if segs else []
    return out


def frame_strip(episodes: Sequence[Episode], found, k: int, path: Path) -> None:
    """clusters.png from pixel observations: k rows of the middle frames of example segments (frames
    smaller than 64 pixels enlarged by an integer factor)."""
    import imageio.v3 as iio

    h, w = episodes[0].obs["pixels"].shape[-2:]
    scale = max(1, 64 // min(h, w))
    h, w = h * scale, w * scale
    grid = np.full((k * (h + 2), EXAMPLES * (w + 2), 3), 255, np.uint8)
    for c, segs in _examples(found, k).items():
        for j, s in enumerate(segs):
            frame = episodes[s.episode].obs["pixels"][(s.start + s.stop) // 2][-3:].transpose(1, 2, 0)
            frame = frame.repeat(scale, 0).repeat(scale, 1)
            grid[c * (h + 2):c * (h + 2) + h, j * (w + 2):j * (w + 2) + w] = frame
    iio.imwrite(path, grid)


def path_strip(episodes: Sequence[Episode], found, k: int, path: Path) -> bool:
    """clusters.png from state observations: per cluster the start-relative paths of example segments
    in the first two state dimensions. False (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, k, figsize=(2 * k, 2.2), squeeze=False)
    for c, segs in _examples(found, k).items():
        ax = axes[0, c]
        for s in segs:
            xy = episodes[s.episode].obs["state"][s.start:s.stop, :2]
            ax.plot(*(xy - xy[0]).T, lw=1)
        ax.set_title(f"skill {c}", fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(folder: Path, episodes: Sequence[Episode], found, truth: list[np.ndarray] | None, k: int,
                 options: dict) -> str:
    """Write the files of the module docstring into ``folder``; returns a short text summary."""
    from polytask.skills.extract import quality, skill_choice

    folder = Path(folder)
    with open(folder / "segments.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["episode", "start", "stop", "length", "skill"])
        out.writerows([s.episode, s.start, s.stop, len(s), s.label] for s in found.segments)
    scores = {}
    if truth is not None:
        t = np.concatenate(truth)
        scores = {"raw": quality(np.concatenate(found.clusters), t),
                  "smoothed": quality(np.concatenate(found.smoothed), t)}
    rows = []
    for c in range(k):
        lengths = [len(s) for s in found.segments if s.label == c]
        row = {"skill": c, "segments": len(lengths), "steps": int(sum(lengths)),
               "mean_length": round(float(np.mean(lengths)), 2) if lengths else 0.0,
               "min_length": min(lengths, default=0), "max_length": max(lengths, default=0)}
        if scores:
            per = scores["smoothed"]["clusters"].get(c, {"purity": 0.0, "majority": -1})
            row.update(purity=round(per["purity"], 4), majority_label=per["majority"])
        rows.append(row)
    with open(folder / "clusters.csv", "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    if "pixels" in episodes[0].obs:
        frame_strip(episodes, found, k, folder / "clusters.png")
    elif not path_strip(episodes, found, k, folder / "clusters.png"):
        log.warning("clusters.png not written: state play data is drawn with matplotlib (pip install matplotlib)")
    choice = skill_choice(episodes, found.segments) if "state" in episodes[0].obs else None
    summary = {"options": options, "seconds": {k_: round(v, 3) for k_, v in found.seconds.items()},
               "segments": len(found.segments), "skill_choice": choice, **scores}
    (folder / "quality.json").write_text(json.dumps(summary, indent=1))
    lines = [f"stage seconds: {summary['seconds']}"]
    if scores:
        lines.append(f"against recorded labels: ARI raw {scores['raw']['ari']:.3f}, smoothed "
                     f"{scores['smoothed']['ari']:.3f}; purity smoothed {scores['smoothed']['purity']:.3f}")
    if choice:
        lines.append(f"skill choice left by the state (logistic p(k | s_1), held-out episodes): accuracy "
                     f"{choice['accuracy']:.2f}, entropy {choice['entropy']:.2f} nats (uniform: {choice['log_k']:.2f})")
    lines += [", ".join(f"{k_} {v}" for k_, v in r.items()) for r in rows]
    return "\n".join(lines)
