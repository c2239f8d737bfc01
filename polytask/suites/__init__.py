"""Simulator suites. Each suite module exposes ``make(task, obs_type, seed, **suite_options)``
returning a Gymnasium env with dict observations (see :mod:`polytask.suites.wrappers`) and
``info["success"]``, plus ``TASKS`` (valid task names).

Suites are chosen by the Hydra config ``suite.env._target_``; nothing here branches on suite names.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Iterable

from polytask.errors import PolyTaskError


class UnknownTaskError(PolyTaskError, ValueError):
    """A task name that the suite does not have. The message lists the valid names."""


def check_task(task: str, valid: Iterable[str], suite: str) -> None:
    """Raise :class:`UnknownTaskError` naming close matches and all valid tasks if ``task`` is unknown."""
    valid = list(valid)
    if task in valid:
        return
    close = get_close_matches(task, valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownTaskError(
        f"Unknown {suite} task {task!r}.{hint} Valid tasks: {', '.join(valid)}"
    )
