"""EXTRACT's skill discovery (Zhang et al. 2024, "EXTRACT: Efficient Policy Learning by Extracting
Transferable Robot Skills from Offline Data", §3.1) on a suite's play data:

1. an embedding of every frame minus the episode's first frame's (:mod:`polytask.skills.embeddings`);
2. K-means over all steps (scikit-learn's ``MiniBatchKMeans``, K = 8), after standardising each
   embedding dimension;
3. a median filter (window 7) over each episode's cluster labels (as EXTRACT's ``medfilt``, over the
   label numbers), removing short flickers;
4. contiguous runs of one label become skills, kept when 5–30 steps long, each step labelled with
   its skill id and its progress t / (L − 1) from 0 to 1 through the run.

:func:`discover` runs them on a run config and writes the labelled play data (a Minari dataset with
``infos["skill"]`` int64, −1 outside kept skills, and ``infos["progress"]`` float32, NaN there) plus
a report (:mod:`polytask.skills.report`). Suite-agnostic: the play data's own per-step labels
(``extract.label_key``: the kitchen subtask, the maze goal) only score the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polytask.data.demos import Episode, dataset_id, dataset_path
from polytask.errors import ConfigError

log = logging.getLogger("polytask")


def _sklearn():
    """Import scikit-learn (and SciPy, which it brings), or raise a ConfigError saying how to install it."""
    try:
        import scipy.ndimage
        import sklearn.cluster
        import sklearn.linear_model
        import sklearn.metrics
    except ImportError as e:
        raise ConfigError("EXTRACT's skill discovery needs scikit-learn: pip install scikit-learn "
                          "(or pip install \"polytask[decorator]\")") from e
    return sklearn, scipy


def extract_dataset_id(suite: str, obs_type: str) -> str:
    """Minari id of the labelled play data, e.g. ``polytask/maze/extract-features-v0``."""
    return dataset_id(suite, "extract", obs_type)


def smooth_labels(labels: np.ndarray, window: int = 7) -> np.ndarray:
    """Median filter of width ``window`` over one episode's int labels (T,), edges repeated: int64 (T,).

    Raises:
        ConfigError: if ``window`` is not a positive odd number.
    """
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"extract.median_window must be a positive odd number, got {window}")
    _, scipy = _sklearn()
    return scipy.ndimage.median_filter(np.asarray(labels, np.int64), size=window, mode="nearest")


@dataclass(frozen=True)
class Segment:
    """A contiguous run of one label in an episode: steps ``start`` to ``stop`` − 1."""

    episode: int
    start: int
    stop: int
    label: int

    def __len__(self) -> int:
        return self.stop - self.start


def runs(labels: np.ndarray, episode: int = 0) -> list[Segment]:
    """Every maximal run of equal labels in int (T,) ``labels``, in order."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts, stops = np.r_[0, cuts], np.r_[cuts, len(labels)]
    return [Segment(episode, int(a), int(b), int(labels[a])) for a, b in zip(starts, stops)]


