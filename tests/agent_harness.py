"""Every agent of ``cfgs/agent/`` built small and fed as its trainer feeds it, on synthetic data: the
ground shared by the agent contract test and the golden-number test.

An agent is built the way a run builds it: its config composed like ``train.py`` does, the seed set
like :func:`polytask.training.build.build_trainer`, :func:`polytask.training.build.make_agent` with
what its trainer class passes (a distillation student's goals, a residual agent's frozen base loaded
from an exported BC file). Its updates get the batches its trainer class gives: replay batches for
:class:`OnlineTrainer`, demo windows for :class:`WindowTrainer` (after ``fit_dataset``; the skill
agents' windows, a skill posterior keeping its freshly initialised skill model), half demo and half
play states with their labels for :class:`DiscriminatorTrainer`, skill segments planted in the episodes
(:func:`planted_skills`) for :class:`ExtractSkillTrainer`, demo batches for
:class:`OfflineTrainer` and its other subclasses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from polytask.agents.frozen import policy_modules
from polytask.data.buffer import DemoBuffer
from polytask.data.demos import Episode
from polytask.data.goals import image_goals, onehot_goals
from polytask.data.replay import ReplayBuffer
from polytask.errors import ConfigError
from polytask.skills.segments import SegmentBuffer
from polytask.training.demos import frame_stack_of
from polytask.training.distill import DistillTrainer
from polytask.training.extract import ExtractSkillTrainer
from polytask.training.inputs import base_policy as load_base_policy
from polytask.training.inputs import make_agent
from polytask.training.offline import OfflineTrainer, WindowTrainer
from polytask.training.online import OnlineTrainer
from polytask.training.skills import DiscriminatorTrainer, labelled_batch
from polytask.training.trainer import Trainer
from polytask.utils import metric_floats, set_seed
from tests.conftest import ROOT, compose_cfg

#: every agent config, found in the folder, so that a new agent is covered without editing the tests
AGENT_NAMES = sorted(p.stem for p in (ROOT / "cfgs" / "agent").glob("*.yaml"))
STATE_DIM, ACTION_DIM, NUM_TASKS, BATCH_SIZE = 6, 3, 2, 16
#: one synthetic camera frame, uint8 (3, H, W) (pixel observations stack ``frame_stack`` of them)
FRAME_SHAPE = (3, 24, 24)
#: seed of the BC base policy that agents decorating a ``base_policy`` get
BASE_SEED = 7

#: small sizes, set on each of these options that an agent's config has
SMALL = {"hidden_dim": 32, "feature_dim": 16, "hidden_depth": 1, "critic_hidden_depth": 1, "goal_feature_dim": 8,
         "n_layer": 1, "n_head": 2, "n_embd": 16, "window": 3, "n_bins": 4, "down_dims": [16, 32],
         "step_embed_dim": 16, "groups": 4, "pred_horizon": 4, "action_horizon": 2, "num_train_timesteps": 10,
         "num_inference_steps": 2, "num_expl_steps": 2}


def small_cfg(name: str, seed: int, data_dir: Path, obs_type: str = "features"):
    """The run config of ``agent=<name>`` on CPU with :data:`SMALL` sizes and one demo per task;
    exported weights go under ``data_dir``. A student with pixel observations gets goal images
    (``goal_modality=pixels``)."""
    # one demo: agents that take demos (ROT's OT rewards) collect them at build time, ~3 s per rendered episode
    cfg = compose_cfg(f"agent={name}", f"obs_type={obs_type}", "device=cpu", f"seed={seed}", f"data_dir={data_dir}",
                      "num_demos_per_task=1")
    for key, value in SMALL.items():
        if key in cfg.agent:
            cfg.agent[key] = value
    if "goal_modality" in cfg and obs_type == "pixels":
        cfg.goal_modality = "pixels"
    return cfg


def obs_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """The observation shapes of the run's env: ``state`` (STATE_DIM,), and for pixels ``pixels``
    (3·frame_stack, H, W)."""
    shapes = {"state": (STATE_DIM,)}
    if cfg.obs_type == "pixels":
        shapes["pixels"] = (FRAME_SHAPE[0] * frame_stack_of(cfg), *FRAME_SHAPE[1:])
    return shapes


class SpacesEnv(gym.Env):
    """An env that only has spaces (it cannot be reset or stepped): what building and loading an
    agent read from an env, and what an agent's ``wrap_env`` wraps to tell its acting space."""

    def __init__(self, observation_space: gym.spaces.Dict, action_space: gym.spaces.Box):
        self.observation_space, self.action_space = observation_space, action_space


