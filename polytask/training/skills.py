"""Offline trainers of the skill models (SPiRL/SkiLD), one per stage:

1. :class:`SkillPriorTrainer` (``agent=skill_prior``): the skill VAE and prior on windows of the
   suite's play data (made first when missing), scored on held-out play episodes and, in the env, by
   skills sampled from the prior.
2. :class:`SkillPosteriorTrainer` (``agent=skill_posterior``): SkiLD's skill posterior on windows of
   the demos, the skill model of stage 1 loaded frozen.
3. :class:`DiscriminatorTrainer` (``agent=demo_discriminator``): SkiLD's demo discriminator on demo
   states (1) against play states (0), scored by held-out accuracy.

Each stage finds the weights of the stage before it by convention: the skill model is exported to
:func:`skill_model_path` (it depends on the suite's play data, not on the run's task or demos).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from polytask.config import CONFIG_DIR, differences_text, option_differences
from polytask.data.buffer import DemoBuffer
from polytask.data.demos import (
    DatasetError,
    Episode,
    check_compatible,
    dataset_path,
    load_episodes,
    read_metadata,
)
from polytask.data.play import NOT_PLAY_OPTIONS, play_dataset_id, with_intended_actions
from polytask.errors import ConfigError, require_features
from polytask.training import skill_dagger
from polytask.training.checkpoint import save_checkpoint
from polytask.training.demos import frame_stack_of
from polytask.training.inputs import make_agent
from polytask.training.logger import Logger
from polytask.training.offline import OfflineTrainer, WindowTrainer
from polytask.training.run import collect_play, env_factory, load_demo_buffer, make_evaluator, tasks_of
from polytask.training.weights import find_weights, read_weights, skill_model_path

log = logging.getLogger("polytask")


def play_path(cfg: DictConfig) -> Path:
    """Where the suite's play data for the run's obs_type lives (``polytask/<suite>/play-<obs_type>-v0``)."""
    return dataset_path(cfg.data_dir, play_dataset_id(cfg.suite.name, cfg.obs_type))


def play_command(cfg: DictConfig, also: tuple[str, ...] = ()) -> str:
    """The ``collect_play.py`` command that makes the run's play data: with a ``suite.play.<option>=...``
    override for each option whose value differs from the suite's config file (set on the command
    line or by a recipe) and for the options in ``also``. Options the file sets by interpolation
    (``${suite.env.img_size}``) follow what they point to and get none."""
    asked = OmegaConf.to_container(cfg.suite.play, resolve=True)
    stock_file = CONFIG_DIR / "suite" / f"{cfg.suite.name}.yaml"
    stock_node = OmegaConf.load(stock_file).get("play") if stock_file.exists() else None
    stock = {} if stock_node is None else OmegaConf.to_container(stock_node, resolve=False)
    overrides = []
    for key, value in asked.items():
        same = key in stock and (stock[key] == value or OmegaConf.is_interpolation(stock_node, key))
        if key in NOT_PLAY_OPTIONS or (key not in also and same):
            continue
        overrides.append(f"'{'' if key in stock else '+'}suite.play.{key}={json.dumps(value)}'")
    return " ".join([f"python collect_play.py suite={cfg.suite.name} obs_type={cfg.obs_type} seed={cfg.seed} "
                     f"data_dir={cfg.data_dir}", *overrides])


def check_play_options(cfg: DictConfig, path: Path) -> None:
    """Refuse play data made with other ``suite.play`` options than the run asks for (the noise, the
    subtasks, the excluded sequences...), which would otherwise be taken silently. The dataset's
    ``polytask.play`` metadata (written by :func:`polytask.training.run.collect_play`) is compared
    option by option; ``num_episodes`` is not compared (the dataset holds what was made), nor are
    options the data predates.

    Raises:
        DatasetError: naming each differing option (asked, made) and the two ways out: a
            ``data_dir`` of its own, or the ``collect_play.py`` command that remakes it.
    """
    try:
        made = (read_metadata(path).get("polytask") or {}).get("play") or {}
    except (OSError, ValueError):  # unreadable metadata: load_episodes says what is wrong and how to remake it
        return
    asked = OmegaConf.to_container(cfg.suite.play, resolve=True)
    differ = option_differences(asked, made, ignore=("num_episodes",))
    if differ:
        also = tuple({k.split(".", 1)[0] for k in differ})  # the top-level options to set in the command
        raise DatasetError(f"The play data at {path} was made with other options than this run asks for:\n"
                           f"{differences_text(differ, 'suite.play.')}\n"
                           f"Give these options a data_dir of their own (data_dir=<dir> or POLYTASK_DATA_DIR), or "
                           f"delete {path} and remake it with:\n  {play_command(cfg, also)}")


#: which actions the skill stages learn from (``suite.play_action_labels``): the executed ones, or the
#: play generator's intended (noise-free) ones in ``infos["intended_action"]``, where it records them
PLAY_ACTION_LABELS = ("executed", "intended")


def load_or_make_play(cfg: DictConfig, env) -> list[Episode]:
    """Every episode of the suite's play data, made first (:func:`polytask.data.play.collect_play`, with
    ``cfg.play.num_episodes``) when missing and ``cfg.collect_missing_demos`` is true. With
    ``suite.play_action_labels=intended`` each episode's ``action`` is its ``infos["intended_action"]``:
    the states come from the noisy execution, the labels are what the generator meant to do (DART,
    Laskey et al. 2017), so skill models fit the behaviour rather than the injected noise.

    Raises:
        ConfigError: for an unknown ``suite.play_action_labels``.
        DatasetError: if it is missing and may not be made (the message gives the path and the
            ``collect_play.py`` command), the suite has no play data, it was made with other
            ``suite.play`` options (:func:`check_play_options`), the file is corrupted, its shapes do
            not fit ``env``, or intended actions are asked for and it lacks them.
    """
    labels = cfg.suite.get("play_action_labels") or "executed"
    if labels not in PLAY_ACTION_LABELS:
        raise ConfigError(f"suite.play_action_labels={labels!r}: use one of {', '.join(PLAY_ACTION_LABELS)}")
    path, cmd = play_path(cfg), play_command(cfg)
    if not (path / "data" / "metadata.json").exists():
        if not cfg.collect_missing_demos:
            raise DatasetError(f"No play data at {path}. Make it with:\n  {cmd}\n(or leave collect_missing_demos=true "
                               "to have it made first)")
        log.info(f"Play data missing at {path}: making it first ({cmd})")
        collect_play(cfg)
    check_play_options(cfg, path)
    episodes = load_episodes(path, obs_keys=tuple(env.observation_space.spaces), make_cmd=cmd)
    check_compatible(episodes, env.observation_space, env.action_space, frame_stack_of(cfg), str(path))
    if labels == "intended":
        if any("intended_action" not in ep.infos for ep in episodes):
            raise DatasetError(f"The play data at {path} has no intended actions (it was made before they were "
                               f"recorded). Delete it and make it again with:\n  {cmd}\n(or pass "
                               "suite.play_action_labels=executed to learn from the executed actions)")
        with_intended_actions(episodes)
    return episodes


def split_heldout(episodes: list[Episode], fraction: float) -> tuple[list[Episode], list[Episode]]:
    """``(train, heldout)``: the last ``ceil(fraction·n)`` episodes held out (at least one, and at
    least one kept for training). With fewer than 2 episodes both are all of them (a warning says the
    held-out figures are then training figures).

    Raises:
        ConfigError: if ``fraction`` is not in (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"heldout_fraction must be in (0, 1), got {fraction}")
    if len(episodes) < 2:
        log.warning("Only one episode: the held-out figures are measured on the training episode")
        return episodes, episodes
    n = min(max(1, math.ceil(fraction * len(episodes))), len(episodes) - 1)
    return episodes[:-n], episodes[-n:]


