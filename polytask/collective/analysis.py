"""How well the trajectory transformer's CLS embeddings identify the task: a Dirichlet-process
Gaussian mixture (scikit-learn's ``BayesianGaussianMixture``, the maintained stand-in for the bnpy
DP mixture of the reference) clustered against the task ids (adjusted Rand index), nearest-centroid
accuracy on held-out windows, and a 2-D PCA plot coloured by task."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polytask.errors import ConfigError


def _sklearn():
    """Import the scikit-learn parts used here, or raise a ConfigError saying how to install it."""
    try:
        import sklearn.decomposition
        import sklearn.metrics
        import sklearn.mixture
        import sklearn.neighbors
    except ImportError as e:
        raise ConfigError("the embedding analysis needs scikit-learn: pip install scikit-learn "
                          "(or pip install \"polytask[decorator]\")") from e
    return sklearn


def _check(emb: np.ndarray, task_ids: np.ndarray, names: Sequence[str], what: str) -> tuple[np.ndarray, np.ndarray]:
    emb, task_ids = np.asarray(emb, np.float64), np.asarray(task_ids, np.int64)
    if emb.ndim != 2 or task_ids.shape != (len(emb),) or len(emb) == 0:
        raise ConfigError(f"{what}: expected embeddings (N, E) and task ids (N,) with N >= 1, got {emb.shape} and "
                          f"{task_ids.shape}")
    if task_ids.min() < 0 or task_ids.max() >= len(names):
        raise ConfigError(f"{what}: task ids must index names (0..{len(names) - 1}), got {task_ids.min()}.."
                          f"{task_ids.max()}")
    return emb, task_ids


def embedding_report(emb: np.ndarray, task_ids: np.ndarray, names: Sequence[str],
                     held_out: tuple[np.ndarray, np.ndarray] | None = None, n_components: int | None = None,
                     seed: int = 0) -> dict:
    """Scores of the embeddings against the task ids.

    Args:
        emb: float (N, E) embeddings of windows. task_ids: int (N,), indices into ``names``.
        names: task names.
        held_out: optional (embeddings (M, E), task ids (M,)) of windows not used to fit anything:
            each is assigned the task of the nearest per-task centroid of ``emb`` (Euclidean), so
            a held-out window of a task absent from ``task_ids`` always counts as wrong.
        n_components: the mixture's upper bound on clusters (default max(10, 2 × tasks), at most N).
        seed: the mixture's random state.

    Returns:
        dict: ``ari`` (adjusted Rand index of the DP mixture's clusters against the task ids),
        ``n_clusters`` (clusters the mixture used), ``n_tasks``, and with ``held_out``:
        ``nearest_centroid_accuracy`` and ``per_task_accuracy`` {name: accuracy} for the held-out
        tasks.
    Raises:
        ConfigError: for mismatched shapes or ids outside ``names``, or without scikit-learn.
    """
    sk = _sklearn()
    emb, task_ids = _check(emb, task_ids, names, "embedding_report")
    tasks = np.unique(task_ids)
    k = min(len(emb), n_components or max(10, 2 * len(tasks)))
    mixture = sk.mixture.BayesianGaussianMixture(
        n_components=k, weight_concentration_prior_type="dirichlet_process", weight_concentration_prior=5,
        covariance_type="diag", max_iter=500, random_state=seed).fit(emb)
    labels = mixture.predict(emb)
    report = {"ari": float(sk.metrics.adjusted_rand_score(task_ids, labels)),
              "n_clusters": int(len(np.unique(labels))), "n_tasks": int(len(tasks))}
    if held_out is not None:
        h_emb, h_ids = _check(*held_out, names, "embedding_report(held_out)")
        if h_emb.shape[1] != emb.shape[1]:
            raise ConfigError(f"embedding_report: held-out embeddings have {h_emb.shape[1]} dims, the others "
                              f"{emb.shape[1]}")
        predicted = (sk.neighbors.NearestCentroid().fit(emb, task_ids).predict(h_emb)
                     if len(tasks) > 1 else np.full(len(h_ids), tasks[0]))
        correct = predicted == h_ids
        report["nearest_centroid_accuracy"] = float(correct.mean())
        report["per_task_accuracy"] = {names[t]: float(correct[h_ids == t].mean()) for t in np.unique(h_ids)}
    return report


def plot_embeddings(emb: np.ndarray, task_ids: np.ndarray, names: Sequence[str], path: str | Path) -> Path:
    """Write a PNG of the embeddings projected on their first two principal components (PCA),
    one colour and marker pair per task (10 colours, the marker changes every 10 tasks), legend with
    the task names.

    Raises:
        ConfigError: for mismatched shapes, ids outside ``names``, fewer than 2 embedding dims or
            windows, or without scikit-learn/matplotlib.
    """
    sk = _sklearn()
    emb, task_ids = _check(emb, task_ids, names, "plot_embeddings")
    if min(emb.shape) < 2:
        raise ConfigError(f"plot_embeddings needs at least 2 windows and 2 embedding dims, got {emb.shape}")
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ConfigError("plot_embeddings needs matplotlib: pip install matplotlib") from e
    xy = sk.decomposition.PCA(n_components=2).fit_transform(emb)
    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["tab10"]
    markers = "o^sDv<>pPX*h"
    for i, t in enumerate(np.unique(task_ids)):
        sel = task_ids == t
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, alpha=0.6, color=cmap(i % 10), marker=markers[(i // 10) % len(markers)],
                   label=names[t])
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("trajectory transformer: CLS embeddings by task")
    ax.legend(fontsize=6, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), ncol=1 + len(names) // 25)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
