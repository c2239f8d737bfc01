"""The pieces every agent config is made of: :func:`option` fields, :class:`AgentConfig`, the
checks, and :func:`make_config`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from polytask.errors import ConfigError


def option(default: Any, doc: str, top_level: str | None = None) -> Any:
    """A config field with ``default`` (lists and dicts are copied per instance) and its one-line
    ``doc``; ``top_level`` names the top-level key the published yamls set it through (by
    interpolation: run names read that key, so it is the switch's one name)."""
    meta = {"help": doc, **({"top_level": top_level} if top_level else {})}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def positive(cfg: Any, *names: str) -> None:
    for name in names:
        require(getattr(cfg, name) > 0, f"agent.{name} must be > 0, got {getattr(cfg, name)}")


def check_schedule(name: str, spec: Any) -> None:
    from polytask.utils import schedule  # the schedule parser (imports torch: only when checking)

    try:
        schedule(spec, 0)
    except ValueError as e:
        raise ConfigError(f"agent.{name}: {e}") from e


@dataclass
class AgentConfig:
    """Base of the agent configs: no options (a subclass declares its agent's)."""

    #: the name of the ``cfgs/agent/<name>.yaml`` that extends this class (set on the class the yaml
    #: uses; an intermediate base like ``DrQV2Config`` leaves it None)
    schema_name: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        """The checks of the config (subclasses extend it). Raises ConfigError."""


def make_config(config_class: type[AgentConfig], options: Mapping[str, Any]) -> AgentConfig:
    """``config_class`` built from ``options`` (plain values or a DictConfig): types checked and
    converted as at composition (a number given for a string option, an int for a float), then
    :meth:`AgentConfig.__post_init__`'s checks.

    Raises:
        ConfigError: for an option ``config_class`` lacks (the message lists those it has), a value
            of the wrong type, or a check that fails.
    """
    if isinstance(options, config_class):
        return options
    names = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(f"{config_class.__name__} has no option {', '.join(unknown)}; it takes: {', '.join(names)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config_class), dict(options))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{config_class.__name__}: {str(e).splitlines()[0]} (fix the override or the config)") from e


def make_options(config_class: type, options: Mapping[str, Any], where: str) -> Any:
    """A plain options dataclass (:class:`OTConfig`) from ``options``.

    Raises:
        ConfigError: for a key it lacks (naming ``where`` and the keys it has).
    """
    try:
        return config_class(**dict(options))
    except TypeError as e:
        keys = ", ".join(f.name for f in dataclasses.fields(config_class))
        raise ConfigError(f"{where}: {e}; the keys are {keys}") from e