def skill_prior_command(cfg: DictConfig) -> str:
    """The ``train.py`` command that trains the skill model a later stage loads."""
    return (f"python train.py agent=skill_prior suite={cfg.suite.name} obs_type={cfg.obs_type} seed={cfg.seed} "
            f"data_dir={cfg.data_dir}")


def split_play_and_make_agent(cfg: DictConfig) -> tuple[list[Episode], list[Episode], Any]:
    """The suite's play data (made first where missing, :func:`load_or_make_play`) split into training
    and held-out episodes (``cfg.heldout_fraction``, :func:`split_heldout`), and the run's agent built
    on its task's env."""
    env = env_factory(cfg)(tasks_of(cfg)[0])
    try:
        train, heldout = split_heldout(load_or_make_play(cfg, env), float(cfg.heldout_fraction))
        return train, heldout, make_agent(cfg, env)
    finally:
        env.close()


class SkillPriorTrainer(WindowTrainer):
    """Stage 1: trains the skill VAE and prior on windows of the play data (all but the last
    ``cfg.heldout_fraction`` of its episodes). Each evaluation runs the skills sampled from the prior
    in the run's task (``eval.csv``) and scores ``cfg.heldout_windows`` fixed windows of the held-out
    episodes (``heldout.csv``: reconstruction error, KL, prior NLL; also in ``results.json``).
    The weights go to :func:`skill_model_path`."""

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator, buffer: DemoBuffer,
                 heldout: DemoBuffer, train: list[Episode] | None = None):
        super().__init__(cfg, run_dir, agent, evaluator, buffer)
        n = min(int(cfg.heldout_windows), len(heldout))
        self.heldout_batch = heldout.get_windows(np.random.default_rng(0).choice(len(heldout), n, replace=False),
                                                 *agent.window)
        self.train_episodes = train  # the play episodes of the buffer (DAgger rounds add theirs to them)
        self.dagger_starts = skill_dagger.round_starts(cfg, skill_dagger.check_dagger(cfg))  # one per round
        if self.dagger_starts and not hasattr(agent, "encode_skill"):
            raise ConfigError(f"dagger.rounds needs a skill model (agent=skill_prior); agent={cfg.agent.name} has no "
                              "skills to act with: use dagger.rounds=0")
        self.dagger_episodes: list[list[Episode]] = []  # per round done

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> SkillPriorTrainer:
        """The play data (made first where missing), split into training and held-out episodes, and
        the agent with its normaliser fitted on the training states.

        Raises:
            ConfigError: for ``obs_type`` other than ``features``, a bad ``heldout_fraction``, or bad
                ``dagger`` options (:func:`polytask.training.skill_dagger.check_dagger`).
            DatasetError: as :func:`load_or_make_play`.
        """
        require_features(cfg.agent.name, cfg.obs_type)
        skill_dagger.check_dagger(cfg)  # before any play data is made
        train, heldout, agent = cls.split_data_and_make_agent(cfg)
        buffers = [DemoBuffer({0: eps}, ("state",), seed=cfg.seed) for eps in (train, heldout)]
        log.info(f"Training data: {len(buffers[0])} steps in {len(train)} episodes for training, {len(buffers[1])} in "
                 f"{len(heldout)} held out")
        agent.fit_dataset(buffers[0].obs["state"], buffers[0].action)
        return cls(cfg, run_dir, agent, make_evaluator(cfg), *buffers, train=train)

    @classmethod
    def split_data_and_make_agent(cls, cfg: DictConfig) -> tuple[list[Episode], list[Episode], Any]:
        """The training and held-out episodes and the agent: the play data's
        (:func:`split_play_and_make_agent`)."""
        return split_play_and_make_agent(cfg)

    def heldout_metrics(self) -> dict[str, float]:
        """The agent's loss terms on the fixed held-out windows (``agent.score``), in eval mode."""
        self.agent.train(False)
        try:
            return self.agent.score(self.heldout_batch)
        finally:
            self.agent.train(True)

    def evaluate(self, logger: Logger, final: bool) -> dict[str, float]:
        """The env evaluation of :class:`Trainer`, then the held-out metrics (logged as ``heldout``,
        and kept with the evaluation as ``heldout_<name>``)."""
        metrics = super().evaluate(logger, final)
        heldout = self.heldout_metrics()
        logger.log("heldout", heldout, self.step)
        self.last_eval = {**metrics, **{f"heldout_{k}": v for k, v in heldout.items()}}
        return self.last_eval

    def weights_file(self) -> Path:
        return skill_model_path(self.cfg)

    def train_step(self) -> dict[str, float]:
        """One update on play windows; first, when a DAgger round is due
        (:func:`polytask.training.skill_dagger.round_starts`), that round's episodes are made and added
        to the training data (its figures are returned with the update's, ``dagger_*``)."""
        done = len(self.dagger_episodes)
        if done < len(self.dagger_starts) and self.step >= self.dagger_starts[done]:
            episodes, metrics = skill_dagger.collect_round(self.cfg, self.run_dir, self.agent, done + 1)
            self.dagger_episodes.append(episodes)
            self._rebuild_buffer()
            return {**super().train_step(), **metrics}
        return super().train_step()

    def _rebuild_buffer(self) -> None:
        """The training buffer over the play episodes and every DAgger round's, its sampling RNG kept."""
        rng = self.buffer.state_dict()
        episodes = self.train_episodes + [ep for eps in self.dagger_episodes for ep in eps]
        self.buffer = DemoBuffer({0: episodes}, ("state",), seed=self.cfg.seed)
        self.buffer.load_state_dict(rng)
        log.info(f"Training data: {len(self.buffer)} steps in {len(episodes)} episodes "
                 f"({len(self.dagger_episodes)} DAgger round(s))")

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "dagger_rounds_done": len(self.dagger_episodes)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """The DAgger rounds done (read back from the run dir), then the buffer's sampling RNG."""
        done = int(state.get("dagger_rounds_done", 0))
        if done:
            self.dagger_episodes = skill_dagger.load_rounds(self.cfg, self.run_dir, done)
            self._rebuild_buffer()
        super().load_extra_state(state)


