"""DAgger play for kitchen skill models: the decoder acts on the skills of the scripts' own windows and the
scripts label what it visits; the skill-prior stage's DAgger rounds, their data and resume."""

import json
import sys

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from polytask.data.demos import load_episodes, read_metadata
from polytask.errors import ConfigError
from polytask.experts.kitchen_dagger import dagger_play_episodes, skill_windows
from polytask.training.checkpoint import load_checkpoint
from tests.conftest import DEVICE, compose_cfg, kill_after_first_checkpoint, run_script

PLAY = {"subtasks": ["light switch", "slide cabinet", "top burner"], "min_subtasks": 2, "max_subtasks": 2,
        "episode_len": 25}


class WindowIndexCodec:
    """A stand-in skill model: window k's skill is k (and records what it encoded); the decoder's action
    is z / 10 on every dimension."""

    horizon = 10

    def __init__(self):
        self.encoded = []

    def encode_skill(self, states, actions):
        self.encoded.append((states, actions))
        return np.repeat(np.arange(len(states), dtype=np.float32)[:, None], 4, axis=1)

    def decode(self, obs, z):
        assert obs["state"].shape == (59,) and z.shape == (4,)
        return np.full(9, z[0] / 10, np.float32)


def test_skill_windows_cut_and_pad():
    states, actions = np.arange(25.0)[:, None], -np.arange(25.0)[:, None]
    s, a = skill_windows(states, actions, 10)
    assert s.shape == (3, 10, 1) and a.shape == (3, 10, 1)
    np.testing.assert_array_equal(s[1, :, 0], np.arange(10, 20))
    np.testing.assert_array_equal(s[2, :, 0], [20, 21, 22, 23, 24, 24, 24, 24, 24, 24])  # the last step repeated


def test_the_decoder_acts_on_the_scripts_skills_and_the_scripts_label_every_step():
    codec = WindowIndexCodec()
    (ep,) = dagger_play_episodes(codec, 1, seed=4, expert_prob=0.0, **PLAY)
    (states, actions), = codec.encoded  # pass 1: the scripts' windows, their noise-free actions
    assert states.shape == (3, 10, 59) and actions.shape == (3, 10, 9)
    np.testing.assert_allclose(ep.action, np.repeat(np.arange(3) / 10, 10)[:25, None].repeat(9, 1), atol=1e-6)
    assert not ep.infos["expert_window"].any() and ep.infos["expert_window"].shape == (25,)
    labels = ep.infos["intended_action"]
    assert labels.shape == (25, 9) and np.abs(labels).max() <= 1.0
    assert np.abs(labels - ep.action).mean() > 0.05  # the labels are the scripts', not what the decoder did
    assert ep.extras["subtasks"] and ep.infos["num_completed"].shape == (25,)


def test_with_expert_windows_only_the_episode_is_scripted_play():
    codec = WindowIndexCodec()
    (ep,) = dagger_play_episodes(codec, 1, seed=4, expert_prob=1.0, **PLAY)
    assert ep.infos["expert_window"].all()
    noise = ep.action[:, :7] - ep.infos["intended_action"][:, :7]
    assert 0.02 < np.abs(noise).mean() < 0.15  # the scripts act, with the play data's action noise
    (again,) = dagger_play_episodes(WindowIndexCodec(), 1, seed=4, expert_prob=1.0, **PLAY)
    np.testing.assert_array_equal(again.action, ep.action)  # deterministic in the seed
    (other,) = dagger_play_episodes(WindowIndexCodec(), 1, seed=5, expert_prob=1.0, **PLAY)
    assert not np.array_equal(other.action, ep.action)
    with pytest.raises(ValueError, match="expert_prob"):
        next(dagger_play_episodes(codec, 1, seed=4, expert_prob=1.5, **PLAY))


def test_dagger_rounds_need_a_suite_that_can_label():
    from polytask.training.skill_dagger import check_dagger

    with pytest.raises(ConfigError, match="suite maze has no DAgger play generator"):
        check_dagger(compose_cfg("agent=skill_prior", "suite=maze", "dagger.rounds=1"))
    with pytest.raises(ConfigError, match="expert_prob"):
        check_dagger(compose_cfg("agent=skill_prior", "suite=kitchen", "dagger.rounds=1", "dagger.expert_prob=2"))
    assert check_dagger(compose_cfg("agent=skill_prior", "suite=kitchen")) == 0


def test_skill_prior_with_a_dagger_round_end_to_end_with_a_kill_and_resume(tmp_path):
    """train.py agent=skill_prior dagger.rounds=1 on tiny kitchen play data: after half the updates the model
    drives 2 DAgger episodes, written under the run dir; a run killed after the round resumes with them in
    its training data, and its weights file name records the DAgger setting."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    play = [f"++suite.play.{k}={json.dumps(v)}" for k, v in PLAY.items()]
    args = ["agent=skill_prior", "suite=kitchen", "suite.task=[light]", f"data_dir={data_dir}", f"hydra.run.dir={run}",
            "play.num_episodes=4", "num_train_steps=40", "log_every_steps=10", "eval_every_steps=40",
            "save_every_steps=25", "eval.num_episodes=1", "eval.video=off", "suite.env.episode_len=25",
            "agent.hidden_dim=32", "heldout_windows=16", "dagger.rounds=1", "dagger.num_episodes=2", DEVICE, *play]
    step = kill_after_first_checkpoint([sys.executable, "train.py", *args], run, timeout=300)
    assert step == 25
    dagger = run / "dagger" / "datasets" / "polytask" / "kitchen" / "dagger1-features-v0"
    episodes = load_episodes(dagger)
    assert len(episodes) == 2 and all(len(ep) == 25 for ep in episodes)
    meta = read_metadata(dagger)["polytask"]
    assert meta["dagger"]["round"] == 1 and 0.0 <= meta["dagger_decoder_steps"] <= 1.0
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["dagger_rounds_done"] == 1
    before = dagger.stat().st_mtime_ns
    p = run_script("train.py", *args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Resumed from" in p.stderr + p.stdout and "DAgger round 1:" not in p.stderr + p.stdout
    assert dagger.stat().st_mtime_ns == before  # read back, not made again
    assert "(1 DAgger round(s))" in p.stderr + p.stdout
    weights = next((data_dir / "weights" / "skill_prior" / "kitchen").glob("*.pt"))
    assert "dagger.rounds-1" in weights.name, weights.name
    assert "DAgger round 1: 2 episodes in" in (run / "train.log").read_text()  # the killed run's figures

