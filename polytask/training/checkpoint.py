"""Checkpoints holding the full training state, written atomically, and the one reader of
every file a run writes with ``torch.save`` (checkpoints, exported weights).

Files are read with ``torch.load(weights_only=True)``: tensors, numbers, strings, ``None`` and
containers only, so opening a file never runs code from it. Files written before PolyTask saved
only such data (NumPy arrays in the RNG state and the replay buffer) are refused with a
:class:`CheckpointError` that gives the command converting them, for files the user trusts::

    python -m polytask.training.checkpoint convert runs/.../checkpoints/latest.pt --trust
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from polytask.errors import CheckpointError
from polytask.utils import atomic_torch_save


def checkpoint_dir(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints``, where ``latest.pt`` (resume) and ``best.pt`` live."""
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], name: str = "latest") -> Path:
    """Write ``state`` to ``<run_dir>/checkpoints/<name>.pt`` via temp file + rename."""
    path = checkpoint_dir(run_dir) / f"{name}.pt"
    atomic_torch_save(state, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` or a weights file, as tensors, numbers,
    strings, ``None`` and containers only (``torch.load(weights_only=True)``): nothing in the file
    is run.

    Raises:
        CheckpointError: if it is missing or unreadable, or holds other objects (a file from before
            this format, whose message gives :func:`convert_command`, or not a PolyTask file).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = re.search(r"GLOBAL (\S+)", str(e))  # the class or function weights_only would not load
        if refused is None:  # a torn or foreign file
            reason = str(e).split("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0]
            raise CheckpointError(f"Checkpoint {path} is unreadable ({reason}); delete it to start over, or pass "
                                  "resume=never") from e
        raise CheckpointError(
            f"{path} holds objects other than tensors, numbers, strings and containers (it refers to "
            f"{refused.group(1)}); it is not read, "
            "since unpickling them could run code from the file. If PolyTask wrote it before it saved only such data "
            f"and you trust the file, convert it once with:\n  {convert_command(path)}") from e
    except Exception as e:  # torch raises several types for torn or foreign files
        raise CheckpointError(f"Checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                              "delete it to start over, or pass resume=never") from e


def convert_command(path: str | Path) -> str:
    """The command that rewrites a trusted file from an older PolyTask in the safe format."""
    return f"python -m polytask.training.checkpoint convert {path} --trust"


def to_plain(obj: Any, where: str = "") -> Any:
    """``obj`` with NumPy arrays as tensors (unsigned ones as int64), NumPy scalars as Python numbers
    and OmegaConf configs as containers, so that :func:`load_checkpoint` reads it.

    Raises:
        CheckpointError: for any other object (``where`` names its place in the file).
    """
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "biuf":
        wide = obj.dtype.kind == "u" and obj.dtype != np.uint8  # torch has no uint16/32/64 for every op
        return torch.from_numpy(np.ascontiguousarray(obj, np.int64 if wide else obj.dtype))
    if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if obj is None or isinstance(obj, (torch.Tensor, torch.Size, torch.dtype, bool, int, float, str, bytes)):
        return obj
    raise CheckpointError(f"Cannot convert {type(obj).__module__}.{type(obj).__qualname__} at {where or 'the top'}")


def convert_checkpoint(path: str | Path) -> list[str]:
    """Rewrite a trusted file written by an older PolyTask in the format :func:`load_checkpoint` reads.

    The file is unpickled in full (``weights_only=False``: run only on files you trust) and its
    contents turned into plain data (:func:`to_plain`). A ``latest.pt`` that holds its replay buffer
    inline gets it written as a chunk file under ``replay/`` beside it
    (:class:`polytask.training.replay_store.ReplayStore`); other files (``best.pt``) drop theirs.
    The file is replaced atomically and read back with :func:`load_checkpoint`.

    Returns:
        what was changed, one line each.

    Raises:
        CheckpointError: if the file is missing or holds objects that have no plain form.
    """
    from polytask.training.replay_store import ReplayStore

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}")
    state = to_plain(torch.load(path, map_location="cpu", weights_only=False))
    done = ["NumPy data as tensors and plain numbers"]
    replay = state.get("replay") if isinstance(state, dict) else None
    if isinstance(replay, dict) and "obs" in replay:  # a replay buffer stored inline, by physical row
        if path.name == "latest.pt":
            count, capacity, n = replay["count"], replay["capacity"], len(replay["action"])
            start = count - n
            rows = torch.arange(start, count) % capacity
            arrays = {**{f"obs.{k}": v[rows].numpy() for k, v in replay["obs"].items()},
                      **{k: v[rows].numpy() for k, v in replay.items() if isinstance(v, torch.Tensor)}}
            chunk = ReplayStore(path.parent / "replay").write_chunk(start, arrays)
            state["replay"] = {k: replay[k] for k in ("capacity", "count", "cur_start", "steps_added", "rng")}
            state["replay"]["chunks"] = [list(chunk)]
            done.append(f"replay buffer ({n} slots) moved to {path.parent / 'replay' / f'{chunk[0]}-{chunk[1]}.npz'}")
        else:
            del state["replay"]
            done.append("replay buffer dropped (only latest.pt, for resuming, needs it)")
    atomic_torch_save(state, path)
    load_checkpoint(path)
    return done


def main(argv: list[str] | None = None) -> int:
    """``python -m polytask.training.checkpoint convert FILE... --trust`` (see :func:`convert_checkpoint`)."""
    parser = argparse.ArgumentParser(prog="python -m polytask.training.checkpoint",
                                     description="Convert checkpoints and weights files written by an older "
                                                 "PolyTask to the format that loads without unpickling objects.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("convert", help="rewrite trusted files in the safe format (in place)")
    p.add_argument("files", nargs="+", help="checkpoint or weights files (.pt)")
    p.add_argument("--trust", action="store_true",
                   help="say that the files come from a trusted source: converting unpickles them in full")
    args = parser.parse_args(argv)
    if not args.trust:
        print("error: converting unpickles each file in full, which runs any code a crafted file holds. Pass --trust "
              "if you (or PolyTask) wrote these files and nobody else could change them.", file=sys.stderr)
        return 1
    for f in args.files:
        try:
            print(f"{f}: " + "; ".join(convert_checkpoint(f)))
        except CheckpointError as e:
            print(f"error: {f}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
