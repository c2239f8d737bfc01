"""Online trainer (DrQ-v2, ROT, SAC, Policy Decorator, ...): one environment step per training step
and updates from a replay buffer. It knows no algorithm: what one needs beyond acting and updating
it does through the hooks of :class:`polytask.agents.base.Agent` (rewards computed at an episode's
end, per-observation extras, frozen-weight checks, network resets), and reward or termination
changes are env wrappers (:func:`polytask.training.run.make_train_env`)."""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from omegaconf import DictConfig

from polytask.agents.base import Agent
from polytask.data.prefetch import PrefetchSampler
from polytask.data.replay import ReplayBuffer
from polytask.errors import ConfigError
from polytask.training.checkpoint import checkpoint_dir
from polytask.training.demos import frame_stack_of
from polytask.training.evaluator import Evaluator
from polytask.training.inputs import make_agent
from polytask.training.replay_store import ReplayStore
from polytask.training.run import make_evaluator, make_train_env, make_train_envs, num_envs_of, tasks_of
from polytask.training.trainer import NonFiniteLossError, Trainer

#: Training episode ``e`` of env ``i`` of a run with seed ``s`` resets with
#: ``TRAIN_SEED_BASE + 100_000·(s + i) + e`` (disjoint from the demonstration and evaluation seeds).
TRAIN_SEED_BASE = 2_000_000

log = logging.getLogger("polytask")


