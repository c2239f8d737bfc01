"""Offline trainer of EXTRACT's skill model (``agent=extract_skill``) on the skill segments of the
suite's labelled play data (``extract_skills.py``; made first, with the run's ``extract`` options,
when missing), or with ``finetune_on=demos`` on the run's demos labelled with those skills
(:func:`polytask.skills.extract.label_like`), starting from the play-trained model."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from polytask.config import differences_text, option_differences
from polytask.data.demos import DatasetError, load_episodes, read_metadata, write_dataset
from polytask.errors import ConfigError, require_features
from polytask.skills.extract import (
    discover_skills,
    extract_dataset_id,
    extract_path,
    label_like,
    labelled_episodes,
    true_labels,
)
from polytask.skills.report import write_report
from polytask.skills.segments import SegmentBuffer
from polytask.training.inputs import make_agent
from polytask.training.logger import Logger
from polytask.training.offline import OfflineTrainer
from polytask.training.run import env_factory, load_demo_buffer, make_evaluator, tasks_of
from polytask.training.skills import load_or_make_play, split_heldout
from polytask.training.weights import play_weights_path, weights_path

log = logging.getLogger("polytask")


def extract_command(cfg: DictConfig) -> str:
    """The ``extract_skills.py`` command that makes the run's labelled play data."""
    return (f"python extract_skills.py suite={cfg.suite.name} obs_type={cfg.obs_type} seed={cfg.seed} "
            f"data_dir={cfg.data_dir}")


def load_or_discover(cfg: DictConfig) -> tuple[list, dict]:
    """The labelled play episodes and the discovery options they were made with, discovered first
    (:func:`polytask.skills.extract.discover`) when missing and ``cfg.collect_missing_demos``.

    Raises:
        DatasetError: if they are missing and may not be made (the message gives the command), or were
            discovered with other options (:func:`check_extract_options`).
    """
    path, cmd = extract_path(cfg), extract_command(cfg)
    if not (path / "data" / "metadata.json").exists():
        if not cfg.collect_missing_demos:
            raise DatasetError(f"No skill-labelled play data at {path}. Make it with:\n  {cmd}")
        log.info(f"Skill-labelled play data missing at {path}: discovering skills first ({cmd})")
        discover(cfg)
    options = read_metadata(path).get("polytask", {}).get("extract", {})
    check_extract_options(cfg, path, options)
    return load_episodes(path, obs_keys=("state",), make_cmd=cmd), options


#: ``extract`` options that only score the discovered skills (quality.json), not what is labelled
SCORING_OPTIONS = ("label_key", "label_transform")


def check_extract_options(cfg: DictConfig, path: Path, made: dict) -> None:
    """Refuse skill-labelled play data discovered with other ``extract`` options than the run asks for
    (another ``k``, window, embedding...), which would otherwise be taken silently. Options that only
    score the skills and options the data predates are not compared.

    Raises:
        DatasetError: naming each differing option (asked, made) and three ways out: the data's own
            options, a ``data_dir`` of its own, or the ``extract_skills.py`` command that remakes it.
    """
    differ = option_differences(OmegaConf.to_container(cfg.extract, resolve=True), made, ignore=SCORING_OPTIONS)
    if differ:
        theirs = " ".join(f"'extract.{k}={json.dumps(m)}'" for k, (_, m) in differ.items())
        ours = " ".join(f"'extract.{k}={json.dumps(a)}'" for k, (a, _) in differ.items())
        raise DatasetError(f"The skill-labelled play data at {path} was discovered with other options than this run "
                           f"asks for:\n{differences_text(differ, 'extract.')}\nUse the data's options ({theirs}), "
                           f"give these options a data_dir of their own (data_dir=<dir> or POLYTASK_DATA_DIR), or "
                           f"delete {path} and discover it again with:\n  {extract_command(cfg)} {ours}")


def discover(cfg) -> Path:
    """Run skill discovery on the run's play data (made first where missing, as the skill-model
    trainers do) with the options of ``cfg.extract``; write the labelled dataset
    (:func:`polytask.skills.extract.extract_dataset_id`) and, in its folder, ``segments.csv``, ``clusters.png`` and
    ``quality.json`` (:func:`polytask.skills.report.write_report`). Returns the dataset folder."""
    opts = cfg.extract
    env = env_factory(cfg)(tasks_of(cfg)[0])
    try:
        t = time.perf_counter()
        episodes = load_or_make_play(cfg, env)
        load_seconds = time.perf_counter() - t
    finally:
        env.close()
    embedding = OmegaConf.to_container(opts.embedding, resolve=True)
    found = discover_skills(episodes, int(opts.k), int(opts.median_window), int(opts.min_len), int(opts.max_len),
                            bool(opts.standardize), int(cfg.seed), embedding)
    found.seconds = {"load": load_seconds, **found.seconds}
    t = time.perf_counter()
    options = OmegaConf.to_container(opts, resolve=True)
    ds_id = extract_dataset_id(cfg.suite.name, cfg.obs_type)
    steps = sum(len(ep) for ep in episodes)
    kept = sum(len(s) for s in found.segments)
    path = write_dataset(cfg.data_dir, ds_id, labelled_episodes(episodes, found), env=None,
                         algorithm_name="polytask EXTRACT skill discovery",
                         description=f"{cfg.suite.name} play data with EXTRACT skill labels ({len(found.segments)} "
                                     f"segments, {kept}/{steps} steps)",
                         extra_metadata={"suite": cfg.suite.name, "obs_type": cfg.obs_type, "seed": int(cfg.seed),
                                         "extract": options, "segments": len(found.segments), "steps": steps,
                                         "kept_steps": kept})
    found.seconds["write"] = time.perf_counter() - t
    truth = true_labels(episodes, str(opts.label_key or ""), str(opts.label_transform))
    report = write_report(path, episodes, found, truth, int(opts.k), options)
    log.info(f"{len(found.segments)} skill segments ({kept} of {steps} steps) -> {path}\n{report}")
    return path


