"""Glue shared by the entry scripts: clean exits on user errors, printing the resolved config."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

import polytask.config  # noqa: F401  (registers the config resolvers)
from polytask.errors import PolyTaskError

log = logging.getLogger("polytask")


def run_entry(fn: Callable[[DictConfig], object], cfg: DictConfig) -> None:
    """Print the resolved config, call ``fn(cfg)``, and turn a :class:`PolyTaskError` into its
    message on the log and exit status 1 (no traceback: the message says how to fix it)."""
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # "No OpenGL_accelerate module" noise
    log.info("Config:\n" + OmegaConf.to_yaml(cfg, resolve=True))
    try:
        fn(cfg)
    except PolyTaskError as e:
        log.error(f"{type(e).__name__}: {e}")
        sys.exit(1)
