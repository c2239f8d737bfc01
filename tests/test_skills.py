"""Skill models (SPiRL/SkiLD): the Gaussian KL and NLL, the skill VAE learning on maze play data, the
demo discriminator, the skill wrapper, how each stage finds its data and the previous stage's
weights, and the skill-prior stage end to end through train.py."""

import json
import re
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from polytask.agents.skills import (
    DemoDiscriminatorAgent,
    NotAPolicyError,
    SkillPriorAgent,
)
from polytask.data.buffer import DemoBuffer
from polytask.data.demos import DatasetError
from polytask.errors import ConfigError
from polytask.nets.skills import gaussian_kl, gaussian_nll
from polytask.suites.skills import SkillWrapper
from polytask.training.skill_inputs import skill_posterior, stage_path
from polytask.training.skills import SkillPosteriorTrainer, labelled_batch, load_or_make_play
from polytask.training.weights import skill_model_path
from polytask.utils import atomic_torch_save
from tests.conftest import DEVICE, compose_cfg, exported_weights, run_script

pytest.importorskip("gymnasium_robotics")


def test_gaussian_kl_and_nll_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean_q, log_std_q, mean_p, log_std_p, x = (torch.randn(64, 10, generator=g) for _ in range(5))
    q, p = Independent(Normal(mean_q, log_std_q.exp()), 1), Independent(Normal(mean_p, log_std_p.exp()), 1)
    torch.testing.assert_close(gaussian_kl(mean_q, log_std_q, mean_p, log_std_p), kl_divergence(q, p))
    torch.testing.assert_close(gaussian_nll(x, mean_p, log_std_p), -p.log_prob(x))
    zeros = torch.zeros_like(mean_q)  # the VAE's KL to N(0, I) broadcasts a standard normal
    torch.testing.assert_close(gaussian_kl(mean_q, log_std_q, zeros, zeros),
                               kl_divergence(q, Independent(Normal(zeros, torch.ones_like(zeros)), 1)))
    torch.testing.assert_close(gaussian_kl(mean_q, log_std_q, mean_q, log_std_q), torch.zeros(64))


@pytest.fixture(scope="module")
def play():
    """12 maze play episodes (~7k steps in random 20x20 layouts): 10 to train on, 2 held out."""
    from polytask.experts.maze import play_episodes

    eps = list(play_episodes(None, 12, seed=3))
    return eps[:10], eps[10:]


def test_skill_model_reconstruction_falls_on_held_out_play_data(play):
    train, heldout = (DemoBuffer({0: eps}, ("state",), seed=i) for i, eps in enumerate(play))
    torch.manual_seed(0)
    agent = SkillPriorAgent({"state": (4,)}, 2, "features", hidden_dim=64, hidden_depth=2, beta=1e-2)
    agent.fit_dataset(train.obs["state"], train.action)
    windows = heldout.get_windows(np.arange(0, len(heldout), 3), *agent.window)
    assert windows["state"].shape[1:] == (10, 4) and windows["action"].shape[1:] == (10, 2)
    before = agent.score(windows)
    for _ in range(300):
        metrics = agent.update(train.sample_windows(64, *agent.window))
    after = agent.score(windows)
    assert after["rec_mse"] < 0.7 * before["rec_mse"], (before, after)
    assert after["kl"] > 1.0 > before["kl"]  # the skills carry information about the actions
    assert set(metrics) == {"loss", "rec", "rec_mse", "kl", "prior_nll", "standard_nll"}
    # acting: one skill per 10 steps, the decoder closed-loop on the current state
    agent.train(False)
    obs = {"state": windows["state"][:3, 0].numpy(), "env_index": np.arange(3), "is_first": np.ones(3, bool)}
    first = agent.act(obs)
    z = agent._z[:3].copy()
    for _ in range(9):
        agent.act({**obs, "is_first": np.zeros(3, bool)})
    np.testing.assert_array_equal(agent._z[:3], z)  # the same skill for H steps
    np.testing.assert_allclose(first, agent.decode(obs, z))
    agent.act({**obs, "is_first": np.zeros(3, bool)})
    assert not np.array_equal(agent._z[:3], z)  # then a new one


