"""Import of the PolyTask/ROT demonstration pickles.

Format: a pickle of ``[pixels, states, actions, rewards]``, each a list indexed ``[demo]`` of arrays
indexed ``[t]``: pixels uint8 (T, 3*k, H, W) frame-stacked (oldest frame first), states float32
(T, D), actions float32 (T, A) with ``actions[t]`` taken from observation ``t``, rewards (T,).
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path

import numpy as np

try:  # NumPy 2
    from numpy._core import multiarray as np_multiarray
except ImportError:  # NumPy 1
    from numpy.core import multiarray as np_multiarray

from polytask.data.demos import DatasetError, Episode

#: The globals a demo pickle may refer to: NumPy's array, dtype and scalar reconstruction, under the
#: module names that NumPy 2 and NumPy 1 write, and ``codecs.encode``, which pickle protocols < 3 use
#: for bytes (as torch's ``weights_only`` loader allows it).
_ALLOWED_GLOBALS = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                    ("_codecs", "encode"): codecs.encode,
                    **{(m, f): getattr(np_multiarray, f) for m in ("numpy._core.multiarray", "numpy.core.multiarray")
                       for f in ("_reconstruct", "scalar")}}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles lists, tuples, numbers and NumPy arrays of numbers only: ``find_class`` hands out
    NumPy's array, dtype and scalar reconstruction functions (under their NumPy 1 and 2 module
    names) and refuses every other global, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which is not loaded since it could run "
                                         "code; only NumPy arrays are accepted") from None


def _check_arrays(obj, path: Path) -> None:
    """Refuse anything but lists/tuples of numeric NumPy arrays and numbers (object arrays included)."""
    if isinstance(obj, (list, tuple)):
        for item in obj:
            _check_arrays(item, path)
    elif not (isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in "biuf"
              or isinstance(obj, (bool, int, float))):
        raise DatasetError(f"{path} holds a {type(obj).__name__}"
                           f"{f' of dtype {obj.dtype}' if hasattr(obj, 'dtype') else ''}; a PolyTask/ROT demo "
                           "pickle holds lists of numeric NumPy arrays only")


def load_rot_pickle(path: str | os.PathLike, frame_channels: int = 3) -> list[Episode]:
    """Read a PolyTask/ROT pickle into :class:`Episode` objects with raw (unstacked) frames.

    Each stack's newest frame (its last ``frame_channels`` channels) becomes that step's frame. The
    pickle has no observation after the last action, so the last observation is repeated as the
    final one (``extras["final_obs_repeated"] = True``); the episode is marked truncated there.
    The file is unpickled with a restricted unpickler that builds nothing but lists, tuples, numbers
    and numeric NumPy arrays: a file that refers to any other class or function is refused
    before anything in it runs.

    Raises:
        DatasetError: if the file is missing, not a pickle, holds other objects than lists of numeric
            arrays, or is not in the format above.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"No PolyTask/ROT demo pickle at {path}")
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as e:
        raise DatasetError(f"{path} is not a readable PolyTask/ROT demo pickle ({type(e).__name__}: {e})") from e
    if isinstance(data, (list, tuple)):
        _check_arrays(data, path)
    if not (isinstance(data, (list, tuple)) and len(data) == 4):
        raise DatasetError(f"{path}: expected a list [pixels, states, actions, rewards], got {type(data).__name__}"
                           f" of length {len(data) if hasattr(data, '__len__') else '?'}")
    pixels, states, actions, rewards = data
    if not len(pixels) == len(states) == len(actions) == len(rewards):
        raise DatasetError(f"{path}: pixels/states/actions/rewards hold {len(pixels)}/{len(states)}/"
                           f"{len(actions)}/{len(rewards)} demos; they must be equal")
    episodes = []
    for i, (pix, st, act, rew) in enumerate(zip(pixels, states, actions, rewards)):
        pix, st = np.asarray(pix), np.asarray(st, np.float32)
        act, rew = np.asarray(act, np.float32), np.asarray(rew, np.float32).reshape(-1)
        T = len(act)
        if not (len(pix) == len(st) == len(rew) == T) or pix.ndim != 4 or pix.shape[1] % frame_channels:
            raise DatasetError(f"{path}: demo {i} has pixels {pix.shape}, states {st.shape}, actions {act.shape}, "
                               f"rewards {rew.shape}; expected (T, 3k, H, W), (T, D), (T, A), (T,)")
        frames = pix[:, -frame_channels:].astype(np.uint8)
        obs = {"state": np.concatenate([st, st[-1:]]), "pixels": np.concatenate([frames, frames[-1:]])}
        truncated = np.zeros(T, bool)
        truncated[-1] = True
        episodes.append(Episode(obs=obs, action=act, reward=rew, terminated=np.zeros(T, bool),
                                truncated=truncated, success=np.zeros(T, np.float32),
                                extras={"final_obs_repeated": True}))
    return episodes
