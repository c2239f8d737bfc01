"""Small shared helpers: device selection, seeding, atomic file writes."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch


def resolve_device(device: str) -> torch.device:
    """Turn a config device string into a ``torch.device``.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        ValueError: if CUDA is asked for but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use device=auto or device=cpu")
    return dev


def instantiate(config: Any, *args: Any, **kwargs: Any) -> Any:
    """Hydra's ``instantiate`` that lets the target's own errors through.

    Hydra wraps every exception raised while calling a ``_target_`` in an ``InstantiationException``,
    which would hide a :class:`polytask.errors.PolyTaskError` (unknown task, features-only agent, bad
    sizes) from the entry scripts' clean-exit handler and from ``except ValueError`` clauses. Here the
    original exception is re-raised instead.

    Raises:
        the target's own exception; ConfigError: when Hydra itself cannot instantiate (e.g. a
            ``_target_`` that does not exist), with Hydra's message.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    from polytask.errors import ConfigError

    try:
        return hydra_instantiate(config, *args, **kwargs)
    except InstantiationException as e:
        cause = e
        while isinstance(cause, InstantiationException) and str(cause).startswith("Error in call to target"):
            cause = cause.__cause__  # the target raised (nested configs wrap once per level)
        if cause is None or isinstance(cause, InstantiationException):  # Hydra's own: locating the target, ...
            raise ConfigError(str(e)) from e
        raise cause  # noqa: B904 (the target's own exception, with its own cause, is what the caller handles)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Snapshot of the global RNG states (Python, NumPy, torch CPU/CUDA) for checkpoints, in tensors and
    plain data only (so that :func:`polytask.training.checkpoint.load_checkpoint` reads it without
    unpickling objects): NumPy's ``("MT19937", key, pos, has_gauss, cached_gaussian)`` keeps its
    uint32 (624,) key as an int64 tensor."""
    name, key, *rest = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(key.astype(np.int64)), *rest),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(key).astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, fsync, then rename it over ``path``.

    A process killed at any moment leaves either the old file or the new one, never a torn one; if
    ``write`` raises, the old file is kept and the temporary one removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` through :func:`atomic_write` (temp file, fsync, rename)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def schedule(spec: float | str, step: int) -> float:
    """Value of a schedule at ``step``: a number, or ``"linear(init, final, duration)"`` (DrQ-v2's
    exploration std), interpolated linearly over ``duration`` steps and constant after.

    Raises:
        ValueError: for a string that is not a number or ``linear(a,b,n)``.
    """
    try:
        return float(spec)
    except ValueError:
        pass
    import re

    match = re.fullmatch(r"\s*linear\(([^,]+),([^,]+),([^)]+)\)\s*", str(spec))
    if not match:
        raise ValueError(f"Unknown schedule {spec!r}; use a number or 'linear(init,final,duration)'")
    init, final, duration = (float(g) for g in match.groups())
    mix = min(max(step / duration, 0.0), 1.0)
    return (1.0 - mix) * init + mix * final


#: A metric as agents' ``update`` returns it: a Python number or a 0-d tensor (kept on its device, so
#: that an update needs no host sync; :func:`metric_floats` converts them when they are logged).
Metric = float | torch.Tensor


def metric_floats(metrics: dict[str, Metric]) -> dict[str, float]:
    """``metrics`` as Python floats: 0-d tensors are moved to the host together (one transfer per
    device instead of one ``.item()`` sync per metric), numbers are converted with ``float``.

    Raises:
        ValueError: for a tensor metric with more than one element.
    """
    tensors = {k: v for k, v in metrics.items() if torch.is_tensor(v)}
    for k, v in tensors.items():
        if v.numel() != 1:
            raise ValueError(f"metric {k!r} must be a number or a one-element tensor, got shape {tuple(v.shape)}")
    values: dict[str, float] = {}
    by_device: dict[torch.device, list[str]] = {}
    for k, v in tensors.items():
        by_device.setdefault(v.device, []).append(k)
    for keys in by_device.values():
        stacked = torch.stack([tensors[k].detach().reshape(()).to(torch.float64) for k in keys]).tolist()
        values.update(zip(keys, stacked))
    return {k: values[k] if k in values else float(v) for k, v in metrics.items()}