class SkillPosteriorTrainer(WindowTrainer):
    """Stage 2 (SkiLD): trains the skill posterior on windows of the demos (collected first where
    missing), the skill model of stage 1 frozen inside the agent: ``cfg.skill_model``, or the skill
    model of the same suite, obs_type and seed (:func:`skill_model_path`). Evaluation runs skills
    drawn from the posterior in the run's task."""

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> SkillPosteriorTrainer:
        """As :meth:`WindowTrainer.from_config`, then the skill model loaded into the agent.

        Raises:
            ConfigError: if the skill model file is missing (the message gives the command that trains
                it), holds another agent's weights, or does not fit the agent's sizes.
        """
        path = Path(cfg.skill_model) if cfg.get("skill_model") else \
            find_weights(skill_model_path(cfg), "pass skill_model=<file>")
        saved = read_weights(path, how_to_make=f"{skill_prior_command(cfg)}\n  or pass skill_model=<path>")
        if saved.get("agent_name") != "skill_prior":
            raise ConfigError(f"{path} holds {saved.get('agent_name')} weights, not a skill model (agent=skill_prior)")
        trainer = super().from_config(cfg, run_dir)  # the demos are collected only once the skill model is found
        try:
            trainer.agent.load_skill_model(saved["agent"])
        except ValueError as e:
            theirs = {k: saved["config"]["agent"].get(k) for k in ("z_dim", "horizon", "hidden_dim", "hidden_depth")}
            ours = {k: cfg.agent.get(k) for k in theirs}
            raise ConfigError(f"The skill model at {path} was trained with {theirs}, but this run has {ours}: "
                              "give this run the skill model's sizes (agent.<name>=...)") from e
        log.info(f"Skill model (frozen) from {path}")
        return trainer