class OnlineTrainer(Trainer):
    """Acts in ``cfg.num_envs`` training envs (default 1) with exploration, stores their steps in
    ``replay`` and updates the agent ``cfg.updates_per_step`` times (default 1, each on a fresh batch)
    every ``cfg.update_every_steps`` steps once ``cfg.update_after_steps`` steps are stored: the
    update-to-data ratio is ``updates_per_step / update_every_steps`` updates per env step, whatever
    the number of envs.

    Steps count env steps (transitions): one :meth:`train_step` acts once in each of the N envs with
    one batched :meth:`~polytask.agents.base.Agent.act` and takes N steps, so ``num_train_steps``,
    the agent's schedules and the update count mean the same with any N. Each env runs its own
    episodes, ending and resetting independently: env i's j-th training episode resets with seed
    ``TRAIN_SEED_BASE + 100_000·(seed + i) + j``, so env i of a run with seed s sees the episodes of
    env 0 of a run with seed s + i. With one env an episode's steps enter the replay buffer as they
    happen; with several (or with rewards computed at the episode's end) each env's episode is
    stored whole when it ends, as the buffer keeps an episode's steps together.

    With ``cfg.overlap_updates`` the envs step in subprocesses (also for N = 1) while the agent
    updates: the actions are chosen as without it, the envs are sent them, the updates due at these
    steps run, and then the step's transitions are read and stored. The updates at a step thus sample
    a buffer without that step's N transitions (one step staler than without it; the runs differ,
    each deterministic). A step then takes about max(env, update) instead of their sum: the gain
    where stepping the envs costs as much as updating (a simulator on a CPU, a skill decoder acting
    H env steps per agent step) and there is a core for each.

    Args:
        env: the training env (one task, with the run's training wrappers), or a Gymnasium vector env
            of N of them without autoreset (:func:`polytask.training.run.make_train_envs`).
        replay: the replay buffer (saved with the checkpoints, so a resumed run keeps its data).

    A resumed run starts a new episode in every env: the envs' mid-episode states are not restored
    (with one env the steps of the interrupted episode stay in the replay buffer; with several the
    episodes in flight are dropped). It must use the checkpoint's ``num_envs``.

    What the trainer calls on the agent (:class:`polytask.agents.base.Agent`):

    - ``act(obs, eval_mode=False, step)`` with, besides the env's keys (N, ...), ``task_id`` (0) and
      ``env_index`` (0..N-1), int64 (N,), and ``is_first`` bool (N,) (true on an episode's first
      step), as the evaluator passes them, so policies with memory can act here too.
    - ``observe(obs)``: extras for every arriving observation (the reset one and the last one of an
      episode included; a batch of the envs it arrived in, with their ``env_index``), stored with it
      as the observation keys of ``extra_obs_shapes``.
    - ``episode_rewards(obs, step)`` at each episode's end when ``rewards_at_episode_end`` (ROT's OT
      rewards): the episode then enters the replay buffer with those rewards.
    - ``check_frozen()`` before the final weights are exported.
    - ``reset_networks()`` every ``cfg.reset_every_steps`` steps (0: never), before that step's
      updates; the replay buffer is kept (periodic resets, Nikishin et al. 2022).

    Time spent, logged as cumulative ``seconds_<part>`` (this process, since it started): ``act``,
    ``env`` (the envs' steps, wall time; with ``overlap_updates`` the wait for them beyond the
    updates), ``update``, ``reward`` (rewards computed at episode ends)
    and, where the env reports ``info["seconds_decoder"]`` (the skill wrappers of
    :mod:`polytask.suites.skills`), ``decoder``: the part of the envs' steps spent in the skill
    decoder, summed over the envs (with subprocess envs it can exceed the wall time of ``env``).

    ``episode_return`` is the env's return (``info["env_reward"]`` where a wrapper changed the
    reward, e.g. :class:`polytask.suites.wrappers.SparseReward`); ``episode_reward`` is the return of
    the rewards learnt from, where they differ. Where several envs end an episode in the same step,
    the episode metrics are their means.

    Raises:
        ConfigError: for update or reset schedules that cannot work, or ``overlap_updates`` with envs
            that step in this process (``async_envs=false``).
    """

    cumulative_metrics = ("frames", "episode", "seconds_*")  # frames and episodes so far, seconds per part

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator: Evaluator, env, replay: ReplayBuffer):
        super().__init__(cfg, run_dir, agent, evaluator)
        self.envs: VectorEnv = env if isinstance(env, VectorEnv) else SyncVectorEnv(
            [lambda: env], autoreset_mode=AutoresetMode.DISABLED)
        if self.envs.metadata.get("autoreset_mode") != AutoresetMode.DISABLED:
            raise ConfigError("the online trainer resets each env itself: make its vector env with "
                              "autoreset_mode=AutoresetMode.DISABLED (polytask.training.run.make_train_envs)")
        self.replay = replay
        self.num_envs = self.steps_per_train_step = self.envs.num_envs
        # read once: the config is fixed for the run and these are used at every step
        self._action_repeat = int(cfg.suite.env.get("action_repeat", 1))
        self._update_after, self._update_every = int(cfg.update_after_steps), int(cfg.update_every_steps)
        self._updates_per_step = int(cfg.get("updates_per_step", 1))
        if self._update_every < 1 or self._updates_per_step < 1:
            raise ConfigError(f"update_every_steps ({self._update_every}) and updates_per_step "
                              f"({self._updates_per_step}) must be at least 1")
        self._reset_every = int(cfg.get("reset_every_steps", 0) or 0)
        if self._reset_every < 0 or (self._reset_every and not agent.can_reset_networks):
            raise ConfigError(f"reset_every_steps={self._reset_every}: must be 0 (never) or a positive number of "
                              f"agent steps, for an agent that can reset its networks (agent={cfg.agent.name} "
                              f"{'can' if agent.can_reset_networks else 'cannot'})")
        self._batch_size = int(cfg.batch_size)
        # overlap_updates: the envs (subprocesses) step while the agent updates
        self._overlap = bool(cfg.get("overlap_updates", False))
        if self._overlap and not isinstance(self.envs, AsyncVectorEnv):
            raise ConfigError("overlap_updates=true steps the envs in subprocesses while the agent updates: "
                              "drop async_envs=false (or set overlap_updates=false); the envs come from "
                              "polytask.training.run.make_train_envs")
        # episodes stored whole at their end: rewards computed then, or several envs sharing the buffer
        self._store_at_end = bool(agent.rewards_at_episode_end) or self.num_envs > 1
        self.episode = 0  # episodes ended, all envs
        self.env_episodes = [0] * self.num_envs  # episodes ended per env (their reset seeds)
        # replay_prefetch: batches sampled one update ahead in a background thread (see PrefetchSampler)
        self._sample = (PrefetchSampler(replay, self._batch_size, getattr(agent, "device", "cpu")).sample
                        if cfg.get("replay_prefetch", False) else lambda: self.replay.sample(self._batch_size))
        self.frames = 0  # env steps × action repeat (a skill-space step runs several env steps)
        self.seconds = {"act": 0.0, "env": 0.0, "update": 0.0, "reward": 0.0}  # time spent in this process
        self._obs: dict[str, np.ndarray] | None = None  # the envs' current observations, (N, ...) per key
        self._eps: list[dict[str, Any] | None] = [None] * self.num_envs  # the episode in flight per env

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> OnlineTrainer:
        """The ``num_envs`` training envs of the run's single task (:func:`make_train_envs`), the agent
        with the inputs it asks for (:func:`make_agent`), a replay buffer (with the agent's
        ``extra_obs_shapes``) and the evaluator.

        Raises:
            ConfigError: if the run names more than one task, an input of the agent is missing
                (e.g. the BC weights of ``load_bc``: the message gives the command that makes them), or
                ``eval.on_train_env`` is asked for with more than one env or with ``overlap_updates``.
        """
        tasks = tasks_of(cfg)
        if len(tasks) != 1:
            raise ConfigError(f"agent={cfg.agent.name} trains on one task; got {tasks}. Run one per task, "
                              "e.g. with -m suite.task=[a],[b]")
        num_envs = num_envs_of(cfg)
        on_train_env, overlap = cfg.eval.get("on_train_env", False), bool(cfg.get("overlap_updates", False))
        if on_train_env and (num_envs > 1 or overlap):
            raise ConfigError(f"eval.on_train_env evaluates on the one training env (a real robot) in this process: "
                              f"set num_envs=1 and overlap_updates=false (got num_envs={num_envs}, "
                              f"overlap_updates={overlap})")
        suite_env = make_train_env(cfg, tasks[0])
        agent = make_agent(cfg, suite_env)
        env = agent.wrap_env(suite_env)  # the env the agent acts in (skill-space agents: skills as actions)
        env.action_space.seed(int(cfg.seed))
        obs_shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
        obs_shapes.update(agent.extra_obs_shapes)
        device = torch.device(getattr(agent, "device", "cpu"))
        replay = ReplayBuffer(int(cfg.replay_capacity), obs_shapes, int(env.action_space.shape[0]),
                              frame_stack=frame_stack_of(cfg), nstep=int(cfg.nstep), discount=float(cfg.discount),
                              seed=int(cfg.seed), pin_memory=bool(cfg.get("replay_prefetch")) and device.type == "cuda")
        evaluator = make_evaluator(cfg, agent.wrap_env, env if on_train_env else None)
        wrap = agent.wrap_env if type(agent).wrap_env is not Agent.wrap_env else None
        return cls(cfg, run_dir, agent, evaluator, make_train_envs(cfg, tasks[0], wrap, env, num_envs), replay)

    @staticmethod
    def _batch(obs: dict[str, np.ndarray], envs: np.ndarray, is_first: np.ndarray) -> dict[str, np.ndarray]:
        """Observations (per key (B, ...)) of the envs ``envs`` (int (B,)) with the ``task_id``,
        ``env_index`` (int64 (B,)) and ``is_first`` (bool (B,)) keys the evaluator passes too."""
        batch = dict(obs)
        batch["task_id"], batch["env_index"] = np.zeros(len(envs), np.int64), np.asarray(envs, np.int64)
        batch["is_first"] = np.broadcast_to(np.asarray(is_first, bool), (len(envs),)).copy()
        return batch

    def _observe(self, obs: dict[str, np.ndarray], envs: np.ndarray, is_first: bool) -> dict[str, np.ndarray]:
        """``obs`` of the envs ``envs`` with the agent's per-observation extras (:meth:`Agent.observe`),
        if it has any."""
        if not self.agent.extra_obs_shapes:
            return obs
        t0 = time.perf_counter()
        extras = self.agent.observe(self._batch(obs, envs, np.full(len(envs), is_first)))
        self.seconds["act"] += time.perf_counter() - t0
        return {**obs, **{k: np.asarray(v) for k, v in extras.items()}}

    def _reset_seed(self, i: int) -> int:
        return TRAIN_SEED_BASE + 100_000 * (int(self.cfg.seed) + i) + self.env_episodes[i]

    def _start_episodes(self) -> None:
        """Reset the envs without an episode in flight, each with its next seed."""
        todo = np.array([ep is None for ep in self._eps])
        seeds = [self._reset_seed(i) if todo[i] else None for i in range(self.num_envs)]
        obs, _ = self.envs.reset(seed=seeds, options={"reset_mask": todo})
        envs = np.flatnonzero(todo)
        for i in envs:
            self._eps[i] = {"return": 0.0, "reward": 0.0, "length": 0, "success": 0.0, "obs": [], "steps": [],
                            "stored": False}
        new = self._observe({k: v[envs] for k, v in obs.items()}, envs, is_first=True)
        if self._obs is None:
            self._obs = {k: np.zeros((self.num_envs, *v.shape[1:]), v.dtype) for k, v in new.items()}
        for k, v in new.items():  # a new array: the episodes in flight hold rows of the old one
            self._obs[k] = self._obs[k].copy()
            self._obs[k][envs] = v
        for j, i in enumerate(envs):
            self._eps[i]["obs"].append({k: v[j] for k, v in new.items()})

    def _store(self, ep: dict[str, Any], rewards: np.ndarray | None = None) -> None:
        """Write the steps of ``ep`` not yet in the replay buffer (with ``rewards`` (T,) for the whole
        episode in place of the env's, where given) and keep only its last observation."""
        if not ep["stored"]:
            self.replay.add_first(ep["obs"][0])
            ep["stored"] = True
        for t, ((action, reward, terminated, truncated), obs) in enumerate(zip(ep["steps"], ep["obs"][1:])):
            self.replay.add(action, reward if rewards is None else rewards[t], obs, terminated, truncated)
        ep["obs"], ep["steps"] = ep["obs"][-1:], []

    def _end_episode(self, i: int) -> dict[str, float]:
        """Close env ``i``'s episode: store it where that waits for its end; its metrics."""
        ep, self._eps[i] = self._eps[i], None
        metrics = {"episode_length": float(ep["length"]), "episode_success": ep["success"],
                   "episode_return": ep["return"]}  # the env's own return
        if self.agent.rewards_at_episode_end:
            t0 = time.perf_counter()
            obs = {k: np.stack([o[k] for o in ep["obs"]]) for k in ep["obs"][0]}
            rewards = np.asarray(self.agent.episode_rewards(obs, self.step), np.float32)
            self.seconds["reward"] += time.perf_counter() - t0
            self._store(ep, rewards)
            metrics["episode_reward"] = float(rewards.sum())  # the reward the agent learns from
        else:
            if self._store_at_end:
                self._store(ep)
            if ep["reward"] != ep["return"]:
                metrics["episode_reward"] = ep["reward"]
        self.episode += 1
        self.env_episodes[i] += 1
        return metrics

    def train_step(self) -> dict[str, float]:
        """One step in each env (:attr:`steps_per_train_step` = N steps), then the updates due in them
        (with ``overlap_updates``: while the envs step)."""
        if any(ep is None for ep in self._eps):
            self._start_episodes()
        envs = np.arange(self.num_envs)
        steps = range(self.step, self.step + self.num_envs)  # the env steps this call takes
        t0 = time.perf_counter()
        is_first = np.array([ep["length"] == 0 for ep in self._eps])
        actions = self.agent.act(self._batch(self._obs, envs, is_first), eval_mode=False, step=self.step)
        if not np.isfinite(actions).all():  # diverged networks: stop before the env gets NaN controls
            raise NonFiniteLossError(self.diverged_message(f"the agent's action {actions}"))
        t1 = time.perf_counter()
        self.seconds["act"] += t1 - t0
        if self._overlap:
            self.envs.step_async(actions)
            update_metrics, seconds_update = self._update(steps)  # the envs step in their subprocesses meanwhile
            obs, rewards, terminated, truncated, info = self.envs.step_wait()
            self.seconds["env"] += time.perf_counter() - t1 - seconds_update  # the wait beyond the updates
        else:
            obs, rewards, terminated, truncated, info = self.envs.step(actions)
            self.seconds["env"] += time.perf_counter() - t1
        if "seconds_decoder" in info:  # a skill wrapper's decoder, part of "env" (summed over the envs)
            self.seconds["decoder"] = self.seconds.get("decoder", 0.0) + float(
                _info_array(info, "seconds_decoder", np.zeros(len(envs))).sum())
        obs = self._observe(obs, envs, is_first=False)
        env_rewards = _info_array(info, "env_reward", rewards)
        success = _info_array(info, "success", np.zeros(len(envs)))
        self.frames += int(_info_array(info, "env_steps", np.ones(len(envs), int)).sum()) * self._action_repeat
        metrics: dict[str, float] = {"frames": float(self.frames)}
        ended = []
        for i in envs:
            ep = self._eps[i]
            ep["return"] += float(env_rewards[i])  # the env's own return
            ep["reward"] += float(rewards[i])
            ep["obs"].append({k: v[i] for k, v in obs.items()})
            ep["steps"].append((actions[i], rewards[i], bool(terminated[i]), bool(truncated[i])))
            ep["length"] += 1
            ep["success"] = max(ep["success"], float(success[i]))
            if not self._store_at_end:
                self._store(ep)
            if terminated[i] or truncated[i]:
                ended.append(self._end_episode(i))
        self._obs = obs
        if ended:
            metrics["episode"] = float(self.episode)
            for k in dict.fromkeys(k for m in ended for k in m):  # episode_reward: only where it differs
                metrics[k] = float(np.mean([m[k] for m in ended if k in m]))
        metrics.update(update_metrics if self._overlap else self._update(steps)[0])
        metrics.update({f"seconds_{k}": v for k, v in self.seconds.items()})  # cumulative, this process
        return metrics

    def _update(self, steps: range) -> tuple[dict[str, Any], float]:
        """The network reset and the updates due at the env steps ``steps``: their metrics and the
        seconds they took."""
        if self._reset_every and any(t > 0 and t % self._reset_every == 0 for t in steps):
            self.agent.reset_networks()
            log.info(f"[reset] step={self.step}: actor and critic re-initialised "
                     f"(reset_every_steps={self._reset_every})")
        metrics: dict[str, Any] = {}
        seconds = 0.0
        due = [t for t in steps if t >= self._update_after and t % self._update_every == 0]
        if due and self.replay.steps_added > 0:
            t0 = time.perf_counter()
            for t in due:
                for _ in range(self._updates_per_step):
                    metrics.update(self.agent.update(self._sample(), t))
            seconds = time.perf_counter() - t0
            self.seconds["update"] += seconds
        return metrics, seconds

    def run(self) -> dict[str, float]:
        """As :meth:`Trainer.run`; the training envs (their subprocesses) are closed at the end."""
        try:
            return super().run()
        finally:
            self.envs.close()

    def evaluate(self, logger, final: bool) -> dict[str, float]:
        """As :meth:`Trainer.evaluate`; with ``eval.on_train_env`` the evaluator has reset the training
        env, so training goes on with a fresh episode (the one in progress is dropped)."""
        metrics = super().evaluate(logger, final)
        if self.cfg.eval.get("on_train_env", False):
            self._eps = [None] * self.num_envs
        return metrics

    def eval_context(self) -> dict[str, float]:
        """``frames``: env steps × action repeat so far (a skill-space step runs up to H env steps)."""
        return {"frames": float(self.frames)}

    def export_weights(self) -> Path:
        """Check frozen weights (:meth:`Agent.check_frozen`, e.g. the residual agent's base) before
        exporting the final weights."""
        self.agent.check_frozen()
        return super().export_weights()

    @cached_property
    def replay_store(self) -> ReplayStore:
        """Where the replay buffer is saved, one chunk of new steps per checkpoint (``checkpoints/replay/``)."""
        return ReplayStore(checkpoint_dir(self.run_dir) / "replay")

    def extra_state(self) -> dict[str, Any]:
        """The episode (all envs and per env) and frame counters and the replay buffer's counters and
        chunk list; writes the steps stored since the last call as a new chunk file (:meth:`ReplayStore.save`)."""
        return {"replay": self.replay_store.save(self.replay), "episode": self.episode,
                "env_episodes": list(self.env_episodes), "frames": self.frames}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`, the replay buffer from its chunk files.

        Raises:
            CheckpointError: if a chunk file is missing or unreadable.
            ConfigError: if the checkpoint was written with another ``num_envs``.
        """
        env_episodes = state.get("env_episodes", [state["episode"]])  # checkpoints of one-env runs before num_envs
        if len(env_episodes) != self.num_envs:
            raise ConfigError(f"the checkpoint in {self.run_dir} was written by a run with num_envs="
                              f"{len(env_episodes)}; resume it with num_envs={len(env_episodes)} (got {self.num_envs})")
        self.replay_store.load(self.replay, state["replay"])
        self.episode, self.env_episodes = state["episode"], list(env_episodes)
        # checkpoints written before frames were counted: one env step per agent step
        self.frames = int(state.get("frames", state["step"] * self._action_repeat))


def _info_array(info: dict[str, Any], key: str, default: np.ndarray) -> np.ndarray:
    """A vector env's per-env ``info[key]`` (N,), ``default`` (N,) for the envs whose info lacks it
    (Gymnasium marks those where ``info["_" + key]`` is false)."""
    if key not in info:
        return np.asarray(default)
    return np.where(info[f"_{key}"], info[key], default)
