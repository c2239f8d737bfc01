"""Online trainer (DrQ-v2, ROT): one environment step per training step, updates from a replay
buffer, optional rewards computed at episode end (e.g. optimal transport to the demos)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from polytask.data.buffer import DemoBuffer
from polytask.data.replay import ReplayBuffer
from polytask.rewards.ot import OTRewarder
from polytask.training.evaluator import Evaluator
from polytask.training.trainer import Trainer

#: Training episode ``e`` of a run with seed ``s`` resets with ``TRAIN_SEED_BASE + 100_000·s + e``
#: (disjoint from the demonstration and evaluation seeds).
TRAIN_SEED_BASE = 2_000_000



class OnlineTrainer(Trainer):
    """Acts in ``env`` with exploration, stores steps in ``replay`` and updates the agent every
    ``cfg.update_every_steps`` steps once ``cfg.update_after_steps`` steps are stored.

    Args:
        env: the training env (one task).
        replay: the replay buffer (saved in checkpoints, so a resumed run keeps its data).
        demos: demonstrations for the agent's BC term (``bc_regularize``), or None.
        reward_fn: rewards computed at each episode's end from its observations (ROT), used instead
            of the env's (the episode enters the replay buffer then), or None.

    A resumed run starts a new episode: the env's mid-episode state is not restored (the steps of
    the interrupted episode stay in the replay buffer).
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator: Evaluator, env, replay: ReplayBuffer,
                 demos: DemoBuffer | None = None, reward_fn: OTRewarder | None = None):
        super().__init__(cfg, run_dir, agent, evaluator)
        self.env, self.replay, self.demos, self.reward_fn = env, replay, demos, reward_fn
        self.uses_demos = demos is not None or reward_fn is not None
        # read once: the config is fixed for the run and these are used at every step
        self._action_repeat = int(cfg.suite.env.get("action_repeat", 1))
        self._update_after, self._update_every = int(cfg.update_after_steps), int(cfg.update_every_steps)
        self._batch_size = int(cfg.batch_size)
        self._obs_key = "pixels" if cfg.obs_type == "pixels" else "state"
        self.episode = 0
        self.seconds = {"act": 0.0, "env": 0.0, "update": 0.0, "reward": 0.0}  # time spent in this process
        self._obs: dict[str, np.ndarray] | None = None
        self._ep: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> "OnlineTrainer":
        """The env of the run's single task, the agent, a replay buffer and the evaluator.

        Raises:
            ConfigError: if the run names more than one task.
        """
        from polytask.training.build import ConfigError, env_factory, frame_stack_of, load_bc_weights, \
            load_demo_buffer, make_agent, make_evaluator, make_ot_rewarder, tasks_of

        tasks = tasks_of(cfg)
        if len(tasks) != 1:
            raise ConfigError(f"agent={cfg.agent.name} trains on one task; got {tasks}. Run one per task, "
                              "e.g. with -m suite.task=[a],[b]")
        if cfg.bc_regularize and cfg.agent.get("bc_weight_type") == "qfilter" and not cfg.load_bc:
            raise ConfigError("bc_regularize=true with the soft Q-filter needs the BC policy: add load_bc=true "
                              "(or set agent.bc_weight_type=schedule)")
        env = env_factory(cfg)(tasks[0])
        env.action_space.seed(int(cfg.seed))
        agent = make_agent(cfg, env)
        if cfg.load_bc:
            agent.load_bc(load_bc_weights(cfg))
        demo_buffer, reward_fn = None, None
        if cfg.irl or cfg.bc_regularize:
            demo_buffer, demos = load_demo_buffer(cfg)
            if cfg.irl:
                reward_fn = make_ot_rewarder(cfg, agent, demos[0])
        obs_shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
        replay = ReplayBuffer(int(cfg.replay_capacity), obs_shapes, int(env.action_space.shape[0]),
                              frame_stack=frame_stack_of(cfg), nstep=int(cfg.nstep), discount=float(cfg.discount),
                              seed=int(cfg.seed))
        return cls(cfg, run_dir, agent, make_evaluator(cfg), env, replay,
                   demo_buffer if cfg.bc_regularize else None, reward_fn)

    def _start_episode(self) -> None:
        obs, _ = self.env.reset(seed=TRAIN_SEED_BASE + 100_000 * int(self.cfg.seed) + self.episode)
        self._obs = obs
        # with a reward_fn the episode is stored at its end, with its computed rewards
        self._ep = {"return": 0.0, "length": 0, "success": 0.0, "obs": [obs], "steps": []}
        if self.reward_fn is None:
            self.replay.add_first(obs)

    def _end_episode(self) -> dict[str, float]:
        ep = self._ep
        metrics = {"episode": float(self.episode + 1), "episode_length": float(ep["length"]),
                   "episode_success": ep["success"], "episode_return": ep["return"]}  # the env's own return
        if self.reward_fn is not None:
            t0 = time.perf_counter()
            rewards = self.reward_fn(np.stack([o[self._obs_key] for o in ep["obs"]]))
            self.seconds["reward"] += time.perf_counter() - t0
            self.replay.add_first(ep["obs"][0])
            for t, (action, terminated, truncated) in enumerate(ep["steps"]):
                self.replay.add(action, rewards[t], ep["obs"][t + 1], terminated, truncated)
            metrics["episode_reward"] = float(rewards.sum())  # the reward the agent learns from
        self.episode += 1
        self._obs = None
        return metrics

    def train_step(self) -> dict[str, float]:
        if self._obs is None:
            self._start_episode()
        t0 = time.perf_counter()
        batch_obs = {k: v[None] for k, v in self._obs.items()}
        action = self.agent.act(batch_obs, eval_mode=False, step=self.step)[0]
        t1 = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.seconds["act"] += t1 - t0
        self.seconds["env"] += time.perf_counter() - t1
        ep = self._ep
        if self.reward_fn is None:
            self.replay.add(action, reward, obs, terminated, truncated)
        else:
            ep["obs"].append(obs)
            ep["steps"].append((action, terminated, truncated))
        ep["return"] += float(reward)
        ep["length"] += 1
        ep["success"] = max(ep["success"], float(info.get("success", 0.0)))
        metrics: dict[str, float] = {"frames": float((self.step + 1) * self._action_repeat)}
        if terminated or truncated:
            metrics.update(self._end_episode())
        else:
            self._obs = obs
        if (self.step >= self._update_after and self.step % self._update_every == 0
                and self.replay.steps_added > 0):
            t0 = time.perf_counter()
            demo = self.demos.sample(self._batch_size) if self.demos is not None else None
            metrics.update(self.agent.update(self.replay.sample(self._batch_size), self.step, demo))
            self.seconds["update"] += time.perf_counter() - t0
        metrics.update({f"seconds_{k}": v for k, v in self.seconds.items()})  # cumulative, this process
        return metrics

    def extra_state(self) -> dict[str, Any]:
        state = {"replay": self.replay.state_dict(), "episode": self.episode}
        if self.demos is not None:
            state["demos"] = self.demos.state_dict()
        if self.reward_fn is not None:
            state["reward_fn"] = self.reward_fn.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        self.episode = state["episode"]
        if self.demos is not None:
            self.demos.load_state_dict(state["demos"])
        if self.reward_fn is not None:
            self.reward_fn.load_state_dict(state["reward_fn"])