def test_discriminator_separates_demo_from_play_states(play):
    from polytask.data.collect import collect_episodes
    from polytask.experts.maze import MazeExpert
    from polytask.suites.maze import make

    env = make("umaze")
    demos, _ = collect_episodes(env, MazeExpert(task="umaze", env=env, noise_std=0.1).act, 3)
    env.close()
    demo, play_buffer = DemoBuffer({0: demos[:2]}, ("state",), seed=0), DemoBuffer({0: play[0]}, ("state",), seed=1)
    torch.manual_seed(0)
    agent = DemoDiscriminatorAgent({"state": (4,)}, 2, "features")
    agent.fit_dataset(np.concatenate([demo.obs["state"], play_buffer.obs["state"]]))
    held_demo = np.concatenate([ep.obs["state"][:-1] for ep in demos[2:]])
    held_play = np.concatenate([ep.obs["state"][:-1] for ep in play[1]])
    held = {"state": torch.from_numpy(np.concatenate([held_demo, held_play])),
            "label": torch.cat([torch.ones(len(held_demo)), torch.zeros(len(held_play))])}
    assert agent.score(held)["accuracy"] < 0.75
    for _ in range(800):
        agent.update(labelled_batch(demo, play_buffer, 64))
    scores = agent.score(held)
    assert scores["accuracy"] > 0.9 and scores["d_demo"] > 0.8 and scores["d_play"] < 0.2, scores
    d = agent.predict({"state": held_demo[:5]})
    assert d.shape == (5,) and d.dtype == np.float32 and ((0 < d) & (d < 1)).all()
    with pytest.raises(NotAPolicyError, match="does not act"):
        agent.act({"state": held_demo[:5]})


class CountingEnv(gym.Env):
    """State = steps taken; reward t at step t (1, 2, ...); success on step ``success_at``; terminated
    at step ``end``, truncated at step ``limit``. Records the actions it gets."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})
    action_space = gym.spaces.Box(-10, 10, (1,), np.float32)

    def __init__(self, end=100, limit=100, success_at=-1):
        self.end, self.limit, self.success_at = end, limit, success_at

    def reset(self, seed=None, options=None):
        self.t, self.actions = 0, []
        return {"state": np.zeros(1, np.float32)}, {}

    def step(self, action):
        self.t += 1
        self.actions.append(float(action[0]))
        return ({"state": np.full(1, self.t, np.float32)}, float(self.t), self.t == self.end, self.t == self.limit,
                {"success": float(self.t == self.success_at)})


def closed_loop(obs, z):
    """A decoder whose action is the state plus the skill's first entry (so closed loop shows)."""
    return obs["state"] + z[:1]


def test_skill_wrapper_runs_h_steps_and_sums_rewards():
    env = SkillWrapper(CountingEnv(end=6, success_at=5), closed_loop, horizon=4, z_dim=3)
    assert env.action_space.shape == (3,) and env.action_space.low.min() == -2 and env.action_space.high.max() == 2
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0, 0], np.float32))
    assert (reward, terminated, truncated, info["env_steps"], info["success"]) == (1 + 2 + 3 + 4, False, False, 4, 0.0)
    assert env.unwrapped.actions == [0.5, 1.5, 2.5, 3.5] and obs["state"][0] == 4  # decoded at each new state
    # stops early at termination; success anywhere in the skill counts
    obs, reward, terminated, truncated, info = env.step(np.array([5.0, 0, 0], np.float32))  # clipped to the bound 2
    assert (reward, terminated, truncated, info["env_steps"], info["success"]) == (5 + 6, True, False, 2, 1.0)
    assert env.unwrapped.actions[4:] == [6.0, 7.0]
    env = SkillWrapper(CountingEnv(limit=3), closed_loop, horizon=10, z_dim=1)  # and at truncation
    env.reset()
    _, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert (reward, terminated, truncated, info["env_steps"]) == (6, False, True, 3)
    with pytest.raises(ValueError, match="horizon >= 1"):
        SkillWrapper(CountingEnv(), closed_loop, horizon=0)


def test_skill_wrapper_times_its_decoder():
    def slow(obs, z):
        time.sleep(0.01)
        return closed_loop(obs, z)
    env = SkillWrapper(CountingEnv(), slow, horizon=3, z_dim=1)
    env.reset()
    assert 0.03 <= env.step(np.zeros(1, np.float32))[-1]["seconds_decoder"] < 1.0  # three decoder calls


