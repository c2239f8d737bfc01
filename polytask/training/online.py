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
from omegaconf import DictConfig

from polytask.data.prefetch import PrefetchSampler
from polytask.data.replay import ReplayBuffer
from polytask.errors import ConfigError
from polytask.training.checkpoint import checkpoint_dir
from polytask.training.demos import frame_stack_of
from polytask.training.evaluator import Evaluator
from polytask.training.inputs import make_agent
from polytask.training.replay_store import ReplayStore
from polytask.training.run import make_evaluator, make_train_env, tasks_of
from polytask.training.trainer import NonFiniteLossError, Trainer

#: Training episode ``e`` of a run with seed ``s`` resets with ``TRAIN_SEED_BASE + 100_000·s + e``
#: (disjoint from the demonstration and evaluation seeds).
TRAIN_SEED_BASE = 2_000_000

log = logging.getLogger("polytask")


class OnlineTrainer(Trainer):
    """Acts in ``env`` with exploration, stores steps in ``replay`` and updates the agent
    ``cfg.updates_per_step`` times (default 1, each on a fresh batch) every ``cfg.update_every_steps``
    steps once ``cfg.update_after_steps`` steps are stored: the update-to-data ratio is
    ``updates_per_step / update_every_steps``.

    Args:
        env: the training env (one task), with the run's training wrappers.
        replay: the replay buffer (saved with the checkpoints, so a resumed run keeps its data).

    A resumed run starts a new episode: the env's mid-episode state is not restored (the steps of
    the interrupted episode stay in the replay buffer).

    What the trainer calls on the agent (:class:`polytask.agents.base.Agent`):

    - ``act(obs, eval_mode=False, step)`` with, besides the env's keys (1, ...), ``task_id``,
      ``env_index`` (both 0, int64 (1,)) and ``is_first`` bool (1,) (true on an episode's first
      step), as the evaluator passes them, so policies with memory can act here too.
    - ``observe(obs)``: extras for every arriving observation (the reset one and the last one of an
      episode included), stored with it as the observation keys of ``extra_obs_shapes``.
    - ``episode_rewards(obs, step)`` at an episode's end when ``rewards_at_episode_end`` (ROT's OT
      rewards): the episode then enters the replay buffer with those rewards.
    - ``check_frozen()`` before the final weights are exported.
    - ``reset_networks()`` every ``cfg.reset_every_steps`` agent steps (0: never), before that
      step's updates; the replay buffer is kept (periodic resets, Nikishin et al. 2022).

    ``episode_return`` is the env's return (``info["env_reward"]`` where a wrapper changed the
    reward, e.g. :class:`polytask.suites.wrappers.SparseReward`); ``episode_reward`` is the return of
    the rewards learnt from, where they differ.

    Raises:
        ConfigError: for update or reset schedules that cannot work.
    """

    cumulative_metrics = ("frames", "episode", "seconds_*")  # frames and episodes so far, seconds per part

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator: Evaluator, env, replay: ReplayBuffer):
        super().__init__(cfg, run_dir, agent, evaluator)
        self.env, self.replay = env, replay
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
        # replay_prefetch: batches sampled one update ahead in a background thread (see PrefetchSampler)
        self._sample = (PrefetchSampler(replay, self._batch_size, getattr(agent, "device", "cpu")).sample
                        if cfg.get("replay_prefetch", False) else lambda: self.replay.sample(self._batch_size))
        self.episode = 0
        self.frames = 0  # env steps × action repeat (a skill-space step runs several env steps)
        self.seconds = {"act": 0.0, "env": 0.0, "update": 0.0, "reward": 0.0}  # time spent in this process
        self._obs: dict[str, np.ndarray] | None = None
        self._ep: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> OnlineTrainer:
        """The training env of the run's single task (:func:`make_train_env`), the agent with the
        inputs it asks for (:func:`make_agent`), a replay buffer (with the agent's
        ``extra_obs_shapes``) and the evaluator.

        Raises:
            ConfigError: if the run names more than one task, or an input of the agent is missing
                (e.g. the BC weights of ``load_bc``: the message gives the command that makes them).
        """
        tasks = tasks_of(cfg)
        if len(tasks) != 1:
            raise ConfigError(f"agent={cfg.agent.name} trains on one task; got {tasks}. Run one per task, "
                              "e.g. with -m suite.task=[a],[b]")
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
        evaluator = make_evaluator(cfg, agent.wrap_env, env if cfg.eval.get("on_train_env", False) else None)
        return cls(cfg, run_dir, agent, evaluator, env, replay)

    @staticmethod
    def _batch(obs: dict[str, np.ndarray], is_first: bool) -> dict[str, np.ndarray]:
        """One observation as a batch of 1, with the ``task_id``/``env_index``/``is_first`` keys the
        evaluator passes too."""
        batch = {k: v[None] for k, v in obs.items()}
        batch["task_id"], batch["env_index"] = np.zeros(1, np.int64), np.zeros(1, np.int64)
        batch["is_first"] = np.array([is_first])
        return batch

    def _observe(self, obs: dict[str, np.ndarray], is_first: bool) -> dict[str, np.ndarray]:
        """``obs`` with the agent's per-observation extras (:meth:`Agent.observe`), if it has any."""
        if not self.agent.extra_obs_shapes:
            return obs
        t0 = time.perf_counter()
        extras = self.agent.observe(self._batch(obs, is_first))
        self.seconds["act"] += time.perf_counter() - t0
        return {**obs, **{k: np.asarray(v)[0] for k, v in extras.items()}}

    def _start_episode(self) -> None:
        obs, _ = self.env.reset(seed=TRAIN_SEED_BASE + 100_000 * int(self.cfg.seed) + self.episode)
        obs = self._observe(obs, is_first=True)
        self._obs = obs
        # with rewards computed at its end the episode is stored then, with those rewards
        self._ep = {"return": 0.0, "reward": 0.0, "length": 0, "success": 0.0, "obs": [obs], "steps": []}
        if not self.agent.rewards_at_episode_end:
            self.replay.add_first(obs)

    def _end_episode(self) -> dict[str, float]:
        ep = self._ep
        metrics = {"episode": float(self.episode + 1), "episode_length": float(ep["length"]),
                   "episode_success": ep["success"], "episode_return": ep["return"]}  # the env's own return
        if self.agent.rewards_at_episode_end:
            t0 = time.perf_counter()
            obs = {k: np.stack([o[k] for o in ep["obs"]]) for k in ep["obs"][0]}
            rewards = np.asarray(self.agent.episode_rewards(obs, self.step), np.float32)
            self.seconds["reward"] += time.perf_counter() - t0
            self.replay.add_first(ep["obs"][0])
            for t, (action, terminated, truncated) in enumerate(ep["steps"]):
                self.replay.add(action, rewards[t], ep["obs"][t + 1], terminated, truncated)
            metrics["episode_reward"] = float(rewards.sum())  # the reward the agent learns from
        elif ep["reward"] != ep["return"]:
            metrics["episode_reward"] = ep["reward"]
        self.episode += 1
        self._obs = None
        return metrics

    def train_step(self) -> dict[str, float]:
        if self._obs is None:
            self._start_episode()
        t0 = time.perf_counter()
        ep = self._ep
        action = self.agent.act(self._batch(self._obs, ep["length"] == 0), eval_mode=False, step=self.step)[0]
        if not np.isfinite(action).all():  # diverged networks: stop before the env gets NaN controls
            raise NonFiniteLossError(self.diverged_message(f"the agent's action {action}"))
        t1 = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.seconds["act"] += t1 - t0
        self.seconds["env"] += time.perf_counter() - t1
        obs = self._observe(obs, is_first=False)
        ep["return"] += float(info.get("env_reward", reward))  # the env's own return
        ep["reward"] += float(reward)
        success = float(info.get("success", 0.0))
        if not self.agent.rewards_at_episode_end:
            self.replay.add(action, reward, obs, terminated, truncated)
        else:
            ep["obs"].append(obs)
            ep["steps"].append((action, terminated, truncated))
        ep["length"] += 1
        ep["success"] = max(ep["success"], success)
        self.frames += int(info.get("env_steps", 1)) * self._action_repeat
        metrics: dict[str, float] = {"frames": float(self.frames)}
        if terminated or truncated:
            metrics.update(self._end_episode())
        else:
            self._obs = obs
        if self._reset_every and self.step > 0 and self.step % self._reset_every == 0:
            self.agent.reset_networks()
            log.info(f"[reset] step={self.step}: actor and critic re-initialised "
                     f"(reset_every_steps={self._reset_every})")
        if (self.step >= self._update_after and self.step % self._update_every == 0
                and self.replay.steps_added > 0):
            t0 = time.perf_counter()
            for _ in range(self._updates_per_step):
                metrics.update(self.agent.update(self._sample(), self.step))
            self.seconds["update"] += time.perf_counter() - t0
        metrics.update({f"seconds_{k}": v for k, v in self.seconds.items()})  # cumulative, this process
        return metrics

    def evaluate(self, logger, final: bool) -> dict[str, float]:
        """As :meth:`Trainer.evaluate`; with ``eval.on_train_env`` the evaluator has reset the training
        env, so training goes on with a fresh episode (the one in progress is dropped)."""
        metrics = super().evaluate(logger, final)
        if self.cfg.eval.get("on_train_env", False):
            self._obs = None
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
        """The episode and frame counters and the replay buffer's counters and chunk list; writes the steps stored
        since the last call as a new chunk file (:meth:`ReplayStore.save`)."""
        return {"replay": self.replay_store.save(self.replay), "episode": self.episode, "frames": self.frames}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`, the replay buffer from its chunk files.

        Raises:
            CheckpointError: if a chunk file is missing or unreadable.
        """
        self.replay_store.load(self.replay, state["replay"])
        self.episode = state["episode"]
        # checkpoints written before frames were counted: one env step per agent step
        self.frames = int(state.get("frames", state["step"] * self._action_repeat))
