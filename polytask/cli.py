"""Glue shared by the entry scripts: Hydra set up (:func:`hydra_main`), clean exits on user errors,
printing the resolved config."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

import polytask.config  # noqa: F401  (registers the config resolvers and the agents' option schemas)
from polytask.errors import ConfigError, PolyTaskError

log = logging.getLogger("polytask")


def run_entry(fn: Callable[[DictConfig], object], cfg: DictConfig) -> None:
    """Print the resolved config, call ``fn(cfg)``, and turn a :class:`PolyTaskError` into its
    message on the log and exit status 1 (no traceback: the message says how to fix it)."""
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # "No OpenGL_accelerate module" noise
    try:
        log.info("Config:\n" + OmegaConf.to_yaml(cfg, resolve=True))
    except ValidationError as e:  # a top-level value of the wrong type, read by a typed option
        _exit(config_error(e))
    try:
        fn(cfg)
    except PolyTaskError as e:
        _exit(e)


def _exit(e: Exception) -> None:
    log.error(f"{type(e).__name__}: {e}")
    sys.exit(1)



def hydra_main(config_name: str) -> Callable[[Callable[[DictConfig], None]], Callable[[], None]]:
    """``hydra.main`` over ``cfgs/<config_name>.yaml`` for an entry script's task function, where an
    option of the wrong type or an unknown option (an override the agent's schema refuses at
    composition) exits with status 1 and a :class:`ConfigError` message (:func:`config_error`)
    instead of Hydra's report; other composition errors are reported as Hydra reports them."""
    import hydra
    from hydra.errors import CompactHydraException

    def decorate(task: Callable[[DictConfig], None]) -> Callable[[], None]:
        main = hydra.main(config_path=str(polytask.config.CONFIG_DIR), config_name=config_name,
                          version_base="1.3")(task)

        @functools.wraps(task)
        def entry() -> None:
            asked_full = os.environ.get("HYDRA_FULL_ERROR") == "1"  # the user wants Hydra's full traces
            os.environ["HYDRA_FULL_ERROR"] = "1"  # composition errors reach us, not Hydra's printer
            try:
                main()
            except CompactHydraException as e:  # composition: reported as Hydra does, without a traceback
                if asked_full:
                    raise
                cause = e.__cause__ or e.__context__  # an override's, or a config file's (e.g. a recipe's)
                if isinstance(cause, (ValidationError, ConfigKeyError)):
                    source = str(e).split(": ", 1)[0] + ": " if str(e).startswith("In '") else ""
                    _exit(ConfigError(f"{source}{config_error(cause)}"))
                detail = f"\n{cause}" if isinstance(cause, OmegaConfBaseException) and str(cause) not in str(e) else ""
                print(f"{e}{detail}", file=sys.stderr)
                sys.exit(1)

        return entry

    return decorate


def config_error(e: OmegaConfBaseException) -> ConfigError:
    """A :class:`ConfigError` for OmegaConf's refusal ``e`` of a value (wrong type) or key (unknown
    option) of a typed config: the key, the value, and what the option takes (its type and doc) or the
    options there are."""
    owner = e.object_type if dataclasses.is_dataclass(e.object_type) else None
    fields = {f.name: f for f in dataclasses.fields(owner)} if owner else {}
    where = f" ({owner.__name__}, {owner.__module__.replace('.', '/')}.py)" if owner else ""
    if isinstance(e, ConfigKeyError) or (e.key is not None and owner and e.key not in fields):
        options = [name for name in fields if name not in ("_target_", "name", "trainer")]
        takes = f"; it takes: {', '.join(options)}" if options else ""
        return ConfigError(f"{e.full_key}: no such option{where}{takes}. Drop the override, or pick the agent it "
                           f"was meant for (a recipe sets its own agent: leave out agent=... when using recipe=...)")
    field = fields.get(str(e.key))
    wanted = f"takes {getattr(field.type, '__name__', field.type)} there ({field.metadata.get('help', '')})" \
        if field else f"refuses it: {e.msg}"
    return ConfigError(f"{e.full_key}={e.value!r} ({type(e.value).__name__}): {owner.__name__ if owner else 'it'} "
                       f"{wanted}; fix the override or the config")
