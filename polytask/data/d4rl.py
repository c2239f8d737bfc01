"""Import of published HDF5 datasets that users have on disk: D4RL files and SPiRL/SkiLD maze
rollouts (read with h5py: arrays only, nothing in the files is executed).

**D4RL** (e.g. ``kitchen-mixed-v0.hdf5``, ``maze2d-umaze-sparse-v1.hdf5``): one flat file of all steps,
``observations`` (N, D), ``actions`` (N, A), ``rewards`` (N,), ``terminals`` (N,), ``timeouts`` (N,),
optionally ``next_observations`` (N, D) and per-step ``infos/<name>`` (N, ...). An episode ends after
a step whose ``terminals`` or ``timeouts`` flag is set (or at the end of the file). Without
``next_observations`` the observation after an episode's last action is not stored: a terminal
step is kept with its observation repeated as the final one (no value is bootstrapped from it), and
the last step of a timed-out (truncated) episode is dropped, so every kept observation is real.

**SPiRL/SkiLD** rollouts (the maze and kitchen data of SPiRL, SkiLD and EXTRACT): ``.h5`` files,
each with groups ``traj0``, ``traj1``, ... holding ``states`` (T, D), ``actions`` (T, A) (or T−1),
optionally ``images`` uint8 (T, H, W, 3) and ``pad_mask`` (T,) (1 on valid steps). ``actions[t]`` is
taken in ``states[t]``; with as many actions as states, the last action has no observed outcome and
is dropped. Rewards are not stored in these files (zeros here).

Imported episodes have ``state`` float32 observations (and ``pixels`` uint8 (3, H, W) from images),
``success`` 0 (these formats do not record it) and the dataset records where it came from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from polytask.data.demos import DatasetError, Episode

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


def _h5py():
    try:
        import h5py
    except ImportError as e:  # h5py comes with minari
        raise ImportError("Importing HDF5 datasets needs h5py: pip install h5py") from e
    return h5py


def _open(path: Path, what: str):
    """``h5py.File(path, "r")``, or a :class:`DatasetError` naming ``what`` the file should be."""
    if not path.exists():
        raise DatasetError(f"No file at {path} (expected a {what})")
    try:
        return _h5py().File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path} is not a readable HDF5 file ({e}); expected a {what}") from e


def load_d4rl(path: str | os.PathLike) -> list[Episode]:
    """Read a D4RL-style HDF5 file into episodes (see the module docstring for the layout).

    Per-step ``infos/<name>`` arrays become ``Episode.infos[name]`` (e.g. maze2d's ``goal``).

    Raises:
        DatasetError: if the file is missing, not HDF5, lacks one of :data:`D4RL_KEYS`, or holds
            arrays of different lengths.
    """
    path = Path(path)
    with _open(path, "D4RL dataset (HDF5 with observations, actions, rewards, terminals, timeouts)") as f:
        missing = [k for k in D4RL_KEYS if k not in f]
        if missing:
            raise DatasetError(f"{path} is not a D4RL dataset: it lacks {', '.join(missing)} "
                               f"(it has {', '.join(sorted(f.keys()))})")
        data = {k: np.asarray(f[k][()]) for k in D4RL_KEYS}
        next_obs = np.asarray(f["next_observations"][()]) if "next_observations" in f else None
        infos = {}
        if "infos" in f:
            infos = {k: np.asarray(v[()]) for k, v in f["infos"].items() if isinstance(v, _h5py().Dataset)}
    n = len(data["actions"])
    arrays = {**data, **infos} if next_obs is None else {**data, **infos, "next_observations": next_obs}
    lengths = {k: len(v) for k, v in arrays.items()}
    if any(v != n for v in lengths.values()):
        raise DatasetError(f"{path}: arrays differ in length ({lengths}); every array must hold one entry per step")
    if n == 0:
        raise DatasetError(f"{path} holds no steps")
    obs = data["observations"].astype(np.float32)
    terminals, timeouts = data["terminals"].astype(bool), data["timeouts"].astype(bool)
    ends = np.flatnonzero(terminals | timeouts)
    if not len(ends) or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)  # the file's last steps: a truncated episode
    episodes, start = [], 0
    for end in ends:
        stop = end + 1
        terminal = bool(terminals[end])
        steps = slice(start, stop if (next_obs is not None or terminal) else end)
        T = steps.stop - steps.start
        if T >= 1:
            last = next_obs[end] if next_obs is not None else obs[end]  # repeated (terminal) or real (timeout)
            ep_obs = np.concatenate([obs[steps], np.asarray(last, np.float32)[None]])
            done = np.zeros(T, bool)
            truncated = done.copy()
            done[-1], truncated[-1] = terminal, not terminal
            episodes.append(Episode(
                obs={"state": ep_obs}, action=data["actions"][steps].astype(np.float32),
                reward=data["rewards"][steps].astype(np.float32), terminated=done, truncated=truncated,
                success=np.zeros(T, np.float32), infos={k: v[steps] for k, v in infos.items()},
                extras={"final_obs_repeated": next_obs is None and terminal}))
        start = stop
    return episodes


def _spirl_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"No SPiRL rollout file or folder at {path}")
    files = sorted(path.rglob("*.h5"), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))])
    if not files:
        raise DatasetError(f"No .h5 rollout files under {path}")
    return files


def load_spirl(path: str | os.PathLike, images: bool = True) -> list[Episode]:
    """Read SPiRL/SkiLD rollouts (one ``.h5`` file, or every ``.h5`` file under a folder, in natural
    order) into episodes; ``images`` keeps the ``images`` arrays as ``pixels`` (3, H, W).

    Raises:
        DatasetError: if there is no file, a file is not HDF5 or has no ``traj<i>`` group, or a
            trajectory's arrays do not fit together.
    """
    episodes = []
    for file in _spirl_files(Path(path)):
        with _open(file, "SPiRL rollout file (HDF5 with traj<i>/states, actions)") as f:
            groups = sorted((k for k in f if re.fullmatch(r"traj\d+", k)), key=lambda k: int(k[4:]))
            if not groups:
                raise DatasetError(f"{file} has no traj<i> groups (it has {', '.join(sorted(f.keys()))}); "
                                   "expected SPiRL rollouts")
            for g in groups:
                episode = _spirl_episode(f[g], f"{file}:{g}", images)
                if episode is not None:
                    episodes.append(episode)
    if not episodes:
        raise DatasetError(f"{path} holds no trajectory with at least two valid steps")
    return episodes


def _spirl_episode(group, where: str, images: bool) -> Episode | None:
    """One ``traj<i>`` group as an episode (None when it has fewer than two valid steps)."""
    for key in ("states", "actions"):
        if key not in group:
            raise DatasetError(f"{where} lacks {key!r} (it has {', '.join(sorted(group.keys()))})")
    states, actions = np.asarray(group["states"][()], np.float32), np.asarray(group["actions"][()], np.float32)
    valid = len(states)
    if "pad_mask" in group:
        mask = np.asarray(group["pad_mask"][()]).reshape(-1) > 0
        valid = int(mask.sum())
        if len(mask) != len(states) or not mask[:valid].all():
            raise DatasetError(f"{where}: pad_mask must be 1 on a prefix of the {len(states)} steps")
    if states.ndim != 2 or actions.ndim != 2 or len(actions) not in (len(states), len(states) - 1):
        raise DatasetError(f"{where}: states {states.shape} and actions {actions.shape} must be (T, D) and (T or "
                           "T-1, A)")
    if valid < 2:
        return None
    T = valid - 1
    obs = {"state": states[:valid]}
    if images and "images" in group:
        frames = np.asarray(group["images"][()])
        if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) != len(states):
            raise DatasetError(f"{where}: images {frames.dtype} {frames.shape} must be uint8 (T, H, W, 3) for the "
                               f"{len(states)} states")
        obs["pixels"] = np.ascontiguousarray(frames[:valid].transpose(0, 3, 1, 2) if frames.shape[-1] == 3
                                             else frames[:valid])
    truncated = np.zeros(T, bool)
    truncated[-1] = True
    return Episode(obs=obs, action=actions[:T], reward=np.zeros(T, np.float32), terminated=np.zeros(T, bool),
                   truncated=truncated, success=np.zeros(T, np.float32))
