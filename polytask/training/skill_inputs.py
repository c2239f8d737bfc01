"""Run inputs of the skill-space RL agents (SPiRL, SkiLD, EXTRACT) and of SAC from a flat prior (``bc_sac``):
the weights of the earlier stages,
found by convention. Missing ones are made first by the run's builder, which runs the stage (the log
says so; :func:`polytask.training.build.make_missing_stages`), or with ``collect_missing_demos=false``
an error gives the command that makes them.

Stages and where their weights are looked for (the stage's own default file, or the one file of
that stage with other settings, :func:`polytask.training.weights.find_weights`):

- ``skill_prior`` (input ``skill_model``, or ``skill_model=<file>``) and ``extract_skill`` (input
  ``extract_model``, or ``extract_model=<file>``): ``<data_dir>/weights/<stage>/<suite>/
  play-<obs_type>-seed<seed>.pt`` (they depend on the play data only, not on the run's task or demos);
- ``extract_skill`` fine-tuned on the run's demos (``finetune_on=demos`` in a run that uses it): the demos
  convention below (an ``extract_skill`` run that fine-tunes looks for the play-trained one);
- ``flat_prior`` (input ``flat_prior``, or ``flat_prior=<file>``): the same on play data; with
  ``prior_data=demos``, :func:`polytask.training.weights.weights_path` of the run's demos
  (:func:`polytask.training.weights.flat_prior_path`);
- ``skill_posterior`` (input ``skill_posterior``, or ``skill_posterior=<file>``) and
  ``demo_discriminator`` (input ``demo_discriminator``, or ``demo_discriminator=<file>``):
  :func:`polytask.training.weights.weights_path` of the run's suite, task, obs_type, demo count and seed.

A stage made first runs ``train.py``'s config for ``agent=<stage>`` with the run's suite node (its
task preset's env settings included), data_dir, obs_type, seed, demo count and device, plus the
run's ``stage_overrides.<stage>`` (Hydra override strings, e.g. ``num_train_steps=5000``), in
``<run dir>/stages/<stage>``; its weights go where they are looked for. A run that sets
``stage_overrides.<stage>`` looks for that stage's file with those settings in its name
(``play-features-seed1-num_train_steps-40000.pt``, :func:`stage_tag`), the name the stage's own
command with the same overrides gives it, so runs asking for different stage settings never share
a file. A skill posterior made first is trained on the run's skill model: it takes the sizes that
``stage_overrides.skill_prior`` gives that model, and its file name carries the model's settings too
(``...-seed1-skill_prior.num_train_steps-120000.pt``), so posteriors of different skill models never
share a file.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from polytask.config import CONFIG_DIR, overrides_tag
from polytask.errors import ConfigError
from polytask.training.run import tasks_of
from polytask.training.weights import find_weights, flat_prior_path, play_weights_path, read_weights, weights_path

log = logging.getLogger("polytask")

#: per stage, the run option that names its weights file explicitly
FILE_OPTION = {"skill_prior": "skill_model", "skill_posterior": "skill_posterior",
               "demo_discriminator": "demo_discriminator", "extract_skill": "extract_model", "flat_prior": "flat_prior"}
#: the stages a stage's trainer needs made before it (the posterior is trained on the skill model)
NEEDS = {"skill_posterior": ("skill_prior",)}
#: per agent input, the stage that makes it
STAGE_OF_INPUT = {"skill_model": "skill_prior", "skill_posterior": "skill_posterior",
                  "demo_discriminator": "demo_discriminator", "extract_model": "extract_skill",
                  "flat_prior": "flat_prior"}


SKILL_SIZES = ("z_dim", "horizon", "hidden_dim", "hidden_depth")


def skill_spec(saved: dict[str, Any], *parts: str) -> dict[str, Any]:
    """A skill stage's weights as an agent input: ``{"model": ..., <parts>: ..., z_dim, horizon, hidden_dim,
    hidden_depth}`` (tensors and ints) from the contents of an exported ``skill_prior`` or
    ``skill_posterior`` weights file (:func:`polytask.training.weights.read_weights`)."""
    sizes = saved["config"]["agent"]
    return {"model": saved["agent"]["model"], **{k: saved["agent"][k] for k in parts},
            **{k: int(sizes[k]) for k in SKILL_SIZES}}


EXTRACT_SIZES = ("num_skills", "z_dim", "z_bound", "hidden_dim", "hidden_depth")


def extract_spec(saved: dict[str, Any]) -> dict[str, Any]:
    """An exported ``extract_skill`` weights file's contents (:func:`polytask.training.weights.read_weights`)
    as the agent input ``extract_model``: ``{"model": state dict, num_skills, z_dim, z_bound, hidden_dim,
    hidden_depth}``."""
    sizes = saved["config"]["agent"]
    return {"model": saved["agent"]["model"], **{k: sizes[k] for k in EXTRACT_SIZES}}


def finetuned(cfg: DictConfig, stage: str) -> bool:
    """Whether the run uses stage ``stage`` fine-tuned on its demos: the ``extract_skill`` model with
    ``finetune_on=demos``, in a run other than the fine-tuning one (which starts from the play-trained model)."""
    return stage == "extract_skill" and cfg.get("finetune_on") == "demos" and cfg.agent.name != "extract_skill"


def own_overrides(cfg: DictConfig, stage: str) -> list[str]:
    """The run's ``stage_overrides.<stage>`` as strings (``[]`` when it sets none)."""
    return [str(o) for o in (cfg.get("stage_overrides") or {}).get(stage, [])]


