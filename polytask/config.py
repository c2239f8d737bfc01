"""OmegaConf resolvers used by ``cfgs/`` (registered on import, before Hydra composes)."""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf


def tasks_tag(tasks) -> str:
    """Short run-directory tag for a task list: ``hammer``, ``hammer+drawer-close`` or
    ``16tasks-<hash>`` for long lists."""
    tasks = [str(t) for t in tasks]
    if len(tasks) <= 3:
        return "+".join(tasks)
    digest = hashlib.sha1(",".join(tasks).encode()).hexdigest()[:6]
    return f"{len(tasks)}tasks-{digest}"


def subdir(name: str) -> str:
    """``name/`` or nothing when ``name`` is empty (for optional run-directory levels)."""
    return f"{name}/" if name else ""


for _name, _fn in {"polytask.tasks_tag": tasks_tag, "polytask.subdir": subdir}.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