def segment_labels(labels: np.ndarray, min_len: int = 5, max_len: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Skill and progress labels of one episode from its (smoothed) cluster labels int (T,): runs of
    ``min_len``–``max_len`` steps keep their label and get progress t / (L − 1) (0 at the first step, 1
    at the last; a 1-step run: 1); other steps get skill −1 and progress NaN.

    Returns:
        skill int64 (T,), progress float32 (T,).
    """
    if not 1 <= min_len <= max_len:
        raise ConfigError(f"need 1 <= extract.min_len <= extract.max_len, got {min_len} and {max_len}")
    skill = np.full(len(labels), -1, np.int64)
    progress = np.full(len(labels), np.nan, np.float32)
    for seg in runs(labels):
        if min_len <= len(seg) <= max_len:
            skill[seg.start:seg.stop] = seg.label
            progress[seg.start:seg.stop] = np.arange(len(seg)) / max(len(seg) - 1, 1)
    return skill, progress


def cluster(features: Sequence[np.ndarray], k: int = 8, seed: int = 0, standardize: bool = True,
            batch_size: int = 4096) -> list[np.ndarray]:
    """K-means (``MiniBatchKMeans``) over every step of every episode, per episode int64 (T,) labels in [0, k).

    Args:
        features: per episode float32 (T, E).
        standardize: scale each dimension to zero mean and unit variance first.

    Raises:
        ConfigError: if there are fewer steps than clusters.
    """
    sklearn, _ = _sklearn()
    x = np.concatenate(features).astype(np.float64)
    if len(x) < k:
        raise ConfigError(f"{len(x)} play steps cannot make extract.k={k} clusters; make more play data")
    if standardize:
        x = (x - x.mean(0)) / np.where(x.std(0) > 1e-8, x.std(0), 1.0)
    km = sklearn.cluster.MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size, n_init=3).fit(x)
    return np.split(km.labels_.astype(np.int64), np.cumsum([len(f) for f in features])[:-1])


def categorical(values: np.ndarray) -> np.ndarray:
    """Per-step labels (N,) or vectors (N, ...) as int64 category ids (N,) (equal rows, same id)."""
    values = np.asarray(values)
    return np.unique(values.reshape(len(values), -1), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def quality(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """How well cluster labels int (N,) match recorded labels int (N,): the adjusted Rand index
    (``ari``), ``purity`` (the share of steps whose cluster's most common recorded label is theirs) and
    per cluster its size and purity (``clusters``: {label: {"steps", "purity", "majority"}})."""
    sklearn, _ = _sklearn()
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    per, hits = {}, 0
    for c in np.unique(predicted):
        values, counts = np.unique(truth[predicted == c], return_counts=True)
        hits += counts.max()
        per[int(c)] = {"steps": int(counts.sum()), "purity": float(counts.max() / counts.sum()),
                       "majority": int(values[counts.argmax()])}
    return {"ari": float(sklearn.metrics.adjusted_rand_score(truth, predicted)),
            "purity": float(hits / max(len(truth), 1)), "clusters": per}


def skill_choice(episodes: Sequence[Episode], segments: Sequence[Segment], heldout_fraction: float = 0.1,
                 seed: int = 0) -> dict | None:
    """How much choice of skill a state leaves: a multinomial logistic regression p(k | s₁) from each
    kept segment's first state ``obs["state"]`` (standardised) to its skill, fitted on the segments of
    the first 1 − ``heldout_fraction`` of ``episodes`` and scored on the rest's.

    Returns ``{"accuracy", "entropy", "log_k", "segments"}``: held-out accuracy, the mean entropy of
    the predicted p(k | s₁) in nats and, for reference, the entropy of a uniform choice (log of the
    number of skills seen). Accuracy near 1 with entropy near 0 says the skill id is a function of the
    state (an embedding of where the robot is rather than of what it does): a policy whose skill
    choice starts as this prior (EXTRACT's π_d) then has nothing to choose between. None when either
    split has no segment or the training split one skill only.
    """
    sklearn, _ = _sklearn()
    cut = int(round(len(episodes) * (1.0 - heldout_fraction)))
    x = np.array([episodes[s.episode].obs["state"][s.start] for s in segments], np.float64)
    y = np.array([s.label for s in segments])
    train = np.array([s.episode < cut for s in segments], bool)
    if len(segments) == 0 or train.all() or not train.any() or len(np.unique(y[train])) < 2:
        return None
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / np.where(std > 1e-8, std, 1.0)
    model = sklearn.linear_model.LogisticRegression(max_iter=2000, random_state=seed).fit(x[train], y[train])
    p = model.predict_proba(x[~train])
    return {"accuracy": float(model.score(x[~train], y[~train])),
            "entropy": float(-(p * np.log(np.clip(p, 1e-12, None))).sum(1).mean()),
            "log_k": float(np.log(len(np.unique(y)))), "segments": len(segments)}


def true_labels(episodes: Sequence[Episode], key: str, transform: str = "none") -> list[np.ndarray] | None:
    """Each episode's recorded per-step labels ``infos[key]`` as category ids, or None when an episode
    lacks them. ``transform="direction"``: a vector label (a goal position) becomes the compass octant
    (0–7) of (label − the episode's first position), the position being the first dims of ``state``.

    Raises:
        ConfigError: for an unknown transform.
    """
    if not key or any(key not in ep.infos for ep in episodes):
        return None
    if transform == "none":
        ids = categorical(np.concatenate([ep.infos[key] for ep in episodes]))
        return np.split(ids, np.cumsum([len(ep) for ep in episodes])[:-1])
    if transform == "direction":
        out = []
        for ep in episodes:
            goal = np.asarray(ep.infos[key], np.float64).reshape(len(ep), -1)
            delta = goal - ep.obs["state"][:1, :goal.shape[1]]
            angle = np.arctan2(delta[:, 1], delta[:, 0])
            out.append(np.round(angle / (np.pi / 4)).astype(np.int64) % 8)
        return out
    raise ConfigError(f"unknown extract.label_transform={transform!r}; choose none or direction")


@dataclass
class Discovery:
    """The result of :func:`discover_skills`: per episode the raw cluster labels, the smoothed ones,
    the skill labels (−1 outside kept runs) and progress; the kept segments; stage wall times (s)."""

    clusters: list[np.ndarray]
    smoothed: list[np.ndarray]
    skill: list[np.ndarray]
    progress: list[np.ndarray]
    segments: list[Segment]
    seconds: dict[str, float]


def discover_skills(episodes: Sequence[Episode], k: int = 8, median_window: int = 7, min_len: int = 5,
                    max_len: int = 30, standardize: bool = True, seed: int = 0,
                    embedding: dict | None = None) -> Discovery:
    """Steps 1–4 of the module docstring on ``episodes`` (``embedding``: the options of
    :func:`polytask.skills.embeddings.embed_episodes`)."""
    from polytask.skills.embeddings import embed_episodes

    seconds = {}
    t = time.perf_counter()
    features = embed_episodes(episodes, seed=seed, **(embedding or {}))
    seconds["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    clusters = cluster(features, k, seed, standardize)
    seconds["cluster"] = time.perf_counter() - t
    t = time.perf_counter()
    smoothed = [smooth_labels(c, median_window) for c in clusters]
    labelled = [segment_labels(s, min_len, max_len) for s in smoothed]
    segments = [seg for i, s in enumerate(smoothed) for seg in runs(s, i) if min_len <= len(seg) <= max_len]
    seconds["segment"] = time.perf_counter() - t
    return Discovery(clusters, smoothed, [s for s, _ in labelled], [p for _, p in labelled], segments, seconds)


def labelled_episodes(episodes: Sequence[Episode], found: Discovery) -> list[Episode]:
    """Copies of ``episodes`` with ``infos["skill"]`` int64 (T,) and ``infos["progress"]`` float32 (T,) added."""
    return [Episode(**{**ep.__dict__, "infos": {**ep.infos, "skill": s, "progress": p}})
            for ep, s, p in zip(episodes, found.skill, found.progress)]


def label_like(play: Sequence[Episode], episodes: Sequence[Episode], median_window: int = 7, min_len: int = 5,
               max_len: int = 30, standardize: bool = True, seed: int = 0,
               embedding: dict | None = None) -> list[Episode]:
    """Copies of ``episodes`` (a target task's demos) labelled with the skills of labelled ``play`` data
    (``infos["skill"]``, as :func:`labelled_episodes` writes it): each step's embedding (step 1, the
    play data's and the episodes' embedded together) gets the skill whose mean embedding over the play
    steps labelled with it is nearest, after the play steps' standardisation; then steps 3–4 (median
    filter, runs of ``min_len``–``max_len`` steps) as :func:`discover_skills` does. Skills that label no
    play step are never given.

    Returns:
        the episodes with ``infos["skill"]`` int64 (T,) (−1 outside kept runs) and ``infos["progress"]``
        float32 (T,) added.

    Raises:
        ConfigError: if ``play`` carries no skill labels.
    """
    from polytask.skills.embeddings import embed_episodes

    if not play or any("skill" not in ep.infos for ep in play):
        raise ConfigError("labelling demos with skills needs the skill-labelled play data (extract_skills.py)")
    features = embed_episodes(list(play) + list(episodes), seed=seed, **(embedding or {}))
    x = np.concatenate(features[:len(play)]).astype(np.float64)
    labels = np.concatenate([np.asarray(ep.infos["skill"][:len(ep)]) for ep in play])
    mean, std = (x.mean(0), np.where(x.std(0) > 1e-8, x.std(0), 1.0)) if standardize else (0.0, 1.0)
    kept = np.unique(labels[labels >= 0])
    if not len(kept):
        raise ConfigError("the skill-labelled play data holds no skill segment to label demos with")
    centroids = np.stack([((x[labels == k] - mean) / std).mean(0) for k in kept])
    out = []
    for ep, f in zip(episodes, features[len(play):]):
        z = (f.astype(np.float64) - mean) / std
        nearest = kept[((z[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
        skill, progress = segment_labels(smooth_labels(nearest, median_window), min_len, max_len)
        out.append(Episode(**{**ep.__dict__, "infos": {**ep.infos, "skill": skill, "progress": progress}}))
    return out


def extract_path(cfg) -> Path:
    """Where :func:`discover` writes the run's labelled play data."""
    return dataset_path(cfg.data_dir, extract_dataset_id(cfg.suite.name, cfg.obs_type))
