"""Demonstration datasets in the Minari format (DESIGN §3).

A dataset lives at ``<data_dir>/datasets/<dataset_id>/`` (Minari's own layout: ``metadata.json`` and
``data/main_data.hdf5`` inside ``data/``), so ``MINARI_DATASETS_PATH=<data_dir>/datasets minari show <dataset_id>``
works on it. Episodes hold T actions and T+1 observations; dict observations keep ``state``
float32 (T+1, D) and, for pixel datasets, raw frames ``pixels`` uint8 (T+1, 3, H, W), one per step,
never stacked. ``infos["success"]`` float (T+1,) starts with the reset info. Each episode records the
reset seed it was collected with.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import numpy as np

from polytask.errors import PolyTaskError


class DatasetError(PolyTaskError, RuntimeError):
    """A dataset that is missing, corrupted or does not fit the environment; the message says how
    to fix it."""


@dataclass
class Episode:
    """One episode in memory.

    Attributes:
        obs: dict of arrays with T+1 entries along axis 0 (``state`` float32 (T+1, D);
            ``pixels`` uint8 (T+1, 3, H, W) when present).
        action: float32 (T, A); ``action[t]`` was taken from ``obs[t]``.
        reward: float32 (T,).
        terminated, truncated: bool (T,).
        success: float32 (T,), 1.0 on steps where the task's success test held.
        seed: the ``reset(seed=)`` the episode started from, or None.
    """

    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    seed: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.action)


def dataset_id(suite: str, task: str, obs_type: str) -> str:
    """Minari id of the demonstrations of one task, e.g. ``polytask/metaworld/hammer-pixels-v0``."""
    return f"polytask/{suite}/{task}-{obs_type}-v0"


def dataset_path(data_dir: str | os.PathLike, ds_id: str) -> Path:
    """Folder of dataset ``ds_id`` under ``data_dir`` (Minari's root is ``<data_dir>/datasets``)."""
    return Path(data_dir) / "datasets" / ds_id


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def write_dataset(data_dir: str | os.PathLike, ds_id: str, episodes: list[Episode], env: gym.Env | None,
                  algorithm_name: str, description: str, extra_metadata: dict | None = None) -> Path:
    """Write ``episodes`` as Minari dataset ``ds_id`` under ``data_dir``, replacing any old one.

    The dataset is built in a staging folder and moved into place, so an interrupted write never
    leaves a half-written dataset where a reader looks. ``env`` (made by ``gym.make``) gives the
    observation/action spaces and the env spec, so ``recover_environment()`` works; without an env
    (imported data) the spaces are inferred from the arrays.

    Returns:
        The dataset folder.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    final = dataset_path(data_dir, ds_id).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".staging-"))
    buffers = []
    for i, ep in enumerate(episodes):
        infos = {"success": np.concatenate([[0.0], ep.success]).astype(np.float32),
                 **ep.extras.get("infos", {})}  # per-step labels, (T+1,) each (e.g. play data)
        buffers.append(EpisodeBuffer(
            id=i, seed=ep.seed, observations=dict(ep.obs), actions=ep.action,
            rewards=ep.reward, terminations=ep.terminated, truncations=ep.truncated, infos=infos))
    try:
        with _minari_root(staging), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # author/permalink nags
            ds = minari.create_dataset_from_buffers(
                dataset_id=ds_id, buffer=buffers, env=env, algorithm_name=algorithm_name,
                observation_space=None if env is not None else _infer_obs_space(episodes[0]),
                action_space=None if env is not None else _infer_action_space(episodes[0]),
                author="PolyTask collect_demos.py", author_email="n/a",
                code_permalink="https://github.com/polytask/polytask", description=description,
                data_format="hdf5", jpeg_encoding=False)
            if extra_metadata:
                ds.storage.update_metadata({"polytask": extra_metadata})
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / ds_id, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _infer_obs_space(ep: Episode) -> gym.spaces.Dict:
    spaces = {}
    for k, v in ep.obs.items():
        if v.dtype == np.uint8:
            spaces[k] = gym.spaces.Box(0, 255, v.shape[1:], np.uint8)
        else:
            spaces[k] = gym.spaces.Box(-np.inf, np.inf, v.shape[1:], np.float32)
    return gym.spaces.Dict(spaces)


def _infer_action_space(ep: Episode) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, ep.action.shape[1:], np.float32)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata of the dataset at ``path`` (spaces, env spec, counts, ``polytask`` extras)."""
    from minari.dataset.minari_storage import MinariStorage

    return MinariStorage.read_raw_metadata(Path(path) / "data")


def load_episodes(path: str | os.PathLike, num_episodes: int | None = None,
                  obs_keys: tuple[str, ...] | None = None, make_cmd: str | None = None) -> list[Episode]:
    """Read the first ``num_episodes`` episodes of the Minari dataset folder ``path``.

    Args:
        path: dataset folder (Minari's ``<dataset_id>`` folder, holding ``data/metadata.json``).
        num_episodes: how many to read (all when None).
        obs_keys: observation keys to keep (all when None); skipping ``pixels`` saves memory.
        make_cmd: command that creates the dataset, quoted in error messages.

    Raises:
        DatasetError: the folder is missing, the file is corrupted, or it holds fewer episodes than
            asked for. The message gives the path and ``make_cmd``.
    """
    from minari import MinariDataset

    path = Path(path)
    how = f"\nMake it with:\n  {make_cmd}" if make_cmd else ""
    if not (path / "data" / "metadata.json").exists():
        raise DatasetError(f"No demonstration dataset at {path}.{how}")
    try:
        ds = MinariDataset(path / "data")
        total = ds.total_episodes
        n = total if num_episodes is None else num_episodes
        if n > total:
            raise DatasetError(f"Dataset {path} holds {total} episodes but {n} were asked for.{how}")
        seeds = [m.get("seed") for m in ds.storage.get_episode_metadata(range(n))]
        episodes = []
        for ep, seed in zip(ds.iterate_episodes(range(n)), seeds):
            obs = ep.observations if isinstance(ep.observations, dict) else {"state": ep.observations}
            if obs_keys is not None:
                obs = {k: v for k, v in obs.items() if k in obs_keys}
            success = np.asarray(ep.infos["success"], np.float32)[1:] if "success" in ep.infos else \
                np.zeros(len(ep.actions), np.float32)
            episodes.append(Episode(
                obs={k: np.asarray(v) for k, v in obs.items()},
                action=np.asarray(ep.actions, np.float32), reward=np.asarray(ep.rewards, np.float32),
                terminated=np.asarray(ep.terminations, bool), truncated=np.asarray(ep.truncations, bool),
                success=success, seed=None if seed is None else int(seed)))
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"Dataset {path} is unreadable or corrupted ({type(e).__name__}: {e}). "
                           f"Delete the folder and make it again.{how}") from e
    return episodes


