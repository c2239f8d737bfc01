"""Online training from several envs at once (``num_envs``): per-env seeding and episodes, the
update-to-data ratio, per-episode hooks, and resume."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from polytask.data.replay import ReplayBuffer
from polytask.errors import ConfigError
from polytask.training.build import build_trainer
from polytask.training.checkpoint import load_checkpoint
from polytask.training.online import OnlineTrainer
from tests.conftest import compose_cfg, online_run_args

A = 2


class VaryingEnv(gym.Env):
    """Random 3-d states; an episode lasts 2 to 6 steps, drawn at reset from the seed, so envs end
    their episodes at different steps; reward = the action's first entry + the state's first."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)})
    action_space = gym.spaces.Box(-1.0, 1.0, (A,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(2, 7))
        self.state = self.np_random.standard_normal(3).astype(np.float32)
        return {"state": self.state}, {}

    def step(self, action):
        self.t += 1
        reward = float(action[0] + self.state[0])
        self.state = self.np_random.standard_normal(3).astype(np.float32)
        return {"state": self.state}, reward, False, self.t == self.length, {"success": float(self.t == 2)}


class StubAgent:
    """Acts deterministically from the state (so runs differ only by their envs), counts updates,
    and records what the trainer's per-observation and per-episode hooks see."""

    can_reset_networks = False

    def __init__(self, rewards_at_episode_end=False, observes=False):
        self.rewards_at_episode_end = rewards_at_episode_end
        self.extra_obs_shapes = {"extra": (1,)} if observes else {}
        self.updates, self.observed, self.episodes = [], [], []

    def act(self, obs, eval_mode=True, step=0):
        assert obs["env_index"].tolist() == list(range(len(obs["state"])))
        return np.tanh(obs["state"][:, :A]).astype(np.float32)

    def observe(self, obs):
        self.observed.append((obs["env_index"].tolist(), obs["is_first"].tolist()))
        return {"extra": obs["state"][:, :1] * 2}

    def episode_rewards(self, obs, step):
        self.episodes.append(len(obs["state"]))
        return obs["state"][1:, 1]

    def update(self, batch, step=0):
        self.updates.append(step)
        return {}


def _trainer(tmp_path, num_envs, seed, agent=None, subprocesses=False, **overrides):
    cfg = compose_cfg("agent=sac", f"seed={seed}", "update_after_steps=0", "batch_size=4",
                      *[f"{k}={v}" for k, v in overrides.items()])
    agent = agent or StubAgent()
    envs = (AsyncVectorEnv([VaryingEnv] * num_envs, context="spawn", autoreset_mode=AutoresetMode.DISABLED)
            if subprocesses else SyncVectorEnv([VaryingEnv] * num_envs, autoreset_mode=AutoresetMode.DISABLED))
    replay = ReplayBuffer(1000, {"state": (3,), **agent.extra_obs_shapes}, A, nstep=1, seed=seed)
    return OnlineTrainer(cfg, tmp_path, agent, None, envs, replay)


def _run(trainer, steps):
    while trainer.step < steps:
        trainer.train_step()
        trainer.step += trainer.steps_per_train_step  # as Trainer._loop does
    return trainer


def _episodes(replay):
    """The stored episodes, each as a tuple of its steps' (obs, action, reward, next_obs) bytes."""
    rows = np.arange(replay.count)
    eps = {}
    for r in rows[replay.has_action[: replay.count]]:
        eps.setdefault(int(replay.ep_start[r]), []).append(
            b"".join(np.asarray(x).tobytes() for x in (replay.obs["state"][r], replay.action[r], replay.reward[r],
                                                       replay.obs["state"][r + 1], replay.truncated[r])))
    return [tuple(e) for e in eps.values()]


def test_vector_run_steps_env_i_as_a_single_env_run_with_seed_plus_i(tmp_path):
    vec = _run(_trainer(tmp_path / "v", 3, seed=5), 60)
    assert vec.step == 60 and vec.frames == 60 * 2  # Meta-World's action repeat: 2 frames per step
    assert sum(vec.env_episodes) == vec.episode and len(set(vec.env_episodes)) > 1  # envs end apart
    stored = _episodes(vec.replay)
    assert len(stored) == vec.episode  # whole episodes only, each env's in-flight one not yet
    expected = []
    for i in range(3):
        single = _run(_trainer(tmp_path / f"s{i}", 1, seed=5 + i), 60)
        expected += _episodes(single.replay)[: vec.env_episodes[i]]
    assert sorted(stored) == sorted(expected)


def test_one_env_stores_steps_as_they_come_and_several_at_episode_end(tmp_path):
    one = _run(_trainer(tmp_path / "1", 1, seed=0), 3)
    assert one.replay.steps_added == 3
    two = _trainer(tmp_path / "2", 2, seed=0)
    two.train_step()
    assert two.replay.steps_added == 0 and two.replay.count == 0  # both episodes last 2+ steps


@pytest.mark.parametrize("num_envs", [1, 4])
def test_updates_keep_the_update_to_data_ratio(tmp_path, num_envs):
    agent = StubAgent()
    trainer = _run(_trainer(tmp_path, num_envs, seed=1, agent=agent, update_after_steps=10, update_every_steps=2,
                            updates_per_step=3), 40)
    due = [t for t in range(10, 40) if t % 2 == 0]  # env steps from update_after_steps on, every 2nd
    assert trainer.step == 40 and sorted(agent.updates) == sorted(due * 3)


@pytest.mark.parametrize("num_envs", [1, 2])
def test_overlapped_updates_run_while_the_envs_step_one_step_staler(tmp_path, num_envs):
    """overlap_updates: the same transitions and update steps as a plain run (the stub acts from the
    state alone); each update's batch comes from the buffer before the step's transitions arrive.
    (By step 14 every env has ended an episode, so neither run skips updates for an empty buffer.)"""
    runs = {}
    for overlap in (False, True):
        agent = StubAgent()
        trainer = _trainer(tmp_path / str(overlap), num_envs, seed=4, agent=agent, subprocesses=overlap,
                           overlap_updates=overlap, update_after_steps=14)
        seen = []  # steps in the buffer at each sampled batch
        trainer._sample = lambda t=trainer, seen=seen: seen.append(t.replay.steps_added)
        try:
            _run(trainer, 30)
        finally:
            trainer.envs.close()
        runs[overlap] = (_episodes(trainer.replay), agent.updates, seen, trainer.frames)
    (eps, updates, seen, frames), (eps_o, updates_o, seen_o, frames_o) = runs[False], runs[True]
    assert eps_o == eps and frames_o == frames == 60 and updates_o == updates == list(range(14, 30))
    if num_envs == 1:  # stored as they come: the plain update at step t sees t + 1 steps, overlapped t
        assert seen == list(range(15, 31)) and seen_o == list(range(14, 30))
    else:  # stored at episode ends: never more than the plain run's buffer, and less where an episode ended
        assert all(o <= p for o, p in zip(seen_o, seen)) and seen_o != seen


def test_overlapped_sac_run_is_deterministic(tmp_path):
    """SAC on Meta-World reach with overlap_updates (one env in a subprocess): two runs give the same
    actor. The env factory sets one torch thread in the env subprocess only: Gymnasium also calls it
    once in the trainer's process (for the spaces), and a thread count changed there mid-run changes
    the updates' float rounding (on two cores the runs then differed from the first update on)."""
    actors = []
    for name in ("a", "b"):
        args = online_run_args(tmp_path / name, tmp_path / "data", "sac", "reach")
        cfg = compose_cfg(*[a for a in args if not a.startswith("hydra.")], "overlap_updates=true",
                          "num_train_steps=160", "eval_every_steps=160", "eval.num_episodes=1")
        threads = torch.get_num_threads()
        trainer = build_trainer(cfg, run_dir=tmp_path / name)
        assert isinstance(trainer.envs, AsyncVectorEnv) and trainer.num_envs == 1
        assert torch.get_num_threads() == threads  # only the env subprocess runs on one thread
        trainer.run()
        assert trainer.step == 160 and trainer.replay.steps_added == 160 and trainer.seconds["update"] > 0
        actors.append(load_checkpoint(tmp_path / name / "checkpoints" / "latest.pt")["agent"]["actor"])
    for k, v in actors[0].items():
        assert torch.equal(v, actors[1][k]), k


def test_overlap_needs_envs_in_subprocesses(tmp_path):
    with pytest.raises(ConfigError, match="subprocesses"):
        _trainer(tmp_path, 1, seed=0, overlap_updates=True)
    args = online_run_args(tmp_path, tmp_path, "sac", "reach")
    cfg = compose_cfg(*[a for a in args if not a.startswith("hydra.")], "overlap_updates=true", "async_envs=false")
    with pytest.raises(ConfigError, match="drop async_envs=false"):
        build_trainer(cfg, run_dir=tmp_path / "run")


def test_episode_hooks_run_per_env(tmp_path):
    agent = StubAgent(rewards_at_episode_end=True, observes=True)
    trainer = _run(_trainer(tmp_path, 2, seed=3, agent=agent), 20)
    # OT-style rewards: one call per ended episode, on its T+1 observations, and stored with the episode
    assert len(agent.episodes) == trainer.episode == trainer.replay.count - trainer.replay.steps_added
    rows = np.flatnonzero(trainer.replay.has_action[: trainer.replay.count])
    np.testing.assert_array_equal(trainer.replay.reward[rows], trainer.replay.obs["state"][rows + 1, 1])
    np.testing.assert_array_equal(trainer.replay.obs["extra"][: trainer.replay.count, 0],
                                  trainer.replay.obs["state"][: trainer.replay.count, 0] * 2)
    # observe: every step for both envs, and each reset for the envs that reset, flagged is_first
    assert agent.observed[0] == ([0, 1], [True, True]) and agent.observed[1] == ([0, 1], [False, False])
    resets = [envs for envs, first in agent.observed if all(first)]
    pending = sum(ep is None for ep in trainer._eps)  # envs whose episode ended in the last step, reset next
    assert sum(len(e) for e in resets) == trainer.episode + 2 - pending and ([0] in resets or [1] in resets)


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [False, True])
def test_resume_with_two_envs(tmp_path, overlap):
    """SAC on Meta-World reach with 2 envs in subprocesses, 700 steps, a checkpoint at step 500 (where
    both envs end their second episode): killed at 600 and resumed, it ends as the uninterrupted
    run with in-process envs (with ``overlap_updates``: as the uninterrupted overlapped run)."""
    def cfg(name, async_envs, num_envs=2):
        args = online_run_args(tmp_path / name, tmp_path / name, "sac", "reach")
        return compose_cfg(*[a for a in args if not a.startswith("hydra.")], f"num_envs={num_envs}",
                           f"async_envs={async_envs}", f"overlap_updates={overlap and async_envs}",
                           "num_train_steps=700", "save_every_steps=500", "eval_every_steps=700",
                           "eval.num_episodes=1", "update_every_steps=2")

    ref = build_trainer(cfg("ref", overlap), run_dir=tmp_path / "ref")
    ref.run()
    assert ref.env_episodes == [1, 1] and ref.frames == 1400  # 250-step episodes, 350 steps per env
    killed = build_trainer(cfg("killed", True), run_dir=tmp_path / "killed")
    step = killed.train_step

    def train_step():
        if killed.step == 600:
            raise KeyboardInterrupt
        return step()

    killed.train_step = train_step
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "latest.pt")["env_episodes"] == [1, 1]
    resumed = build_trainer(cfg("killed", True), run_dir=tmp_path / "killed")
    resumed.run()
    assert resumed.step == 700 and resumed.frames == ref.frames
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "latest.pt")
    for k, v in a["agent"]["actor"].items():
        assert torch.equal(v, b["agent"]["actor"][k]), k
    for k, v in ref.replay.slot_arrays(0, ref.replay.count).items():
        np.testing.assert_array_equal(resumed.replay.slot_arrays(0, ref.replay.count)[k], v, err_msg=k)
    with pytest.raises(ConfigError, match="num_envs=2"):
        build_trainer(cfg("killed", False, num_envs=1), run_dir=tmp_path / "killed").resume()
