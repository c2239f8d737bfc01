"""Building a run from its config: ``build_trainer`` checks the agent's options, prepares the run
directory and seeds, then hands over to the trainer class named by ``cfg.agent.trainer`` (its
``from_config``), which makes its parts with :mod:`polytask.training.run` (envs, evaluator, demos)
and :func:`polytask.training.inputs.make_agent` (the agent and the inputs it asks for)."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from polytask.errors import ConfigError
from polytask.training.inputs import check_agent_options
from polytask.training.trainer import Trainer
from polytask.utils import set_seed

log = logging.getLogger("polytask")


def run_dir_for(cfg: DictConfig) -> Path:
    """``cfg.resume`` when it names a run directory, else Hydra's run directory."""
    if cfg.resume not in ("auto", "never"):
        path = Path(cfg.resume)
        if not (path / "checkpoints" / "latest.pt").exists():
            raise ConfigError(f"resume={cfg.resume}: no checkpoint at {path / 'checkpoints' / 'latest.pt'}")
        return path
    return Path(HydraConfig.get().runtime.output_dir)


def build_trainer(cfg: DictConfig, run_dir: Path | None = None) -> Trainer:
    """Everything a run needs, wired together by ``cfg.agent.trainer``'s ``from_config``.

    Raises:
        ConfigError: if the agent config has options its class does not take (:func:`check_agent_options`).
    """
    check_agent_options(cfg.agent)
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info(f"Run directory: {run_dir}")
    set_seed(cfg.seed)
    return get_class(cfg.agent.trainer).from_config(cfg, run_dir)


