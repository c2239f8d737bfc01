"""Building a run from its config: env factory, demos, agent, evaluator, trainer."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from polytask.data.buffer import DemoBuffer
from polytask.suites import make_env
from polytask.training.demos import load_or_collect_demos
from polytask.training.evaluator import Evaluator
from polytask.training.trainer import Trainer
from polytask.utils import resolve_device, set_seed

log = logging.getLogger("polytask")


def run_dir_for(cfg: DictConfig) -> Path:
    """``cfg.resume`` when it names a run directory, else Hydra's run directory."""
    if cfg.resume not in ("auto", "never"):
        path = Path(cfg.resume)
        if not (path / "checkpoints" / "latest.pt").exists():
            raise FileNotFoundError(f"resume={cfg.resume}: no checkpoint at {path / 'checkpoints' / 'latest.pt'}")
        return path
    return Path(HydraConfig.get().runtime.output_dir)


def make_agent(cfg: DictConfig, env, device):
    """Instantiate ``cfg.agent`` (its ``_target_`` and options) for ``env``'s spaces."""
    options = {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items()
               if k not in ("name", "trainer")}
    obs_shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
    return instantiate(options, obs_shapes=obs_shapes, action_dim=int(env.action_space.shape[0]),
                       obs_type=cfg.obs_type, device=device)


def build_trainer(cfg: DictConfig, run_dir: Path | None = None) -> Trainer:
    """Everything a run needs, wired together; the trainer class is ``cfg.agent.trainer``."""
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info(f"Run directory: {run_dir}")
    set_seed(cfg.seed)
    device = resolve_device(cfg.device)
    tasks = [str(t) for t in cfg.suite.task]
    env_fn = partial(make_env, cfg.suite, obs_type=cfg.obs_type)
    demos, env = {}, None
    for i, task in enumerate(tasks):
        env = env_fn(task)
        demos[i] = load_or_collect_demos(cfg, task, env)
        env.close()
    obs_keys = ("pixels",) if cfg.obs_type == "pixels" else ("state",)
    buffer = DemoBuffer(demos, obs_keys, frame_stack=int(cfg.suite.env.get("frame_stack", 1)), seed=cfg.seed)
    log.info(f"{len(buffer)} demo transitions from {sum(map(len, demos.values()))} episodes over {len(tasks)} task(s)")
    agent = make_agent(cfg, env, device)
    evaluator = Evaluator(env_fn, tasks, cfg.eval.num_episodes, cfg.eval.num_envs, cfg.eval.stop_on_success)
    trainer_cls = get_class(cfg.agent.trainer)
    return trainer_cls(cfg, run_dir, agent, evaluator, buffer)