def check_compatible(episodes: list[Episode], observation_space: gym.spaces.Dict,
                     action_space: gym.spaces.Box, frame_stack: int, source: str) -> None:
    """Check that demonstrations fit an environment.

    Compares ``state`` dim, single-frame ``pixels`` shape (the env's stacked shape divided by
    ``frame_stack``) and action shape.

    Raises:
        DatasetError: naming the mismatching key, both shapes and the dataset ``source``.
    """
    ep = episodes[0]
    problems = []
    for key, space in observation_space.spaces.items():
        want = tuple(space.shape)
        if key == "pixels":
            want = (want[0] // frame_stack,) + want[1:]
        if key not in ep.obs:
            problems.append(f"observation {key!r} is missing (dataset has {sorted(ep.obs)})")
        elif tuple(ep.obs[key].shape[1:]) != want:
            problems.append(f"observation {key!r} has shape {tuple(ep.obs[key].shape[1:])}, env expects {want}")
    if tuple(ep.action.shape[1:]) != tuple(action_space.shape):
        problems.append(f"action has shape {tuple(ep.action.shape[1:])}, env expects {tuple(action_space.shape)}")
    if problems:
        raise DatasetError(f"Dataset {source} does not match the environment: " + "; ".join(problems)
                           + ". Collect demos with the same suite options (obs_type, img_size, task).")
