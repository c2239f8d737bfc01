"""The trainer base: evaluation, checkpoints, logging and resume, written once for every regime.
Subclasses implement :meth:`Trainer.train_step` and, if they keep state of their
own (replay buffers, sampling RNGs), :meth:`Trainer.extra_state` / :meth:`Trainer.load_extra_state`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from polytask.errors import PolyTaskError
from polytask.training.checkpoint import checkpoint_dir, load_checkpoint, save_checkpoint
from polytask.training.evaluator import Evaluator, results_table
from polytask.training.logger import Logger, MetricWindow
from polytask.training.weights import weights_path
from polytask.utils import Metric, atomic_torch_save, rng_state, set_rng_state

log = logging.getLogger("polytask")


class NonFiniteLossError(PolyTaskError, FloatingPointError):
    """A training metric became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Runs ``cfg.num_train_steps`` training steps with periodic eval, logging and checkpoints.

    Resume: if ``<run_dir>/checkpoints/latest.pt`` exists (and ``cfg.resume`` is not ``never``), the
    agent, optimiser, RNG states, step counter and subclass state are restored and the run
    continues from that step. A finished run reports its last evaluation and returns.

    Args:
        cfg: the resolved run config (never mutated).
        run_dir: the run directory (config, ``tb/``, CSVs, ``videos/``, ``checkpoints/``).
        agent: object with ``update``, ``act``, ``state_dict``, ``load_state_dict``, ``train``.
        evaluator: the :class:`Evaluator` over the run's tasks.
    """

    #: :mod:`fnmatch` patterns of :meth:`train_step` metrics that are running totals or counters: a
    #: ``train`` row logs their last value, and of every other metric its mean over the steps since
    #: the last log that reported it (:class:`MetricWindow`).
    cumulative_metrics: tuple[str, ...] = ()
    #: steps one :meth:`train_step` takes (the online trainer with ``num_envs`` envs: one env step each);
    #: logs, evaluations and checkpoints happen at the first step that reaches a multiple of their period
    steps_per_train_step: int = 1

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator: Evaluator):
        self.cfg, self.run_dir, self.agent, self.evaluator = cfg, Path(run_dir), agent, evaluator
        self.step = 0
        self.best_score = (-math.inf, -math.inf)  # (success, return) of the best evaluation
        self.last_eval: dict[str, float] = {}

    # -- hooks for subclasses -------------------------------------------------------------------
    def train_step(self) -> dict[str, Metric]:
        """One training step; returns metrics to log: numbers, or 0-d tensors (agents' update metrics,
        converted and checked for NaN/inf when they are logged, see :class:`MetricWindow`)."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Subclass state to checkpoint beside the agent's (e.g. the replay buffer)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved, from the whole checkpoint ``state``."""

    def eval_context(self) -> dict[str, float]:
        """Counters logged with every evaluation besides the step (the online trainer's env ``frames``,
        which differ from steps when an agent step runs several env steps). Default: none."""
        return {}

    def policy(self, obs: dict):
        """Evaluation policy: the agent's mean action (``obs`` also holds ``task_id``)."""
        return self.agent.act(obs, eval_mode=True)

    # -- shared machinery -----------------------------------------------------------------------
    def weights_state(self) -> dict[str, Any]:
        """The agent and what is needed to use it, as exported weights files and ``best.pt`` hold it:
        ``agent`` (its ``state_dict``), ``agent_name``, ``step``, ``config`` (resolved) and ``eval``
        (the last evaluation's metrics)."""
        return {"agent": self.agent.state_dict(), "agent_name": self.cfg.agent.name, "step": self.step,
                "config": OmegaConf.to_container(self.cfg, resolve=True), "eval": self.last_eval}

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs (``latest.pt``): agent, step, best score, last eval, RNG
        states, the resolved config and :meth:`extra_state` (which may write files of its own beside
        the checkpoint, e.g. replay chunks)."""
        return {"agent": self.agent.state_dict(), "step": self.step, "best_score": self.best_score,
                "last_eval": self.last_eval, "rng": rng_state(),
                "config": OmegaConf.to_container(self.cfg, resolve=True), **self.extra_state()}

    def resume(self) -> bool:
        """Restore ``latest.pt`` if present; returns whether it did."""
        path = checkpoint_dir(self.run_dir) / "latest.pt"
        if self.cfg.resume == "never" or not path.exists():
            return False
        state = load_checkpoint(path)
        self.agent.load_state_dict(state["agent"])
        self.step, self.best_score, self.last_eval = state["step"], tuple(state["best_score"]), state["last_eval"]
        set_rng_state(state["rng"])
        self.load_extra_state(state)
        log.info(f"Resumed from {path} at step {self.step}")
        return True

    def evaluate(self, logger: Logger, final: bool) -> dict[str, float]:
        """Run ``cfg.eval`` episodes with :meth:`policy`, log them, and write ``best.pt``
        (:meth:`weights_state`) when the (success, return) score beats the best so far. Videos:
        every eval or only the ``final`` one (``cfg.eval.video``). Returns the eval metrics (success
        rate, return, ...)."""
        video = self.cfg.eval.video == "all" or (final and self.cfg.eval.video == "final")
        self.agent.train(False)
        start = time.perf_counter()
        metrics = self.evaluator.run(self.policy, self.run_dir / "videos" if video else None, self.step)
        self.agent.train(True)
        metrics["eval_seconds"] = time.perf_counter() - start
        metrics.update(self.eval_context())
        logger.log("eval", metrics, self.step)
        self.last_eval = metrics
        score = (metrics["success"], metrics["return"])  # success first; return for suites without one
        if score > self.best_score:
            self.best_score = score
            save_checkpoint(self.run_dir, self.weights_state(), "best")
        return metrics

    def run(self) -> dict[str, float]:
        """Train to ``cfg.num_train_steps``; returns the final evaluation metrics.

        Raises:
            NonFiniteLossError: when a metric becomes NaN/inf: found at the next log, evaluation or
                checkpoint, whichever comes first; nothing is evaluated or saved after it.
        """
        self.resume()
        total = int(self.cfg.num_train_steps)
        logger = Logger(self.run_dir, start_step=self.step)
        try:
            if self.step >= total and self.last_eval:
                log.info(f"Run in {self.run_dir} already finished at step {self.step}")
            else:
                self._loop(logger, total)
        finally:
            logger.close()
        self.report()
        self.export_weights()
        return self.last_eval

    def weights_file(self) -> Path:
        """Where :meth:`export_weights` writes: :func:`weights_path` of the run (trainers whose weights
        do not depend on the run's task, such as a skill model trained on play data, name another)."""
        return weights_path(self.cfg)

    def export_weights(self) -> Path:
        """Write the final agent weights (:meth:`weights_state`) to :meth:`weights_file` (where
        ``load_bc`` and snapshot experts look for them)."""
        path = self.weights_file()
        atomic_torch_save(self.weights_state(), path)
        log.info(f"Weights: {path}")
        return path

    def _loop(self, logger: Logger, total: int) -> None:
        cfg = self.cfg
        self.agent.train(True)
        busy, s0 = 0.0, self.step  # seconds spent in train_step since the last log
        window = MetricWindow(self.cumulative_metrics)  # the metrics since the last log
        with logging_redirect_tqdm(), tqdm(total=total, initial=self.step, desc="train", unit="step",
                                           dynamic_ncols=True, mininterval=1.0) as bar:
            if self.step == 0 and cfg.eval.get("at_start", False):
                self.evaluate(logger, False)  # the starting policy (e.g. a residual run's base) on the same episodes
            while self.step < total:
                t0 = time.perf_counter()
                metrics = self.train_step()
                busy += time.perf_counter() - t0
                window.add(metrics)
                # numbers are checked at once; tensors (agents' update metrics) once per log and
                # before anything is evaluated or saved, without a host sync per update
                bad = {k: v for k, v in metrics.items() if not torch.is_tensor(v) and not math.isfinite(v)}
                if bad:
                    raise NonFiniteLossError(self.diverged_message(f"{bad}"))
                before, self.step = self.step, self.step + self.steps_per_train_step
                bar.update(self.steps_per_train_step)
                final = self.step >= total
                log = _reached(before, self.step, cfg.log_every_steps)
                evaluate = _reached(before, self.step, cfg.eval_every_steps) or final
                save = _reached(before, self.step, cfg.save_every_steps) or final
                if log or evaluate or save:
                    self._check_finite(window, s0)
                if log:
                    row = {**window.pop(), "steps_per_s": (self.step - s0) / max(busy, 1e-9)}
                    busy, s0 = 0.0, self.step
                    logger.log("train", row, self.step, console=False)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in row.items()}, refresh=False)
                if evaluate:
                    self.evaluate(logger, final)
                if save:
                    save_checkpoint(self.run_dir, self.state())

    def _check_finite(self, window: MetricWindow, since: int) -> None:
        """Raise :class:`NonFiniteLossError` if a metric of the steps after ``since`` was NaN/inf."""
        bad = window.nonfinite()
        if bad:
            raise NonFiniteLossError(self.diverged_message(f"{bad} (means over the window)",
                                                           f"in steps {since + 1}..{self.step}"))

    def diverged_message(self, what: str, when: str | None = None) -> str:
        """The :class:`NonFiniteLossError` message for ``what`` (the non-finite metrics or action)
        seen ``when`` (default: in the step after ``self.step``): where the run stopped, which
        checkpoint is kept, what to try."""
        latest = checkpoint_dir(self.run_dir) / "latest.pt"
        kept = (f"The last good checkpoint {latest} is kept; lower the learning rate or check the data, then re-run "
                "the command to resume from it." if latest.exists() else
                "No checkpoint was written yet; lower the learning rate or check the data, then re-run the command.")
        return f"{what} {when or f'at step {self.step + 1}'}: training stopped. {kept}"

    def report(self) -> None:
        """Print the last evaluation as a per-task table and write ``results.json``."""
        m = self.last_eval
        if not m:
            return
        log.info(f"Evaluation at step {self.step} ({self.evaluator.num_episodes} episodes per task):\n"
                 + results_table(self.evaluator.tasks, m))
        (self.run_dir / "results.json").write_text(json.dumps({"step": self.step, **m}, indent=2))


def _reached(before: int, after: int, period: int) -> bool:
    """Whether a multiple of ``period`` lies in ``(before, after]`` (for one step: ``after % period == 0``)."""
    return after // period > before // period
