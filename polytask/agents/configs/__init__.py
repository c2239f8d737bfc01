"""Every agent's options, declared once: one dataclass per agent (typed fields, defaults, one doc
line each in ``metadata["help"]``), its checks in ``__post_init__`` (ranges, options that need each
other), so a bad value fails when the config is built, before any data is loaded or network made.

One module per family of agents (:mod:`.imitation`, :mod:`.sac`, :mod:`.sequence`, :mod:`.distill`,
:mod:`.skills`, :mod:`.extract`); the pieces they are made of are in :mod:`.base`. A config class
that sets ``schema_name`` is found by :func:`discover` (every module of this package) and registered
in Hydra's ConfigStore (group ``agent_schema``) when :mod:`polytask.config` is imported, before
composition; ``cfgs/agent/<schema_name>.yaml`` extends it (``- /agent_schema@agent: <name>`` in its
defaults list), so the composed config holds every option with its type, a wrong type fails at
composition, and the yaml only sets ``_target_``, ``name``, ``trainer`` and the values of its
published setting. An agent reads its options as ``self.cfg``
(:meth:`polytask.agents.base.Agent.configure`). A new agent adds its config to a module here (or a
new module) and nothing else in this package.

This package imports no torch and no agent, so registering costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from omegaconf import MISSING

from polytask.agents.configs.base import AgentConfig, make_config, option

__all__ = ["AgentConfig", "make_config", "option", "discover", "register_schemas", "schema"]


def discover() -> dict[str, type]:
    """Every config class of this package's modules that sets its own ``schema_name``, by that name.

    Raises:
        RuntimeError: if two classes claim one name (a programming error).
    """
    found: dict[str, type] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            name = vars(value).get("schema_name") if isinstance(value, type) else None
            if name and value.__module__ == module.__name__:
                if name in found and found[name] is not value:
                    raise RuntimeError(f"{found[name].__name__} and {value.__name__} both set schema_name={name!r}")
                found[name] = value
    return found


def schema(config_class: type) -> type:
    """``config_class`` plus the keys every agent yaml sets and its agent does not take: ``_target_``
    (the agent class), ``name`` and ``trainer`` (mandatory)."""
    header = [(key, str, dataclasses.field(default=MISSING)) for key in ("_target_", "name", "trainer")]
    made = dataclasses.make_dataclass(config_class.__name__, header, bases=(config_class,))
    made.__module__ = config_class.__module__
    return made


def register_schemas() -> None:
    """Store every discovered config in Hydra's ConfigStore, group ``agent_schema`` (idempotent); an
    agent's config gets the yaml header keys (:func:`schema`), a plain options group (``ot``) is
    stored as it is."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, config_class in discover().items():
        node = schema(config_class) if issubclass(config_class, AgentConfig) else config_class
        store.store(group="agent_schema", name=name, node=node)