def inherited_overrides(cfg: DictConfig, stage: str) -> list[str]:
    """The overrides a stage takes from the stages it is trained on (:data:`NEEDS`): a skill posterior
    gets the sizes (``agent.<size>=``, :data:`SKILL_SIZES`) the run's ``stage_overrides.skill_prior``
    gives the skill model, which it must share; ``[]`` for other stages."""
    sizes = {f"agent.{k}" for k in SKILL_SIZES}
    return [o for needed in NEEDS.get(stage, ()) for o in own_overrides(cfg, needed)
            if o.split("=", 1)[0].lstrip("+~") in sizes]


def stage_tag(cfg: DictConfig, stage: str) -> str:
    """The settings part of stage ``stage``'s file name: the run's ``stage_overrides.<stage>`` as
    :func:`polytask.config.overrides_tag` writes them (``["num_train_steps=40000"]`` ->
    ``num_train_steps-40000``, as the stage's own command with those overrides names its file);
    ``""`` without overrides. A stage trained on another (:data:`NEEDS`: the skill posterior on the
    skill model) also carries that stage's settings, prefixed with its name
    (``skill_prior.num_train_steps-120000``): posteriors of different skill models never share a file."""
    upstream = [f"{needed}.{o}" for needed in NEEDS.get(stage, ()) for o in own_overrides(cfg, needed)
                if overrides_tag([o])]  # scheduling options (eval, logging) leave no mark
    return overrides_tag(own_overrides(cfg, stage) + upstream)


def stage_path(cfg: DictConfig, stage: str) -> Path:
    """Where stage ``stage``'s weights are looked for by convention (see the module docstring), with
    :func:`stage_tag` appended to the name when the run sets ``stage_overrides.<stage>``: a run never
    takes a stage trained with other settings than it asks for."""
    if finetuned(cfg, stage):
        path = weights_path(cfg, agent=stage)
    elif stage == "flat_prior":
        path = flat_prior_path(cfg)
    elif stage in ("skill_prior", "extract_skill"):
        path = play_weights_path(cfg, stage)
    else:
        path = weights_path(cfg, agent=stage)
    tag = stage_tag(cfg, stage)
    return path.with_name(f"{path.stem}-{tag}{path.suffix}") if tag else path


def play_trained_overrides(own: list[str]) -> str:
    """The override that gives a fine-tuned ``extract_skill``'s starting point, the play-trained model,
    the same settings ``own`` as the fine-tuned one: ``stage_overrides.extract_skill=["k=v",...]``."""
    return f"stage_overrides.extract_skill=[{','.join(json.dumps(o) for o in own)}]"


def stage_command(cfg: DictConfig, stage: str) -> str:
    """The ``train.py`` command that makes stage ``stage``'s weights for the run, where the run looks for
    them (:func:`stage_path`): with the run's ``stage_overrides.<stage>``, which name the file as the run
    expects (:func:`stage_tag`); for a skill posterior the run's skill model file (named, found, or
    where the run makes it: :func:`run_skill_model_file`, :func:`stage_path`), and for a fine-tuned
    ``extract_skill`` the settings of the play-trained model it starts from. Where it names such inputs,
    it also gives the stage's ``weights_tag``, so that they do not enter the file name."""
    cmd = (f"python train.py agent={stage} suite={cfg.suite.name} obs_type={cfg.obs_type} seed={cfg.seed} "
           f"data_dir={cfg.data_dir}")
    on_demos = (stage == "flat_prior" and cfg.get("prior_data") == "demos") or finetuned(cfg, stage)
    if on_demos:
        cmd += " prior_data=demos" if stage == "flat_prior" else " finetune_on=demos"
    if stage not in ("skill_prior", "extract_skill", "flat_prior") or on_demos:
        cmd += f" 'suite.task=[{','.join(tasks_of(cfg))}]' num_demos_per_task={cfg.num_demos_per_task}"
    own, inputs = inherited_overrides(cfg, stage) + own_overrides(cfg, stage), []
    if finetuned(cfg, stage) and own:
        inputs = [play_trained_overrides(own)]
    if stage == "skill_posterior":  # the run's skill model, where it is or will be made
        inputs = [f"skill_model={run_skill_model_file(cfg) or stage_path(cfg, 'skill_prior')}"]
    if inputs:  # not part of the file name
        inputs.append(f"weights_tag={stage_tag(cfg, stage)}")
    return " ".join([cmd, *(shlex.quote(o) for o in own + inputs)])