def spaces_env(cfg) -> SpacesEnv:
    """The spaces of the run's env (:func:`obs_shapes`; ACTION_DIM actions in [-1, 1])."""
    spaces = {k: gym.spaces.Box(0, 255, s, np.uint8) if k == "pixels" else
              gym.spaces.Box(-np.inf, np.inf, s, np.float32) for k, s in obs_shapes(cfg).items()}
    return SpacesEnv(gym.spaces.Dict(spaces), gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32))


def acting_space(cfg, agent) -> gym.spaces.Box:
    """The action space the agent acts in: its ``wrap_env`` of the run's env (skills for skill-space
    agents; the env's ACTION_DIM actions for the others)."""
    return agent.wrap_env(spaces_env(cfg)).action_space


def export_skill_stages(cfg, data_dir: Path) -> None:
    """For an agent that asks for earlier skill stages (SPiRL's skill model, SkiLD's posterior and
    discriminator): each stage's agent built small (seed :data:`BASE_SEED`, freshly initialised) and
    exported where the run looks for it (:func:`polytask.training.skill_inputs.stage_path`)."""
    from polytask.training.inputs import agent_options
    from polytask.training.skill_inputs import FILE_OPTION, stage_path
    from polytask.utils import atomic_torch_save

    stage_of = {option: stage for stage, option in FILE_OPTION.items()}
    for name in get_class(cfg.agent._target_).inputs(agent_options(cfg.agent)):
        if name not in stage_of:
            continue
        stage_cfg = small_cfg(stage_of[name], BASE_SEED, data_dir)
        set_seed(BASE_SEED)
        agent = make_agent(stage_cfg, spaces_env(stage_cfg))
        atomic_torch_save({"agent": agent.state_dict(), "agent_name": stage_of[name],
                           "config": OmegaConf.to_container(stage_cfg, resolve=True)},
                          stage_path(cfg, stage_of[name]))


def export(cfg, agent) -> Path:
    """Write ``agent``'s weights as a finished run does (:meth:`Trainer.export_weights`); returns the file."""
    return Trainer(cfg, Path(cfg.data_dir), agent, None).export_weights()


def build(name: str, seed: int, data_dir: Path, obs_type: str = "features"):
    """``(cfg, agent)``: agent ``name`` built as a run with ``seed`` builds it. An agent that decorates a
    ``base_policy`` gets a BC base (seed :data:`BASE_SEED`) exported to ``data_dir`` and loaded from
    there; a student gets one-hot goals, or the goal images of :func:`synthetic_episodes`.

    Raises:
        ConfigError: if the agent does not take ``obs_type``.
    """
    cfg = small_cfg(name, seed, data_dir, obs_type)
    env, extra = spaces_env(cfg), {}
    if "base_policy" in cfg:
        base_cfg = small_cfg("bc", BASE_SEED, data_dir, obs_type)
        set_seed(BASE_SEED)
        cfg.base_policy = str(export(base_cfg, make_agent(base_cfg, env)))
        extra["base_policy"] = load_base_policy(cfg, env)
    export_skill_stages(cfg, data_dir)
    if issubclass(get_class(cfg.agent.trainer), DistillTrainer):
        extra["goals"] = image_goals(synthetic_episodes()) if cfg.goal_modality == "pixels" else onehot_goals(NUM_TASKS)
    set_seed(seed)
    return cfg, make_agent(cfg, env, **extra)


def takes_pixels(name: str, data_dir: Path) -> bool:
    """Whether agent ``name`` builds with ``obs_type=pixels`` (features-only agents refuse it with a
    :class:`ConfigError`)."""
    try:
        build(name, 0, data_dir, "pixels")
    except ConfigError:
        return False
    return True


