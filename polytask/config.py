"""OmegaConf resolvers used by ``cfgs/`` and the agents' option schemas (:mod:`polytask.agents.configs`),
registered on import, before Hydra composes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf

from polytask.agents.configs import register_schemas

#: the project's Hydra config folder (``cfgs/``)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "cfgs"


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


def cheetah_variants(task_ids) -> list[str]:
    """DMC cheetah morphology variant names for ids in 1..10: ``[1, 3] -> [cheetah_run_m1, cheetah_run_m3]``
    (``cfgs/suite/dmc.yaml``: ``task: ${polytask.cheetah_variants:${suite.task_id}}``)."""
    from polytask.suites.dmc import cheetah_variant_tasks  # needs no dm_control

    if not isinstance(task_ids, (int, str)):
        task_ids = list(task_ids)  # ListConfig -> list
    return cheetah_variant_tasks(task_ids)


def when(condition, if_true, if_false):
    """``if_true`` when ``condition`` is true, else ``if_false`` (e.g. exploration that depends on
    ``load_bc``)."""
    return if_true if condition else if_false


def first_n(items, n) -> list:
    """The first ``n`` items (e.g. the tasks to distil: ``num_envs_to_distil``).

    Raises:
        ValueError: if ``n`` is not in 1..len(items).
    """
    items = list(items)
    if not 1 <= int(n) <= len(items):
        raise ValueError(f"asked for the first {n} of {len(items)} tasks; use 1..{len(items)}")
    return items[: int(n)]


def base_tag(base_policy) -> str:
    """``-on-<agent>-<stem>`` for a decorated run's base weights file (``data/weights/bet/metaworld/
    hammer-features-d10-seed1.pt -> -on-bet-hammer-features-d10-seed1``; the agent folder is left
    out for paths without one), or ``""`` when there is no base (None or empty). Names residual
    runs' directories and weights files, so runs on different bases stay apart."""
    from pathlib import Path

    if not base_policy:
        return ""
    path = Path(str(base_policy))
    return f"-on-{path.parent.parent.name}-{path.stem}" if len(path.parts) >= 3 else f"-on-{path.stem}"


def demos_tag(num_demos, irl=None, load_bc=False, bc_regularize=False) -> str:
    """``-d<num_demos>`` for a run that learns from demonstrations, ``""`` for one that does not.

    An offline agent (BC, BeT, Diffusion Policy, ...: its config has no ``irl`` option, so ``irl`` is
    None) always learns from demos; an online one (DrQ-v2, SAC, residual) does when it takes
    optimal-transport rewards (``irl``), starts from BC weights (``load_bc``) or adds the BC term
    (``bc_regularize``). Names run directories (``cfgs/config.yaml``) and weights files
    (:func:`polytask.training.checkpoint.weights_path`), so a DrQ-v2 expert trained on the env reward is
    ``cheetah_run_m1-features-seed1`` and a ROT run on one demo ``hammer-features-d1-seed1``."""
    return f"-d{int(num_demos)}" if irl is None or irl or load_bc or bc_regularize else ""


#: Overrides that change how a run is watched, not what it learns: left out of :func:`settings_tag`.
BOOKKEEPING_KEYS = ("eval", "log_every_steps", "eval_every_steps", "save_every_steps", "weights_tag")


def overrides_tag(overrides: Iterable[str], exclude: Iterable[str] = ()) -> str:
    """Hydra override strings as a file-name part that a Hydra override can take unquoted:
    ``["agent.lr=0.001", "recipe=drqv2_state"]`` -> ``agent.lr-0.001+recipe-drqv2_state`` (sorted);
    ``""`` when none is left. Leaves out overrides of the keys in ``exclude`` and of
    :data:`BOOKKEEPING_KEYS` (eval, logging and checkpoint schedules). Characters other than letters,
    digits and ``._-`` become ``_``; where that changed something, or past 80 characters, a hash of
    the overrides is appended so that tags stay distinct."""
    import re

    exclude = set(exclude)
    kept = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key not in exclude and key.split(".", 1)[0] not in BOOKKEEPING_KEYS:
            kept.append(override.lstrip("+~"))
    if not kept:
        return ""
    kept.sort()
    parts = [o.replace("=", "-", 1) for o in kept]
    tag = "+".join(re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in parts)
    if tag != "+".join(parts) or len(tag) > 80:
        tag = f"{tag[:80]}+{hashlib.sha1(','.join(kept).encode()).hexdigest()[:8]}"
    return tag


def option_differences(asked: dict, made: dict, ignore: Iterable[str] = ()) -> dict[str, tuple]:
    """The options a run asks for (``asked``, its config node as a dict) that differ from those a
    dataset was made with (``made``, from its metadata): ``{dotted key: (asked, made)}``. Nested dicts
    are compared key by key; keys ``made`` lacks (options the data predates) and keys whose first part
    is in ``ignore`` are left out."""

    def flat(options: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in options.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    ignore, made = set(ignore), flat(made)
    return {k: (v, made[k]) for k, v in flat(asked).items()
            if k in made and made[k] != v and k.split(".", 1)[0] not in ignore}


def differences_text(differ: dict[str, tuple], prefix: str) -> str:
    """One line per :func:`option_differences` entry: ``  <prefix><key>: asked <a>, made with <m>``."""
    return "\n".join(f"  {prefix}{k}: asked {a!r}, made with {m!r}" for k, (a, m) in differ.items())


def settings_tag() -> str:
    """The command-line overrides of the running Hydra job that set what it learns, as a file-name
    part (:func:`overrides_tag`): ``agent.lr=0.001 recipe=drqv2_state`` ->
    ``agent.lr-0.001+recipe-drqv2_state``; ``""`` for a run with the default settings or outside a
    Hydra job.

    Leaves out what the run directory leaves out (``hydra.job.config.override_dirname.exclude_keys``:
    suite, tasks, seed, ... already named elsewhere) and :data:`BOOKKEEPING_KEYS`. Makes exported
    weights files as distinct as their runs (``cfgs/config.yaml``: ``weights_tag``), so a sweep over
    ``agent.lr`` no longer writes one file."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    return overrides_tag(hydra_cfg.overrides.task, hydra_cfg.job.config.override_dirname.exclude_keys)


def file_stem(path: str) -> str:
    """The file name without directory and suffix: ``data/weights/bc/metaworld/reach-d10.pt -> reach-d10``."""
    from pathlib import Path

    return Path(str(path)).stem


def pyobj(path: str):
    """The Python object at a dotted ``path`` (e.g. a suite's task list)."""
    import importlib

    module, name = path.rsplit(".", 1)
    value = getattr(importlib.import_module(module), name)
    return list(value) if isinstance(value, (list, tuple)) else value


_RESOLVERS = {"polytask.when": when, "polytask.first_n": first_n, "polytask.pyobj": pyobj,
              "polytask.tasks_tag": tasks_tag, "polytask.subdir": subdir,
              "polytask.file_stem": file_stem, "polytask.base_tag": base_tag,
              "polytask.demos_tag": demos_tag, "polytask.settings_tag": settings_tag,
              "polytask.cheetah_variants": cheetah_variants}
for _name, _fn in _RESOLVERS.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
register_schemas()
