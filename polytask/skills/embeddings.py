"""Per-frame embeddings that EXTRACT clusters into skills (Zhang et al. 2024, §3.1: a pretrained
vision-language model's image embeddings). Each embedding maps one episode's observations to float32
(T+1, E); :func:`embed_episodes` subtracts each episode's first-frame embedding.

- ``state_delta`` (default, no download): the state features themselves, optionally a subset of
  their dimensions (``dims``: e.g. the object joints of the kitchen state).
- ``pixels_pca``: an image encoder trained on the play data itself: PCA of the downsampled frames
  (``pixels`` observations, ``obs_type=pixels``), fitted on the play data.
- ``clip`` (open_clip image tower) and ``r3m`` (R3M's ResNet): pretrained encoders whose weights
  are read from a file the user names (``weights=``); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from polytask.data.demos import Episode
from polytask.errors import ConfigError

EMBEDDINGS = ("state_delta", "pixels_pca", "clip", "r3m")


def _obs(episodes: Sequence[Episode], key: str) -> list[np.ndarray]:
    missing = [i for i, ep in enumerate(episodes) if key not in ep.obs]
    if missing:
        raise ConfigError(f"the embedding needs observation {key!r}, which episode {missing[0]} lacks (it has "
                          f"{sorted(episodes[missing[0]].obs)}); make play data with obs_type=pixels for image "
                          "embeddings, or use extract.embedding.name=state_delta")
    return [ep.obs[key] for ep in episodes]


def state_features(episodes: Sequence[Episode], dims: Sequence[int] | None = None) -> list[np.ndarray]:
    """The ``state`` observations per episode, float32 (T+1, E) (E = len(dims), or all of D)."""
    states = [np.asarray(s, np.float32) for s in _obs(episodes, "state")]
    if dims is not None:
        dims = list(dims)
        bad = [d for d in dims if not -states[0].shape[1] <= d < states[0].shape[1]]
        if bad:
            raise ConfigError(f"extract.embedding.dims {bad} are out of range for {states[0].shape[1]}-d states")
        states = [s[:, dims] for s in states]
    return states


def _frames(pixels: np.ndarray, size: int) -> np.ndarray:
    """The newest frame of uint8 (T, C, H, W) pixels (3 channels), area-downsampled to ``size``:
    float32 (T, 3, size, size) in [0, 1]."""
    x = torch.as_tensor(np.asarray(pixels[:, -3:]), dtype=torch.float32) / 255.0
    return torch.nn.functional.adaptive_avg_pool2d(x, size).numpy()


def pixels_pca(episodes: Sequence[Episode], components: int = 32, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """PCA (``components``) of the frames downsampled to ``size``×``size``, fitted on all of them."""
    try:
        from sklearn.decomposition import PCA
    except ImportError as e:
        raise ConfigError("extract.embedding.name=pixels_pca needs scikit-learn: pip install scikit-learn") from e
    frames = [_frames(p, size).reshape(len(p), -1) for p in _obs(episodes, "pixels")]
    flat = np.concatenate(frames)
    pca = PCA(n_components=min(components, *flat.shape), random_state=seed).fit(flat)
    return [pca.transform(f).astype(np.float32) for f in frames]


def _weights(path: str | None, name: str) -> dict[str, torch.Tensor]:
    """Tensors of a weights file (safetensors, or a torch file read with ``weights_only=True``: no code runs)."""
    if not path:
        raise ConfigError(f"extract.embedding.name={name} needs its weights file: pass "
                          "extract.embedding.weights=<file>")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"extract.embedding.weights: no {name} weights file at {file}; download it first and point "
                          "extract.embedding.weights at it (nothing is downloaded for you)")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    state = torch.load(file, map_location="cpu", weights_only=True)
    for key in ("state_dict", "r3m"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


@torch.no_grad()
def _encode(net: torch.nn.Module, frames: list[np.ndarray], batch: int = 256) -> list[np.ndarray]:
    net.eval()
    return [np.concatenate([net(torch.from_numpy(f[i:i + batch])).float().numpy() for i in range(0, len(f), batch)])
            for f in frames]


def clip(episodes: Sequence[Episode], weights: str | None, model: str = "ViT-B-32") -> list[np.ndarray]:
    """open_clip's image embedding (model ``model``) with the weights in file ``weights``."""
    state = _weights(weights, "clip")
    try:
        import open_clip
    except ImportError as e:
        raise ConfigError("extract.embedding.name=clip needs open_clip: pip install open_clip_torch") from e
    net = open_clip.create_model(model, pretrained=None)
    net.load_state_dict(state)
    mean, std = (np.asarray(v, np.float32).reshape(1, 3, 1, 1)
                 for v in (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD))
    size = net.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    frames = [((_frames(p, size) - mean) / std).astype(np.float32) for p in _obs(episodes, "pixels")]
    return _encode(net.visual, frames)


def r3m(episodes: Sequence[Episode], weights: str | None, depth: int = 50) -> list[np.ndarray]:
    """R3M's image embedding (Nair et al. 2022): a torchvision ResNet-``depth`` with its classifier
    removed, R3M's weights from file ``weights`` (the ``module.convnet.`` keys of R3M's ``model.pt``),
    on 224×224 frames scaled to [0, 255] as R3M expects."""
    state = _weights(weights, "r3m")
    try:
        import torchvision
    except ImportError as e:
        raise ConfigError("extract.embedding.name=r3m needs torchvision: pip install torchvision") from e
    net = getattr(torchvision.models, f"resnet{depth}")()
    net.fc = torch.nn.Identity()
    prefix = "module.convnet."
    net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=False)
    norm = torchvision.transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    frames = [norm(torch.from_numpy(_frames(p, 224))).numpy() for p in _obs(episodes, "pixels")]
    return _encode(net, frames)


def frame_embeddings(episodes: Sequence[Episode], name: str = "state_delta", dims: Sequence[int] | None = None,
                     weights: str | None = None, model: str = "ViT-B-32", components: int = 32,
                     seed: int = 0) -> list[np.ndarray]:
    """Embedding ``name`` (one of :data:`EMBEDDINGS`) of every observation, per episode float32 (T+1, E).

    Raises:
        ConfigError: for an unknown name, a missing observation key, or a missing weights file or package.
    """
    if name == "state_delta":
        return state_features(episodes, dims)
    if name == "pixels_pca":
        return pixels_pca(episodes, components, seed=seed)
    if name == "clip":
        return clip(episodes, weights, model)
    if name == "r3m":
        return r3m(episodes, weights)
    raise ConfigError(f"unknown extract.embedding.name={name!r}; choose one of {', '.join(EMBEDDINGS)}")


def embed_episodes(episodes: Sequence[Episode], **options) -> list[np.ndarray]:
    """EXTRACT's per-step features: :func:`frame_embeddings` of the T steps an episode acts from,
    minus its first frame's embedding, per episode float32 (T, E)."""
    return [e[:len(ep)] - e[:1] for e, ep in zip(frame_embeddings(episodes, **options), episodes)]