def stage_overrides(cfg: DictConfig, stage: str) -> list[str]:
    """The Hydra overrides of a stage made for the run: its identity (agent, obs_type, seed, data_dir,
    demos, device; default settings, so the weights land where they are looked for), what it inherits
    (:func:`inherited_overrides`) and the run's ``stage_overrides.<stage>`` (for the fine-tuned
    ``extract_skill``, also passed on to the play-trained one it starts from)."""
    base = [f"agent={stage}", f"obs_type={cfg.obs_type}", f"seed={cfg.seed}", f"data_dir={cfg.data_dir}",
            f"num_demos_per_task={cfg.num_demos_per_task}", f"collect_missing_demos={cfg.collect_missing_demos}",
            f"device={cfg.device}", f"weights_tag={stage_tag(cfg, stage)}", "resume=never"]
    if stage == "skill_posterior":  # trained on the run's skill model (made first, or named, or found)
        model = run_skill_model_file(cfg)
        if model:
            base.append(f"skill_model={model}")
    if stage == "flat_prior" and cfg.get("prior_data"):
        base.append(f"prior_data={cfg.prior_data}")
    own = inherited_overrides(cfg, stage) + own_overrides(cfg, stage)
    if stage == "extract_skill":  # the fine-tuned model, or (also for the fine-tuning run) the play-trained one
        base.append(f"finetune_on={'demos' if finetuned(cfg, stage) else 'null'}")
        if finetuned(cfg, stage):
            base.append(play_trained_overrides(own))
    return base + own


