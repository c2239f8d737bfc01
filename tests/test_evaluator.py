"""The evaluator's batched episodes (per-slot episode starts for policies with memory), its per-subtask
success for multi-subtask tasks, and its videos."""

from __future__ import annotations

import logging

import gymnasium as gym
import imageio
import numpy as np
import pytest

from polytask.training.evaluator import Evaluator, write_video


class CountdownEnv(gym.Env):
    """Episodes of ``3 + seed % 3`` steps; the obs is the steps left."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(0, 10, (1,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.left = 3 + (seed or 0) % 3
        return {"state": np.array([self.left], np.float32)}, {}

    def step(self, action):
        self.left -= 1
        return {"state": np.array([self.left], np.float32)}, 1.0, self.left == 0, False, {"success": 0.0}


def test_policy_sees_env_slots_and_episode_starts():
    calls = []

    def policy(obs):
        calls.append({k: obs[k].copy() for k in ("env_index", "is_first", "state")})
        return np.zeros((len(obs["state"]), 1), np.float32)

    m = Evaluator(lambda task: CountdownEnv(), ["count"], num_episodes=5, num_envs=3, seed_base=0).run(policy)
    # episodes of 3, 4, 5 steps (seeds 0..2), then 3, 4 steps (seeds 3, 4)
    assert m["length"] == np.mean([3, 4, 5, 3, 4])
    starts = [c for c in calls if c["is_first"].any()]
    assert len(starts) == 2 and all(c["is_first"].all() for c in starts)
    assert starts[0]["env_index"].tolist() == [0, 1, 2] and starts[1]["env_index"].tolist() == [0, 1]
    # slots drop out as their episodes end; a slot's state counts down on consecutive calls
    assert [c["env_index"].tolist() for c in calls[:5]] == [[0, 1, 2]] * 3 + [[1, 2], [2]]
    assert [float(c["state"][-1, 0]) for c in calls[:5]] == [5, 4, 3, 2, 1]


class SubtaskEnv(CountdownEnv):
    """A two-subtask task: the first done on the first step of every episode, the second on the last step
    of episodes with an even seed (``info["subtask_success"]`` flags, cumulative, as the kitchen's)."""

    def reset(self, *, seed=None, options=None):
        self.second = (seed or 0) % 2 == 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["subtask_success"] = np.array([1.0, float(self.second and terminated)], np.float32)
        return obs, reward, terminated, truncated, info


def test_multi_subtask_tasks_report_the_share_of_episodes_completing_each_subtask():
    def policy(obs):
        return np.zeros((len(obs["state"]), 1), np.float32)

    m = Evaluator(lambda task: SubtaskEnv(), ["two"], num_episodes=5, num_envs=2, seed_base=0).run(policy)
    assert m["two/subtask1"] == 1.0 and m["two/subtask2"] == pytest.approx(3 / 5)  # seeds 0, 2, 4
    assert "two/subtask1" not in Evaluator(lambda task: CountdownEnv(), ["two"], 2, 2).run(policy)


def test_video_is_written_and_a_missing_mp4_backend_only_warns(tmp_path, monkeypatch, caplog):
    frames = [np.full((16, 16, 3), i * 40, np.uint8) for i in range(5)]
    write_video(tmp_path / "ok.mp4", frames)
    assert len(imageio.mimread(tmp_path / "ok.mp4")) == 5

    def no_backend(*args, **kwargs):
        raise ValueError("Could not find a backend to open `x.mp4`` with iomode `wI`.")
    monkeypatch.setattr(imageio, "mimsave", no_backend)
    with caplog.at_level(logging.WARNING, logger="polytask"):
        write_video(tmp_path / "missing.mp4", frames)
    assert "pip install imageio-ffmpeg" in caplog.text and not (tmp_path / "missing.mp4").exists()

    def broken(*args, **kwargs):
        raise ValueError("frames have different shapes")
    monkeypatch.setattr(imageio, "mimsave", broken)
    with pytest.raises(ValueError, match="different shapes"):  # other errors are not swallowed
        write_video(tmp_path / "bad.mp4", frames)
