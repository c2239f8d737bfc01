"""The ``evaluate.py`` driver: an exported weights file scored on its own suite and tasks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from polytask.training.evaluator import results_table
from polytask.training.run import env_factory, make_evaluator, tasks_of
from polytask.training.weights import load_policy, read_weights
from polytask.utils import resolve_device, set_seed

log = logging.getLogger("polytask")


def evaluate_weights(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Score the exported weights file ``cfg.policy`` on the suite, task(s) and obs_type it was
    trained on (from the file's own config), with ``cfg.eval``'s episodes: the same eval seeds as
    training runs, so two files (a base and its decorated version) meet the same episodes.

    ``cfg.agent`` (``+agent.<option>=...``) replaces options of the file's agent config before the
    agent is rebuilt, for options about how it acts (``eval_mean_skill``: the mean skill rather than
    drawn ones); the options are checked as a training run's are.

    Stochastic policies (BeT's sampled bins) are seeded with the run's seed. Writes ``results.json``
    (``{"policy", "num_episodes", "agent" (the options replaced), <task>/success, <task>/return, ...,
    success, return}``) to ``run_dir`` and returns the metrics.

    Raises:
        ConfigError: if the file is missing, not an exported weights file, or its agent cannot be
            rebuilt on its own env (see :func:`load_policy`), or an option in ``cfg.agent`` is not one of
            the agent's or has a wrong value.
    """
    path, device = Path(cfg.policy), resolve_device(cfg.device)
    saved = read_weights(path, device, how_to_make=(
        "python train.py  (a finished run's log ends with 'Weights: <file>'; pass that file as policy=<file>, "
        "e.g. policy=data/weights/bc/metaworld/button-press-features-d10-seed1.pt)"))
    changed = OmegaConf.to_container(cfg.agent, resolve=True) if cfg.get("agent") else {}
    if changed:
        saved["config"]["agent"] = {**saved["config"]["agent"], **changed}  # checked as the agent is built
    run_cfg = OmegaConf.create(saved["config"])
    run_cfg.eval = cfg.eval
    tasks = tasks_of(run_cfg)
    env = env_factory(run_cfg)(tasks[0])
    try:
        agent = load_policy(path, env, device, saved=saved)
    finally:
        env.close()
    evaluator = make_evaluator(run_cfg, agent.wrap_env)
    set_seed(int(run_cfg.get("seed", 1)))
    video = run_dir / "videos" if cfg.eval.video == "final" else None
    metrics = evaluator.run(lambda obs: agent.act(obs, eval_mode=True), video)
    log.info(f"{path} ({run_cfg.agent.name}{', ' + str(changed) if changed else ''}), {evaluator.num_episodes} "
             "episodes per task:\n" + results_table(tasks, metrics))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(
        {"policy": str(path), "num_episodes": evaluator.num_episodes, "agent": changed, **metrics}, indent=2))
    return metrics
