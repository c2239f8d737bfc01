"""Offline trainer of the flat prior (``agent=flat_prior``): SPiRL's skill-prior trainer with one-step
windows, on the suite's play data (made first when missing) or, with ``prior_data=demos``, on the run's
demos (collected first when missing). Its weights go to :func:`polytask.training.weights.flat_prior_path`,
where ``agent=bc_sac`` looks for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from polytask.data.demos import Episode
from polytask.training.inputs import make_agent
from polytask.training.run import env_factory, load_demo_buffer, tasks_of
from polytask.training.skills import SkillPriorTrainer, split_heldout
from polytask.training.weights import flat_prior_path


class FlatPriorTrainer(SkillPriorTrainer):
    """Trains the flat prior on single steps of all but the last ``cfg.heldout_fraction`` of the
    episodes (of each task's demos, with ``prior_data=demos``). Each evaluation runs the mean action in
    the run's task (``eval.csv``) and scores ``cfg.heldout_windows`` fixed held-out steps (``heldout.csv``:
    ``nll``, ``mse``; ``heldout_*`` in ``results.json``)."""

    @classmethod
    def split_data_and_make_agent(cls, cfg: DictConfig) -> tuple[list[Episode], list[Episode], Any]:
        """The play data's split (:meth:`SkillPriorTrainer.split_data_and_make_agent`), or with
        ``prior_data=demos`` each task's demos split alike.

        Raises:
            ConfigError: for another ``prior_data`` (:func:`flat_prior_path`).
        """
        flat_prior_path(cfg)  # checks prior_data
        if cfg.prior_data == "play":
            return super().split_data_and_make_agent(cfg)
        _, demos = load_demo_buffer(cfg)
        splits = [split_heldout(eps, float(cfg.heldout_fraction)) for eps in demos.values()]
        env = env_factory(cfg)(tasks_of(cfg)[0])
        try:
            agent = make_agent(cfg, env)
        finally:
            env.close()
        return [ep for s in splits for ep in s[0]], [ep for s in splits for ep in s[1]], agent

    def weights_file(self) -> Path:
        return flat_prior_path(self.cfg, own=True)