def synthetic_episodes(seed: int = 0, per_task: int = 2, length: int = 12) -> dict[int, list[Episode]]:
    """``{task_id: [Episode, ...]}`` for NUM_TASKS tasks: Gaussian states, uniform random uint8 frames
    :data:`FRAME_SHAPE`, uniform actions in [-1, 1], rewards in [0, 1); every episode ends truncated."""
    rng, frames_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    episodes = {}
    for task in range(NUM_TASKS):
        episodes[task] = [Episode(obs={"state": rng.normal(size=(length + 1, STATE_DIM)).astype(np.float32),
                                       "pixels": frames_rng.integers(0, 256, (length + 1, *FRAME_SHAPE), np.uint8)},
                                  action=rng.uniform(-1, 1, (length, ACTION_DIM)).astype(np.float32),
                                  reward=rng.uniform(0, 1, length).astype(np.float32),
                                  terminated=np.zeros(length, bool), truncated=np.arange(length) == length - 1,
                                  success=np.zeros(length, np.float32)) for _ in range(per_task)]
    return episodes


def planted_skills(episodes: dict[int, list[Episode]], num_skills: int, length: int = 6) -> list[Episode]:
    """The episodes with skill labels as skill discovery writes them: consecutive ``length``-step
    segments, labelled in turn 0, 1, ... (mod ``num_skills``), with progress 0..1 through each."""
    out = []
    for ep in (ep for eps in episodes.values() for ep in eps):
        t = np.arange(len(ep))
        infos = {"skill": (t // length) % num_skills, "progress": ((t % length) / (length - 1)).astype(np.float32)}
        out.append(Episode(**{**ep.__dict__, "infos": infos}))
    return out


def _filled_replay(cfg, agent, episodes: dict[int, list[Episode]]) -> ReplayBuffer:
    """A replay buffer holding ``episodes``, each observation with the agent's ``observe`` extras
    (the residual agent's base actions), as the online trainer stores them."""
    shapes = {**obs_shapes(cfg), **getattr(agent, "extra_obs_shapes", {})}
    space = acting_space(cfg, agent)
    replay = ReplayBuffer(1000, shapes, space.shape[0], frame_stack=frame_stack_of(cfg), nstep=int(cfg.nstep),
                          discount=float(cfg.discount), seed=int(cfg.seed))
    skills = np.random.default_rng(int(cfg.seed)).uniform(space.low, space.high, (10_000, space.shape[0]))
    hook = getattr(agent, "observe", None)

    def stored(ep: Episode, t: int) -> dict[str, np.ndarray]:
        obs = {k: ep.obs[k][t] for k in obs_shapes(cfg)}  # the newest frame stands for its stack
        one = {k: v[None] for k, v in obs.items()}  # a batch of one env, env 0
        extras = hook(OnlineTrainer._batch(one, np.zeros(1, np.int64), t == 0)) if hook is not None else {}
        return {**obs, **{k: np.asarray(v)[0] for k, v in extras.items()}}

    for i, ep in enumerate(ep for eps in episodes.values() for ep in eps):
        replay.add_first(stored(ep, 0))
        # agents acting in another space (skills) store actions of it, drawn uniformly
        actions = ep.action if space.shape[0] == ACTION_DIM else skills[i * len(ep):(i + 1) * len(ep)]
        for t in range(len(ep)):
            replay.add(actions[t], float(ep.reward[t]), stored(ep, t + 1), bool(ep.terminated[t]),
                       bool(ep.truncated[t]))
    return replay


def batch_sampler(cfg, agent, episodes: dict[int, list[Episode]] | None = None) -> Callable[[], dict[str, Any]]:
    """``sample() -> batch``: the kind of batch the agent's trainer class gives its updates, sampled
    with the run's seed from ``episodes`` (default :func:`synthetic_episodes`). Window policies fit
    their dataset statistics first, as :class:`WindowTrainer` has them do.

    Raises:
        NotImplementedError: for a trainer class this harness does not know yet (add it here).
    """
    trainer = get_class(cfg.agent.trainer)
    episodes = synthetic_episodes() if episodes is None else episodes
    if issubclass(trainer, OnlineTrainer):
        replay = _filled_replay(cfg, agent, episodes)
        return lambda: replay.sample(BATCH_SIZE)
    obs_keys = ("pixels",) if cfg.obs_type == "pixels" else ("state",)  # as load_demo_buffer keeps them
    buffer = DemoBuffer(episodes, obs_keys, frame_stack=frame_stack_of(cfg), seed=int(cfg.seed))
    if issubclass(trainer, DiscriminatorTrainer):  # demo states (task 0's episodes) against play states (task 1's)
        demo, play = (DemoBuffer({0: episodes[i]}, ("state",), seed=int(cfg.seed) + i) for i in (0, 1))
        agent.fit_dataset(np.concatenate([demo.obs["state"], play.obs["state"]]))
        return lambda: labelled_batch(demo, play, BATCH_SIZE)
    if issubclass(trainer, ExtractSkillTrainer):
        segments = SegmentBuffer(planted_skills(episodes, int(cfg.agent.num_skills)), seed=int(cfg.seed))
        agent.fit_dataset(segments.states())
        return lambda: segments.sample(BATCH_SIZE)
    if issubclass(trainer, WindowTrainer):
        agent.fit_dataset(buffer.obs["state"], buffer.action)
        return lambda: buffer.sample_windows(BATCH_SIZE, *agent.window)
    if issubclass(trainer, OfflineTrainer):
        return lambda: buffer.sample(BATCH_SIZE)
    raise NotImplementedError(f"tests/agent_harness.py does not know how {trainer.__name__} feeds its agent: add it "
                              "to batch_sampler() and update()")


def feeder(cfg, agent) -> Callable[[int], dict[str, float]]:
    """``update(step) -> metrics`` (as floats, :func:`metric_floats`) on the next batch of
    :func:`batch_sampler`, as its trainer calls it."""
    sample = batch_sampler(cfg, agent)
    return lambda step: metric_floats(agent.update(sample(), step))


def act_obs(cfg, batch_size: int = 4, seed: int = 1) -> dict[str, np.ndarray]:
    """A batch of observations as the evaluator passes them: ``state`` float32 (B, D), for pixels
    ``pixels`` uint8 (B, 3·frame_stack, H, W), ``task_id``, ``env_index`` int64 (B,) and ``is_first``
    bool (B,) (all true: policies with memory start afresh)."""
    rng = np.random.default_rng(seed)
    pixels = {"pixels": rng.integers(0, 256, (batch_size, *obs_shapes(cfg)["pixels"]), np.uint8)
              } if cfg.obs_type == "pixels" else {}
    return {"state": rng.normal(size=(batch_size, STATE_DIM)).astype(np.float32), **pixels,
            "task_id": np.arange(batch_size, dtype=np.int64) % NUM_TASKS,
            "env_index": np.arange(batch_size, dtype=np.int64), "is_first": np.ones(batch_size, bool)}


def seeded_act(agent, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0, seed: int = 0) -> np.ndarray:
    """``agent.act`` with torch's RNG seeded first, so stochastic policies (Diffusion Policy's noise,
    BeT's sampled bins) give the same draw for the same weights. An agent that scores states rather
    than acting (``is_policy = False``: the demo discriminator) gives its ``predict(obs)`` instead."""
    torch.manual_seed(seed)
    if not getattr(agent, "is_policy", True):
        return agent.predict(obs)
    return agent.act(obs, eval_mode=eval_mode, step=step)


def checksum(agent) -> dict[str, list[float]]:
    """Per network of the agent (:func:`polytask.agents.frozen.policy_modules`): the L2 norm of its
    floating-point parameters and buffers and their projection on a fixed N(0, 1) vector, float64."""
    out = {}
    for name, module in policy_modules(agent).items():
        tensors = [t.detach().cpu().double().reshape(-1) for t in module.state_dict().values()
                   if torch.is_tensor(t) and t.is_floating_point()]
        if not tensors:
            continue
        flat = torch.cat(tensors)
        probe = torch.randn(len(flat), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        out[name] = [math.sqrt(float(flat.pow(2).sum())), float(flat @ probe)]
    return out


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Two nested ``state_dict`` values (dicts, lists, tensors, arrays, numbers) are exactly equal."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()), f"{where} differs"
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