def test_missing_play_data_and_skill_model_give_the_commands(tmp_path):
    cfg = compose_cfg("agent=skill_prior", "suite=maze", f"data_dir={tmp_path}", "collect_missing_demos=false")
    from polytask.suites.maze import make

    env = make("umaze")
    with pytest.raises(DatasetError, match="python collect_play.py suite=maze obs_type=features"):
        load_or_make_play(cfg, env)
    env.close()
    cfg = compose_cfg("agent=skill_posterior", "suite=maze", f"data_dir={tmp_path}", "num_demos_per_task=1",
                      "device=cpu")
    with pytest.raises(ConfigError, match=rf"(?s)No policy weights at {re.escape(str(skill_model_path(cfg)))}\..*"
                                          r"python train\.py agent=skill_prior suite=maze"):
        SkillPosteriorTrainer.from_config(cfg, tmp_path / "run")


def test_skill_prior_stage_end_to_end(tmp_path):
    """train.py agent=skill_prior makes the missing play data first (4 episodes), trains, scores held-out
    windows and prior skills in umaze, and exports the skill model where the next stages look for it."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    p = run_script("train.py", "agent=skill_prior", "suite=maze", f"data_dir={data_dir}", f"hydra.run.dir={run}",
                   "play.num_episodes=4", "num_train_steps=30", "log_every_steps=10", "eval_every_steps=30",
                   "save_every_steps=30", "eval.num_episodes=2", "eval.video=off", "agent.hidden_dim=32",
                   "heldout_windows=64", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Play data missing" in p.stderr + p.stdout
    weights = exported_weights(p)
    assert weights.parent == data_dir / "weights" / "skill_prior" / "maze"
    assert weights.name.startswith("play-features-seed1")
    results = json.loads((run / "results.json").read_text())
    assert np.isfinite(results["heldout_rec_mse"]) and np.isfinite(results["heldout_prior_nll"])
    assert 0.0 <= results["umaze/success"] <= 1.0 and (run / "heldout.csv").exists()
    # the next stage finds it (the one file, with this run's settings) and says when its sizes differ
    cfg = compose_cfg("agent=skill_posterior", "suite=maze", f"data_dir={data_dir}", "num_demos_per_task=1",
                      "agent.hidden_dim=64", "device=cpu")
    with pytest.raises(ConfigError, match=rf"The skill model at {re.escape(str(weights))} was trained with "
                                          r"\{'z_dim': 10, 'horizon': 10, 'hidden_dim': 32, 'hidden_depth': 3\}"):
        SkillPosteriorTrainer.from_config(cfg, tmp_path / "posterior")



def test_skild_refuses_a_posterior_trained_on_another_skill_model(tmp_path):
    """SkiLD acts through the posterior's copy of the skill model: a posterior whose copy differs from the
    run's skill model (the suite's skill_prior file, or skill_model=<file>) is refused with the command
    that trains a matching one; a matching one is taken."""
    cfg = compose_cfg("agent=skild", "suite=maze", f"data_dir={tmp_path}", "num_demos_per_task=1", "device=cpu")
    sizes = {"z_dim": 2, "horizon": 3, "hidden_dim": 4, "hidden_depth": 1}

    def write(stage, path, model, **extra):
        atomic_torch_save({"agent_name": stage, "config": {"agent": sizes}, "agent": {"model": model, **extra}}, path)

    posterior_file = stage_path(cfg, "skill_posterior")
    write("skill_posterior", posterior_file, {"w": torch.zeros(2)}, posterior={"p": torch.ones(1)})
    prior_file = stage_path(cfg, "skill_prior")
    write("skill_prior", prior_file, {"w": torch.ones(2)})
    prior = re.escape(str(prior_file))
    with pytest.raises(ConfigError, match=rf"(?s)trained on another skill model than {prior}.*"
                                          rf"python train\.py agent=skill_posterior .* skill_model={prior}"):
        skill_posterior(cfg, None)
    write("skill_prior", prior_file, {"w": torch.zeros(2)})  # the model the posterior was trained on
    spec = skill_posterior(cfg, None)
    assert torch.equal(spec["posterior"]["p"], torch.ones(1)) and spec["z_dim"] == 2
    other = tmp_path / "other.pt"  # a skill model named on the command line is the one compared
    write("skill_prior", other, {"w": torch.full((2,), 3.0)})
    cfg.skill_model = str(other)
    with pytest.raises(ConfigError, match="trained on another skill model"):
        skill_posterior(cfg, None)

@pytest.mark.slow
def test_skild_stages_find_the_skill_model_and_the_data(tmp_path):
    """The skill-prior run's exported model is found by the posterior stage; the discriminator stage
    trains on demos (collected first) against the same play data."""
    data_dir = tmp_path / "data"
    common = [f"data_dir={data_dir}", "suite=maze", "eval.num_episodes=2", "eval.video=off", "agent.hidden_dim=32",
              "log_every_steps=10", DEVICE]
    p = run_script("train.py", "agent=skill_prior", f"hydra.run.dir={tmp_path / 'prior'}", "play.num_episodes=4",
                   "num_train_steps=20", "eval_every_steps=20", "save_every_steps=20", "heldout_windows=64", *common)
    assert p.returncode == 0, p.stderr[-3000:]
    prior = exported_weights(p)
    p = run_script("train.py", "agent=skill_posterior", f"hydra.run.dir={tmp_path / 'post'}", "num_demos_per_task=2",
                   "num_train_steps=20", "eval_every_steps=20", "save_every_steps=20", *common)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Skill model (frozen) from {prior}" in p.stderr + p.stdout
    post = torch.load(exported_weights(p), weights_only=True)
    skill_model = torch.load(prior, weights_only=True)["agent"]["model"]
    for k, v in skill_model.items():  # the posterior run left the skill model as it found it
        assert torch.equal(post["agent"]["model"][k], v), k
    p = run_script("train.py", "agent=demo_discriminator", f"hydra.run.dir={tmp_path / 'disc'}",
                   "num_demos_per_task=2", "num_train_steps=40", "eval_every_steps=20", "save_every_steps=20",
                   "heldout_windows=256", *common)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((tmp_path / "disc" / "results.json").read_text())
    assert results["step"] == 40 and 0.0 <= results["accuracy"] <= 1.0 and np.isfinite(results["bce"])


@pytest.mark.parametrize("overrides, stages", [
    (["recipe=skild_kitchen"], ["skill_prior", "skill_posterior", "demo_discriminator"]),
    (["recipe=skild_kitchen", 'stage_overrides.skill_prior=["agent.hidden_depth=5"]',
      'stage_overrides.skill_posterior=["num_train_steps=10"]'], ["skill_prior", "skill_posterior"]),
    (["agent=skild", "suite=maze", "skill_model=/elsewhere/model.pt"], ["skill_posterior"]),
    (["agent=extract", "suite=kitchen", "finetune_on=demos", 'stage_overrides.extract_skill=["num_train_steps=10"]'],
     ["extract_skill"]),
])
def test_stage_command_makes_the_file_the_run_looks_for(tmp_path, overrides, stages):
    """The command a missing stage's error gives, run by hand, names its weights file (its settings
    tag, as train.py would compute it from the command line) exactly where the run looks."""
    import shlex

    from omegaconf import OmegaConf

    from polytask.config import CONFIG_DIR, overrides_tag
    from polytask.training.skill_inputs import stage_command
    from polytask.training.weights import weights_path

    exclude = OmegaConf.load(CONFIG_DIR / "config.yaml").hydra.job.config.override_dirname.exclude_keys
    cfg = compose_cfg(*overrides, f"data_dir={tmp_path}")
    for stage in stages:
        args = shlex.split(stage_command(cfg, stage))[2:]  # after "python train.py"
        hand = compose_cfg(*args)
        if not any(a.startswith("weights_tag=") for a in args):
            hand.weights_tag = overrides_tag(args, exclude)  # what train.py's settings_tag gives
        made = skill_model_path(hand) if stage == "skill_prior" else (
            weights_path(hand) if stage != "extract_skill" or hand.finetune_on == "demos" else None)
        assert made == stage_path(cfg, stage), stage


def test_a_posterior_follows_its_skill_model_settings(tmp_path):
    """Runs asking for skill models with other settings look for posteriors of their own (the model's
    settings in the file name), and a posterior made first takes the sizes the model is given."""
    from polytask.training.skill_inputs import stage_config

    plain = compose_cfg("agent=skild", "suite=maze", f"data_dir={tmp_path}")
    deeper = compose_cfg("agent=skild", "suite=maze", f"data_dir={tmp_path}",
                         'stage_overrides.skill_prior=["agent.hidden_depth=5","num_train_steps=10","eval_every_steps=5"]')
    assert stage_path(plain, "skill_posterior").name == "umaze-features-d5-seed1.pt"
    assert stage_path(deeper, "skill_posterior").name == \
        "umaze-features-d5-seed1-skill_prior.agent.hidden_depth-5+skill_prior.num_train_steps-10.pt"
    assert stage_path(deeper, "demo_discriminator") == stage_path(plain, "demo_discriminator")  # no skill model
    posterior = stage_config(deeper, "skill_posterior")
    assert posterior.agent.hidden_depth == 5 and posterior.num_train_steps == 5000  # sizes only
    assert stage_config(deeper, "skill_prior").agent.hidden_depth == 5
