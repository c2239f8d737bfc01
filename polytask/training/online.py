"""Online trainer (DrQ-v2, ROT, SAC, Policy Decorator): one environment step per training step,
updates from a replay buffer, optional rewards computed at episode end (e.g. optimal transport to
the demos) or the env's success indicator as a sparse reward."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from polytask.data.buffer import DemoBuffer
from polytask.data.replay import ReplayBuffer
from polytask.rewards.ot import OTRewarder
from polytask.training.evaluator import Evaluator
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
        env: the training env (one task).
        replay: the replay buffer (saved in checkpoints, so a resumed run keeps its data).
        demos: demonstrations for the agent's BC term (``bc_regularize``), or None.
        reward_fn: rewards computed at each episode's end from its observations and the agent step (ROT), used instead
            of the env's (the episode enters the replay buffer then), or None.

    A resumed run starts a new episode: the env's mid-episode state is not restored (the steps of
    the interrupted episode stay in the replay buffer).

    Agent hooks (all optional, so any agent with ``act``/``update`` works):

    - ``act(obs, eval_mode=False, step)`` gets, besides the env's keys (1, ...), ``task_id``,
      ``env_index`` (both 0, int64 (1,)) and ``is_first`` bool (1,) (true on an episode's first
      step), as the evaluator passes them, so policies with memory can act here too.
    - ``observe(obs) -> {key: (1, ...)}``: extras computed once for every arriving observation (the
      reset one and the last one of an episode included, same extra keys as ``act``) and stored with
      it as observation keys whose shapes the agent lists in ``extra_obs_shapes`` (the residual
      agent's base actions).
    - ``check_frozen()``: called before the final weights are exported; raises if frozen weights
      changed.
    - ``reset_networks()``: called every ``cfg.reset_every_steps`` agent steps (0: never), before that
      step's updates; the replay buffer is kept (periodic resets, Nikishin et al. 2022).

    With ``cfg.sparse_reward`` the reward stored and learnt from is the env's ``info["success"]``
    (0/1) plus ``cfg.sparse_reward_offset`` (default 0; Policy Decorator uses −1: −1 per step until
    success) instead of its shaped reward; ``episode_return`` stays the env's return. With
    ``cfg.success_terminates`` a training episode ends, as terminated (no bootstrapping), at its
    first success, as in ManiSkill's sparse-reward tasks (Meta-World never terminates by itself).
    """

    cumulative_metrics = ("frames", "episode", "seconds_*")  # frames and episodes so far, seconds per part

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, evaluator: Evaluator, env, replay: ReplayBuffer,
                 demos: DemoBuffer | None = None, reward_fn: OTRewarder | None = None):
        super().__init__(cfg, run_dir, agent, evaluator)
        self.env, self.replay, self.demos, self.reward_fn = env, replay, demos, reward_fn
        # read once: the config is fixed for the run and these are used at every step
        self._action_repeat = int(cfg.suite.env.get("action_repeat", 1))
        self._update_after, self._update_every = int(cfg.update_after_steps), int(cfg.update_every_steps)
        self._updates_per_step = int(cfg.get("updates_per_step", 1))
        if self._update_every < 1 or self._updates_per_step < 1:
            raise ValueError(f"update_every_steps ({self._update_every}) and updates_per_step "
                             f"({self._updates_per_step}) must be at least 1")
        self._reset_every = int(cfg.get("reset_every_steps", 0) or 0)
        if self._reset_every < 0 or (self._reset_every and not hasattr(agent, "reset_networks")):
            raise ValueError(f"reset_every_steps={self._reset_every}: must be 0 (never) or a positive number of "
                             f"agent steps, for an agent with reset_networks() (agent={cfg.agent.name} "
                             f"{'has' if hasattr(agent, 'reset_networks') else 'lacks'} it)")
        self._batch_size = int(cfg.batch_size)
        self._obs_key = "pixels" if cfg.obs_type == "pixels" else "state"
        self._sparse_reward = bool(cfg.get("sparse_reward", False))
        if self._sparse_reward and reward_fn is not None:
            raise ValueError("sparse_reward=true and a reward_fn (irl=true) exclude each other")
        self._sparse_offset = float(cfg.get("sparse_reward_offset", 0.0))
        self._success_terminates = bool(cfg.get("success_terminates", False))
        self.episode = 0
        self.seconds = {"act": 0.0, "env": 0.0, "update": 0.0, "reward": 0.0}  # time spent in this process
        self._obs: dict[str, np.ndarray] | None = None
        self._ep: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path) -> "OnlineTrainer":
        """The env of the run's single task, the agent (with its frozen base policy when the config
        names ``base_policy``), a replay buffer (with the agent's ``extra_obs_shapes``) and the
        evaluator.

        Raises:
            ConfigError: if the run names more than one task, asks for OT rewards without their
                config, or names no or a missing ``base_policy`` (agent=residual).
        """
        from polytask.training.build import ConfigError, env_factory, frame_stack_of, load_base_policy, \
            load_bc_into, load_demo_buffer, make_agent, make_evaluator, make_ot_rewarder, tasks_of

        tasks = tasks_of(cfg)
        if len(tasks) != 1:
            raise ConfigError(f"agent={cfg.agent.name} trains on one task; got {tasks}. Run one per task, "
                              "e.g. with -m suite.task=[a],[b]")
        # DrQ-v2's options (cfgs/agent/drqv2.yaml); other agents' configs may leave them out
        irl, load_bc, bc_regularize = (bool(cfg.get(k, False)) for k in ("irl", "load_bc", "bc_regularize"))
        if bc_regularize and cfg.agent.get("bc_weight_type") == "qfilter" and not load_bc:
            raise ConfigError("bc_regularize=true with the soft Q-filter needs the BC policy: add load_bc=true "
                              "(or set agent.bc_weight_type=schedule)")
        if irl and ("ot" not in cfg or cfg.get("sparse_reward", False)):
            raise ConfigError(f"irl=true (optimal-transport rewards) is not set up for agent={cfg.agent.name}"
                              f"{' with sparse_reward=true' if 'ot' in cfg else ''}: use irl=false")
        env = env_factory(cfg)(tasks[0])
        env.action_space.seed(int(cfg.seed))
        extra = {"base_policy": load_base_policy(cfg, env)} if "base_policy" in cfg else {}  # agent=residual
        agent = make_agent(cfg, env, **extra)
        if load_bc:
            load_bc_into(agent, cfg, env)
        demo_buffer, reward_fn = None, None
        if irl or bc_regularize:
            demo_buffer, demos = load_demo_buffer(cfg)
            if irl:
                reward_fn = make_ot_rewarder(cfg, agent, demos[0])
        obs_shapes = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
        obs_shapes.update(getattr(agent, "extra_obs_shapes", {}))
        replay = ReplayBuffer(int(cfg.replay_capacity), obs_shapes, int(env.action_space.shape[0]),
                              frame_stack=frame_stack_of(cfg), nstep=int(cfg.nstep), discount=float(cfg.discount),
                              seed=int(cfg.seed))
        evaluator = make_evaluator(cfg, env if cfg.eval.get("on_train_env", False) else None)
        return cls(cfg, run_dir, agent, evaluator, env, replay,
                   demo_buffer if bc_regularize else None, reward_fn)

    @staticmethod
    def _batch(obs: dict[str, np.ndarray], is_first: bool) -> dict[str, np.ndarray]:
        """One observation as a batch of 1, with the ``task_id``/``env_index``/``is_first`` keys the
        evaluator passes too."""
        batch = {k: v[None] for k, v in obs.items()}
        batch["task_id"], batch["env_index"] = np.zeros(1, np.int64), np.zeros(1, np.int64)
        batch["is_first"] = np.array([is_first])
        return batch

    def _observe(self, obs: dict[str, np.ndarray], is_first: bool) -> dict[str, np.ndarray]:
        """``obs`` with the agent's per-observation extras (``observe`` hook), if it has any."""
        hook = getattr(self.agent, "observe", None)
        if hook is None:
            return obs
        t0 = time.perf_counter()
        extras = hook(self._batch(obs, is_first))
        self.seconds["act"] += time.perf_counter() - t0
        return {**obs, **{k: np.asarray(v)[0] for k, v in extras.items()}}

    def _start_episode(self) -> None:
        obs, _ = self.env.reset(seed=TRAIN_SEED_BASE + 100_000 * int(self.cfg.seed) + self.episode)
        obs = self._observe(obs, is_first=True)
        self._obs = obs
        # with a reward_fn the episode is stored at its end, with its computed rewards
        self._ep = {"return": 0.0, "reward": 0.0, "length": 0, "success": 0.0, "obs": [obs], "steps": []}
        if self.reward_fn is None:
            self.replay.add_first(obs)

    def _end_episode(self) -> dict[str, float]:
        ep = self._ep
        metrics = {"episode": float(self.episode + 1), "episode_length": float(ep["length"]),
                   "episode_success": ep["success"], "episode_return": ep["return"]}  # the env's own return
        if self.reward_fn is not None:
            t0 = time.perf_counter()
            rewards = self.reward_fn(np.stack([o[self._obs_key] for o in ep["obs"]]), self.step)
            self.seconds["reward"] += time.perf_counter() - t0
            self.replay.add_first(ep["obs"][0])
            for t, (action, terminated, truncated) in enumerate(ep["steps"]):
                self.replay.add(action, rewards[t], ep["obs"][t + 1], terminated, truncated)
            metrics["episode_reward"] = float(rewards.sum())  # the reward the agent learns from
        elif self._sparse_reward:
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
        ep["return"] += float(reward)  # the env's own return
        success = float(info.get("success", 0.0))
        if self._sparse_reward:
            reward = success + self._sparse_offset
            ep["reward"] += reward
        terminated = terminated or (self._success_terminates and success > 0)
        if self.reward_fn is None:
            self.replay.add(action, reward, obs, terminated, truncated)
        else:
            ep["obs"].append(obs)
            ep["steps"].append((action, terminated, truncated))
        ep["length"] += 1
        ep["success"] = max(ep["success"], success)
        metrics: dict[str, float] = {"frames": float((self.step + 1) * self._action_repeat)}
        if terminated or truncated:
            metrics.update(self._end_episode())
        else:
            self._obs = obs
        if self._reset_every and self.step > 0 and self.step % self._reset_every == 0:
            self.agent.reset_networks()
            log.info(f"[reset] step={self.step}: actor and critic re-initialised (reset_every_steps={self._reset_every})")
        if (self.step >= self._update_after and self.step % self._update_every == 0
                and self.replay.steps_added > 0):
            t0 = time.perf_counter()
            for _ in range(self._updates_per_step):
                demo = self.demos.sample(self._batch_size) if self.demos is not None else None
                metrics.update(self.agent.update(self.replay.sample(self._batch_size), self.step, demo))
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

    def export_weights(self) -> Path:
        """Check frozen weights (agents with ``check_frozen``, e.g. the residual agent's base) before
        exporting the final weights."""
        check = getattr(self.agent, "check_frozen", None)
        if check is not None:
            check()
            log.info("Frozen base policy weights unchanged (fingerprint checked)")
        return super().export_weights()

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
