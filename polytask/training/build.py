"""Building a run from its config: ``build_trainer`` checks the agent's options, makes the earlier
skill stages the agent needs when they are missing (:func:`make_missing_stages`), prepares the run
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
from polytask.training.inputs import agent_options, check_agent_options
from polytask.training.skill_inputs import missing_stages, stage_command, stage_config, stage_path, stage_run_dir
from polytask.training.trainer import Trainer
from polytask.utils import rng_state, set_rng_state, set_seed

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
    make_missing_stages(cfg)
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info(f"Run directory: {run_dir}")
    set_seed(cfg.seed)
    return get_class(cfg.agent.trainer).from_config(cfg, run_dir)


def make_missing_stages(cfg: DictConfig) -> None:
    """Train first, one after the other, the earlier skill stages whose weights the run's agent asks
    for (:meth:`polytask.agents.base.Agent.inputs`) and that are missing
    (:func:`polytask.training.skill_inputs.missing_stages`); each is a run of its own
    (:func:`build_trainer`, which makes that stage's own missing stages first) in
    ``<run dir>/stages/<stage>``. Nothing is made with ``collect_missing_demos=false``: the agent's
    input then fails with the command that makes it. The global RNG states are kept as they were, so
    a run continues alike whether or not it made a stage."""
    if not cfg.collect_missing_demos:
        return
    options = agent_options(cfg.agent)
    for stage in missing_stages(cfg, tuple(get_class(options["_target_"]).inputs(options))):
        run_dir = stage_run_dir(cfg, stage)
        log.info(f"{stage} weights missing at {stage_path(cfg, stage)}: making them first in {run_dir} "
                 f"({stage_command(cfg, stage)})")
        rng = rng_state()
        try:
            build_trainer(stage_config(cfg, stage), run_dir).run()
        finally:
            set_rng_state(rng)