def stage_config(cfg: DictConfig, stage: str) -> DictConfig:
    """``train.py``'s config for stage ``stage`` of the run (:func:`stage_overrides`), with the run's
    suite node."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = stage_overrides(cfg, stage)
    if GlobalHydra.instance().is_initialized():
        stage_cfg = compose(config_name="config", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            stage_cfg = compose(config_name="config", overrides=overrides)
    stage_cfg.suite = OmegaConf.create(OmegaConf.to_container(cfg.suite, resolve=True))
    return stage_cfg


def stage_run_dir(cfg: DictConfig, stage: str) -> Path:
    """Where stage ``stage`` made for the run trains: ``<run dir>/stages/<stage>`` (``<stage>-demos`` for a
    fine-tuned one, :func:`finetuned`; outside a Hydra run, under ``<data_dir>/stage_runs``)."""
    from hydra.core.hydra_config import HydraConfig

    name = f"{stage}-demos" if finetuned(cfg, stage) else stage
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir) / "stages" / name
    return Path(cfg.data_dir) / "stage_runs" / f"{name}-{cfg.suite.name}-{cfg.obs_type}-seed{cfg.seed}"


def missing_stages(cfg: DictConfig, inputs: tuple[str, ...]) -> list[str]:
    """The stages that make the agent ``inputs`` (names) whose weights file is neither named
    (``<file option>=``) nor found by convention, each after the missing stages its own trainer needs
    (:data:`NEEDS`): the builder makes them first, in this order
    (:func:`polytask.training.build.make_missing_stages`)."""
    def missing(stage: str) -> bool:
        option = FILE_OPTION[stage]
        return not cfg.get(option) and not find_weights(stage_path(cfg, stage), f"pass {option}=<file>").exists()

    order: list[str] = []

    def visit(stage: str) -> None:
        if stage in order or not missing(stage):
            return
        for needed in NEEDS.get(stage, ()):
            visit(needed)
        order.append(stage)

    for name in inputs:
        if name in STAGE_OF_INPUT:
            visit(STAGE_OF_INPUT[name])
    return order


def stage_file(cfg: DictConfig, stage: str) -> Path:
    """The weights file of stage ``stage`` for the run: ``cfg.<file option>`` when set, else the one
    found by convention (a run's builder has made missing ones first, :func:`missing_stages`).

    Raises:
        ConfigError: if it is missing (the message gives the command that makes it), or several files
            with other settings match.
    """
    option = FILE_OPTION[stage]
    if cfg.get(option):
        return Path(cfg[option])
    path = find_weights(stage_path(cfg, stage), f"pass {option}=<file>")
    if path.exists():
        return path
    raise ConfigError(f"No {stage} weights at {path}. Make them with:\n  {stage_command(cfg, stage)}\n(or pass "
                      f"{option}=<file>, or leave collect_missing_demos=true to have them made first)")


def stage_weights(cfg: DictConfig, stage: str) -> dict[str, Any]:
    """The contents of stage ``stage``'s weights file (:func:`stage_file`, :func:`read_weights`).

    Raises:
        ConfigError: as :func:`stage_file`; if the file holds another agent's weights.
    """
    path = stage_file(cfg, stage)
    saved = read_weights(path, how_to_make=stage_command(cfg, stage))
    if saved.get("agent_name") != stage:
        raise ConfigError(f"{path} holds {saved.get('agent_name')} weights, not {stage} ones "
                          f"({FILE_OPTION[stage]}=<file> must name an agent={stage} run's weights)")
    log.info(f"{stage} (frozen) from {path}")
    return saved


def skill_model(cfg: DictConfig, env: gym.Env) -> dict[str, Any]:
    """The skill model (decoder, prior, normaliser and sizes) of the run's ``skill_prior`` stage."""
    return skill_spec(stage_weights(cfg, "skill_prior"))


def run_skill_model_file(cfg: DictConfig) -> Path | None:
    """The skill model file the run names (``skill_model=<file>``) or finds by convention (the one
    ``skill_prior`` file of the suite, :func:`stage_file`); None when there is none, or several with other
    settings."""
    try:
        return stage_file(cfg, "skill_prior")
    except ConfigError:
        return None


def check_posterior_skill_model(cfg: DictConfig, posterior: dict[str, Any]) -> None:
    """Refuse a skill posterior trained on another skill model than the run's (:func:`run_skill_model_file`):
    SkiLD acts through the posterior's own copy of the skill model, so a retrained or named skill model
    would otherwise be ignored without a word.

    Raises:
        ConfigError: if the two models' tensors differ; the message gives the command that trains a
            posterior on the run's skill model.
    """
    path = run_skill_model_file(cfg)
    if path is None:
        return
    model = read_weights(path, how_to_make=stage_command(cfg, "skill_prior"))["agent"]["model"]
    own = posterior["agent"]["model"]
    if model.keys() == own.keys() and all(torch.equal(model[k], own[k].to(model[k].device)) for k in model):
        return
    posterior_file = stage_file(cfg, "skill_posterior")
    raise ConfigError(f"The skill posterior at {posterior_file} was trained on another skill model than {path}. Train "
                      f"one on it with:\n  {stage_command(cfg, 'skill_posterior')}\n(or delete "
                      f"{posterior_file} to have it made first, or pass another as skill_posterior=<file>)")


def skill_posterior(cfg: DictConfig, env: gym.Env) -> dict[str, Any]:
    """SkiLD's skill posterior with the skill model it was trained on, from the ``skill_posterior`` stage,
    checked against the run's skill model (:func:`check_posterior_skill_model`).

    Raises:
        ConfigError: as :func:`stage_weights` and :func:`check_posterior_skill_model`.
    """
    saved = stage_weights(cfg, "skill_posterior")
    check_posterior_skill_model(cfg, saved)
    return skill_spec(saved, "posterior")


def demo_discriminator(cfg: DictConfig, env: gym.Env) -> dict[str, Any]:
    """SkiLD's demo discriminator (network, state normaliser, sizes) from the ``demo_discriminator`` stage."""
    saved = stage_weights(cfg, "demo_discriminator")
    sizes = saved["config"]["agent"]
    return {"net": saved["agent"]["net"], "normalizer": saved["agent"]["normalizer"],
            "hidden_dim": int(sizes["hidden_dim"]), "hidden_depth": int(sizes["hidden_depth"])}


def flat_prior_spec(saved: dict[str, Any]) -> dict[str, Any]:
    """An exported ``flat_prior`` weights file's contents (:func:`polytask.training.weights.read_weights`)
    as the agent input ``flat_prior``: ``{"model": GaussianActor state dict, hidden_dim, hidden_depth,
    log_std_bounds}``."""
    sizes = saved["config"]["agent"]
    return {"model": saved["agent"]["model"], "hidden_dim": int(sizes["hidden_dim"]),
            "hidden_depth": int(sizes["hidden_depth"]), "log_std_bounds": [float(b) for b in sizes["log_std_bounds"]]}


def flat_prior(cfg: DictConfig, env: gym.Env) -> dict[str, Any]:
    """The flat prior (SAC's actor network and its sizes) of the run's ``flat_prior`` stage."""
    return flat_prior_spec(stage_weights(cfg, "flat_prior"))


def extract_model(cfg: DictConfig, env: gym.Env) -> dict[str, Any]:
    """EXTRACT's skill model (normaliser, decoder, priors and sizes) of the run's ``extract_skill`` stage."""
    return extract_spec(stage_weights(cfg, "extract_skill"))