def labelled_batch(demo: DemoBuffer, play: DemoBuffer, batch_size: int) -> dict[str, torch.Tensor]:
    """Half a batch of demo states (label 1) and half of play states (label 0): ``state`` float32
    (B, D), ``label`` float32 (B,)."""
    d, p = demo.sample(batch_size // 2), play.sample(batch_size - batch_size // 2)
    return {"state": torch.cat([d["state"], p["state"]]),
            "label": torch.cat([torch.ones(len(d["state"])), torch.zeros(len(p["state"]))])}


def _states(episodes: list[Episode]) -> np.ndarray:
    """The states the agent acted from in ``episodes``, float32 (N, D) (final observations left out)."""
    return np.concatenate([ep.obs["state"][:len(ep)] for ep in episodes]).astype(np.float32)


class DiscriminatorTrainer(OfflineTrainer):
    """Stage 3 (SkiLD): trains the demo discriminator on balanced batches of demo states (label 1,
    collected first where missing) and play states (label 0, made first where missing). Each
    evaluation scores the held-out states (the last ``cfg.heldout_fraction`` of the demos and of the
    play episodes, at most ``cfg.heldout_windows`` states of each): ``eval.csv`` and
    ``results.json`` hold the balanced accuracy, BCE and mean D on each side; ``best.pt`` is the
    most accurate. No env is run: the discriminator does not act."""

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, demo: DemoBuffer, play: DemoBuffer,
                 heldout: dict[str, torch.Tensor]):
        super().__init__(cfg, run_dir, agent, None, demo)
        self.play, self.heldout = play, heldout

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> DiscriminatorTrainer:
        """Demos and play data, each split into training and held-out episodes; the agent with its
        normaliser fitted on all training states.

        Raises:
            ConfigError: for ``obs_type`` other than ``features``, or a bad ``heldout_fraction``.
            DatasetError: for missing data that may not be made (as :func:`load_or_make_play`).
        """
        require_features(cfg.agent.name, cfg.obs_type)
        _, demos = load_demo_buffer(cfg)
        play, play_out, agent = split_play_and_make_agent(cfg)
        splits = {i: split_heldout(eps, float(cfg.heldout_fraction)) for i, eps in demos.items()}
        demo_buffer = DemoBuffer({i: s[0] for i, s in splits.items()}, ("state",), seed=cfg.seed)
        play_buffer = DemoBuffer({0: play}, ("state",), seed=cfg.seed + 1)
        agent.fit_dataset(np.concatenate([demo_buffer.obs["state"], play_buffer.obs["state"]]))
        rng, n = np.random.default_rng(0), int(cfg.heldout_windows)
        held = [_states([ep for s in splits.values() for ep in s[1]]), _states(play_out)]
        held = [x[rng.choice(len(x), min(n, len(x)), replace=False)] for x in held]
        heldout = {"state": torch.from_numpy(np.concatenate(held)),
                   "label": torch.cat([torch.ones(len(held[0])), torch.zeros(len(held[1]))])}
        log.info(f"Discriminator: {len(demo_buffer)} demo and {len(play_buffer)} play states for training; "
                 f"{len(held[0])} and {len(held[1])} held out")
        return cls(cfg, run_dir, agent, demo_buffer, play_buffer, heldout)

    def train_step(self) -> dict[str, float]:
        return self.agent.update(labelled_batch(self.buffer, self.play, self.cfg.batch_size), self.step)

    def evaluate(self, logger: Logger, final: bool) -> dict[str, float]:
        """Score the held-out states (see the class docstring); ``best.pt`` keeps the most accurate."""
        self.agent.train(False)
        metrics = self.agent.score(self.heldout)
        self.agent.train(True)
        logger.log("eval", metrics, self.step)
        self.last_eval = metrics
        score = (metrics["accuracy"], -metrics["bce"])
        if score > self.best_score:
            self.best_score = score
            save_checkpoint(self.run_dir, self.state(), "best")
        return metrics

    def report(self) -> None:
        """Print the last held-out scores and write ``results.json``."""
        if not self.last_eval:
            return
        log.info(f"Held-out discriminator scores at step {self.step}: "
                 + ", ".join(f"{k} {v:.4f}" for k, v in self.last_eval.items()))
        (self.run_dir / "results.json").write_text(json.dumps({"step": self.step, **self.last_eval}, indent=2))

    def extra_state(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "play_buffer": self.play.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.play.load_state_dict(state["play_buffer"])