def demo_segments(cfg: DictConfig, play: list, options: dict) -> tuple[list, list]:
    """The run's demos (collected first where missing) labelled with the skills of the labelled ``play``
    episodes (:func:`label_like`, with the discovery ``options`` they were made with, the run's
    ``extract`` options where those lack one), split per task into training and held-out episodes:
    ``(train, heldout)``."""
    opts = {**OmegaConf.to_container(cfg.extract, resolve=True), **options}
    _, demos = load_demo_buffer(cfg)
    splits = [split_heldout(label_like(play, eps, int(opts["median_window"]), int(opts["min_len"]),
                                       int(opts["max_len"]), bool(opts["standardize"]), int(cfg.seed),
                                       opts["embedding"]), float(cfg.heldout_fraction)) for eps in demos.values()]
    return [ep for s in splits for ep in s[0]], [ep for s in splits for ep in s[1]]


class ExtractSkillTrainer(OfflineTrainer):
    """Trains the skill model on segment batches of all but the last ``cfg.heldout_fraction`` of the
    labelled play episodes. Each evaluation runs skills drawn from the priors in the run's task
    (``eval.csv``) and scores up to ``cfg.heldout_windows`` held-out segments (``heldout.csv``,
    ``heldout_*`` in ``results.json``). The weights go to ``<data_dir>/weights/extract_skill/<suite>/
    play-<obs_type>-seed<seed>[-<settings>].pt``: they depend on the play data, not the run's task.

    With ``finetune_on=demos`` (EXTRACT's fine-tuning on the target task): the agent starts as the
    play-trained model (its input ``extract_model``, state normaliser included) and trains on the
    segments of the run's demos (:func:`demo_segments`); the weights go to the demos convention
    (:func:`polytask.training.weights.weights_path`: ``<tasks>-<obs_type>-d<N>-seed<seed>.pt``)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator, buffer: SegmentBuffer,
                 heldout: SegmentBuffer):
        super().__init__(cfg, run_dir, agent, evaluator, buffer)
        self.heldout_batch = heldout.get(list(range(min(len(heldout), int(cfg.heldout_windows)))))

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> ExtractSkillTrainer:
        """The labelled play data (discovered first where missing), split into training and held-out
        episodes, and the agent with its normaliser fitted on the training segments' states.

        Raises:
            ConfigError: for ``obs_type`` other than ``features``, or an ``agent.num_skills`` other than
                the number of clusters the data was labelled with.
            DatasetError: as :func:`load_or_discover`.
        """
        require_features(cfg.agent.name, cfg.obs_type)
        episodes, options = load_or_discover(cfg)
        if "k" in options and int(options["k"]) != int(cfg.agent.num_skills):
            raise ConfigError(f"the skill-labelled play data at {extract_path(cfg)} has {options['k']} skills but "
                              f"agent.num_skills={cfg.agent.num_skills}: set extract.k={options['k']} (or delete the "
                              "dataset to discover it again with the run's extract options)")
        finetune = cfg.agent.finetune_on == "demos"
        if finetune:
            train, heldout = demo_segments(cfg, episodes, options)
        else:
            train, heldout = split_heldout(episodes, float(cfg.heldout_fraction))
        try:
            buffers = [SegmentBuffer(train, seed=cfg.seed)]
        except DatasetError as e:
            if not finetune:
                raise
            raise DatasetError(f"the run's demos, labelled with the play data's skills, hold no run of one skill "
                               f"{options.get('min_len')}-{options.get('max_len')} steps long (the labelled play "
                               f"data's extract.min_len and max_len): make more demos, or discover the play data's "
                               f"skills again with other extract options ({e})") from e
        try:
            buffers.append(SegmentBuffer(heldout, seed=cfg.seed + 1))
        except DatasetError:
            log.warning("The held-out episodes hold no skill segment: the held-out figures are measured on the "
                        "training segments (raise heldout_fraction or make more play data or demos)")
            buffers.append(buffers[0])
        env = env_factory(cfg)(tasks_of(cfg)[0])
        try:
            agent = make_agent(cfg, env)
        finally:
            env.close()
        if not finetune:  # a fine-tuned model keeps the play data's normaliser
            agent.fit_dataset(buffers[0].states())
        log.info(f"Skill segments{' of the demos' if finetune else ''}: {len(buffers[0])} for training, "
                 f"{len(buffers[1])} held out")
        return cls(cfg, run_dir, agent, make_evaluator(cfg), *buffers)

    def evaluate(self, logger: Logger, final: bool) -> dict[str, float]:
        """The env evaluation of :class:`Trainer`, then the held-out segment losses (``heldout``)."""
        metrics = super().evaluate(logger, final)
        self.agent.train(False)
        try:
            heldout = self.agent.score(self.heldout_batch)
        finally:
            self.agent.train(True)
        logger.log("heldout", heldout, self.step)
        self.last_eval = {**metrics, **{f"heldout_{k}": v for k, v in heldout.items()}}
        return self.last_eval

    def weights_file(self) -> Path:
        if self.cfg.agent.finetune_on == "demos":
            return weights_path(self.cfg)
        return play_weights_path(self.cfg, "extract_skill", own=True)
