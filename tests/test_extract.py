"""EXTRACT: skill discovery (median filter, segmentation, clustering, the entry script end to end) and
the skill model (its KL, cross-entropy and NLL against torch.distributions, its losses falling on maze
play data, acting with plans that the predicted progress ends)."""

import csv
import json

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from polytask.agents.extract import ExtractSkillAgent
from polytask.data.demos import DatasetError, Episode, dataset_path, load_episodes
from polytask.errors import ConfigError
from polytask.skills.embeddings import embed_episodes
from polytask.skills.extract import (
    Segment,
    discover_skills,
    labelled_episodes,
    quality,
    runs,
    segment_labels,
    skill_choice,
    smooth_labels,
)
from polytask.skills.segments import SegmentBuffer
from polytask.training.extract import load_or_discover
from tests.conftest import compose_cfg, run_script


def test_median_filter_removes_flickers_and_moves_no_long_boundary():
    labels = np.array([0] * 10 + [1] + [0] * 4 + [2] * 6)
    smoothed = smooth_labels(labels, 7)
    np.testing.assert_array_equal(smoothed, [0] * 15 + [2] * 6)  # the lone 1 is gone, the 0|2 boundary stays
    two = np.array([0] * 5 + [3, 3] + [0] * 5)
    np.testing.assert_array_equal(smooth_labels(two, 7), np.zeros(12))
    np.testing.assert_array_equal(smooth_labels(two, 3), two)  # a 3-wide window keeps a 2-step run
    with pytest.raises(ConfigError, match="odd"):
        smooth_labels(labels, 6)


def test_segmentation_keeps_runs_of_allowed_length_with_progress():
    smoothed = np.array([0] * 15 + [2] * 6 + [1] * 4)
    assert [(s.start, s.stop, s.label) for s in runs(smoothed)] == [(0, 15, 0), (15, 21, 2), (21, 25, 1)]
    skill, progress = segment_labels(smoothed, min_len=5, max_len=12)
    np.testing.assert_array_equal(skill, [-1] * 15 + [2] * 6 + [-1] * 4)  # 15 steps: too long; 4: too short
    np.testing.assert_allclose(progress[15:21], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert np.isnan(progress[:15]).all() and np.isnan(progress[21:]).all()
    skill, progress = segment_labels(smoothed, min_len=4, max_len=15)
    np.testing.assert_array_equal(skill, smoothed)
    np.testing.assert_allclose(progress[21:], [0, 1 / 3, 2 / 3, 1])


def planted(seed: int = 0, episodes: int = 6, k: int = 4, noise: float = 0.05):
    """Episodes of 4-d states made of 8–20-step segments, each of a planted skill (0 first in every
    episode) whose states sit around that skill's centre (skill 0's is the origin, so the state minus
    the first state is the centre); returns the episodes and the planted labels per episode."""
    rng = np.random.default_rng(seed)
    centres = np.concatenate([np.zeros((1, 4)), 3 * rng.normal(size=(k - 1, 4))])
    out, truth = [], []
    for _ in range(episodes):
        labels = [0] * int(rng.integers(8, 21))
        while len(labels) < 120:
            labels += [int(rng.choice([c for c in range(k) if c != labels[-1]]))] * int(rng.integers(8, 21))
        labels = np.array(labels)
        states = centres[np.r_[labels, labels[-1]]] + noise * rng.normal(size=(len(labels) + 1, 4))
        t = len(labels)
        out.append(Episode(obs={"state": states.astype(np.float32)},
                           action=rng.uniform(-1, 1, (t, 2)).astype(np.float32), reward=np.zeros(t, np.float32),
                           terminated=np.zeros(t, bool), truncated=np.arange(t) == t - 1,
                           success=np.zeros(t, np.float32), infos={"subtask": labels}))
        truth.append(labels)
    return out, truth


def test_clustering_recovers_planted_skills_and_their_segments():
    episodes, truth = planted()
    features = embed_episodes(episodes)
    assert features[0].shape == (len(episodes[0]), 4) and np.allclose(features[0][0], 0)
    found = discover_skills(episodes, k=4, min_len=5, max_len=30, seed=0)
    scores = quality(np.concatenate(found.smoothed), np.concatenate(truth))
    assert scores["ari"] > 0.95 and min(c["purity"] for c in scores["clusters"].values()) > 0.95, scores
    planted_runs = {(i, s.start, s.stop) for i, t in enumerate(truth) for s in runs(t, i)}
    found_runs = {(s.episode, s.start, s.stop) for s in found.segments}
    assert len(found_runs & planted_runs) >= 0.9 * len(planted_runs)
    labelled = labelled_episodes(episodes, found)
    assert set(labelled[0].infos) == {"subtask", "skill", "progress"}
    assert labelled[0].infos["skill"].dtype == np.int64 and labelled[0].infos["progress"].dtype == np.float32
    # scores of a clustering that ignores the data: chance level
    everything = np.concatenate(truth)
    shuffled = quality(np.random.default_rng(0).integers(0, 4, len(everything)), everything)
    assert abs(shuffled["ari"]) < 0.05 and shuffled["purity"] < 0.5


def test_skill_choice_tells_a_skill_the_state_gives_away_from_one_it_leaves_open():
    episodes, _ = planted(episodes=20)
    found = discover_skills(episodes, k=4, min_len=5, max_len=30, seed=0)
    given = skill_choice(episodes, found.segments, heldout_fraction=0.25)  # each skill sits at its own centre
    assert given["log_k"] == pytest.approx(np.log(4))
    assert given["accuracy"] > 0.95 and given["entropy"] < 0.3 * given["log_k"], given
    rng = np.random.default_rng(1)
    free = [Segment(s.episode, s.start, s.stop, int(rng.integers(0, 4))) for s in found.segments]
    left_open = skill_choice(episodes, free, heldout_fraction=0.25)  # the same states, skills drawn at random
    assert left_open["accuracy"] < 0.5 and left_open["entropy"] > 0.8 * left_open["log_k"], left_open
    assert skill_choice(episodes, []) is None
    assert skill_choice(episodes, [s for s in found.segments if s.episode < 15], heldout_fraction=0.25) is None


def test_image_embedding_needs_its_weights_file_or_pixels(tmp_path):
    episodes, _ = planted(episodes=1)
    with pytest.raises(ConfigError, match="no clip weights file at .*missing.pt"):
        embed_episodes(episodes, name="clip", weights=str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match="extract.embedding.weights=<file>"):
        embed_episodes(episodes, name="r3m")
    with pytest.raises(ConfigError, match="'pixels'"):
        embed_episodes(episodes, name="pixels_pca")
    with pytest.raises(ConfigError, match="state_delta"):
        embed_episodes(episodes, name="dino")
    rng = np.random.default_rng(0)
    for ep in episodes:
        ep.obs["pixels"] = rng.integers(0, 256, (len(ep) + 1, 9, 16, 16), np.uint8)
    (pca,) = embed_episodes(episodes, name="pixels_pca", components=8)
    assert pca.shape == (len(episodes[0]), 8) and np.allclose(pca[0], 0, atol=1e-5)


def segment_batch(agent_seed: int = 0):
    episodes, _ = planted(episodes=2)
    found = discover_skills(episodes, k=4, seed=0)
    buffer = SegmentBuffer(labelled_episodes(episodes, found), seed=0)
    torch.manual_seed(agent_seed)
    agent = ExtractSkillAgent({"state": (4,)}, 2, "features", num_skills=4, hidden_dim=32, hidden_depth=1)
    agent.fit_dataset(buffer.states())
    return agent, buffer


def test_skill_model_kl_ce_and_nll_match_torch_distributions():
    agent, buffer = segment_batch()
    batch = buffer.get(np.arange(len(buffer)))
    assert batch["state"].shape[1] == int(batch["length"].max()) and (batch["mask"].sum(1) == batch["length"]).all()
    torch.manual_seed(1)
    _, parts = agent.losses(batch)
    onehot = torch.nn.functional.one_hot(batch["skill"], 4).float()
    mean, log_std = agent.model.encoder(batch["action"], onehot, batch["length"])
    q = Independent(Normal(mean, log_std.exp()), 1)
    standard = Independent(Normal(torch.zeros_like(mean), torch.ones_like(mean)), 1)
    assert parts["kl"] == pytest.approx(kl_divergence(q, standard).mean().item(), rel=1e-5)
    states = agent.model.normalizer(batch["state"])
    ce = -Categorical(logits=agent.model.skill_prior(states[:, 0])).log_prob(batch["skill"]).mean()
    assert parts["skill_ce"] == pytest.approx(ce.item(), rel=1e-5)
    torch.manual_seed(1)  # the same draw u as inside losses()
    u = mean + log_std.exp() * torch.randn_like(mean)
    m, s = agent.model.argument_prior(torch.cat([states[:, 0], onehot], -1))
    assert parts["argument_nll"] == pytest.approx(-Independent(Normal(m, s.exp()), 1).log_prob(u).mean().item(),
                                                  rel=1e-4)


@pytest.fixture(scope="module")
def maze_play():
    """30 maze play episodes (~17k steps in random 20x20 layouts) labelled by skill discovery: the
    segments of 25 to train on, of 5 held out."""
    pytest.importorskip("gymnasium_robotics")
    from polytask.experts.maze import play_episodes

    eps = list(play_episodes(None, 30, seed=3))
    labelled = labelled_episodes(eps, discover_skills(eps, seed=0))
    return SegmentBuffer(labelled[:25], seed=0), SegmentBuffer(labelled[25:], seed=1)


def test_skill_model_losses_fall_on_maze_play_data(maze_play):
    train, heldout = maze_play
    torch.manual_seed(0)
    agent = ExtractSkillAgent({"state": (4,)}, 2, "features", num_skills=8, hidden_dim=64, hidden_depth=2)
    agent.fit_dataset(train.states())
    held, seen = heldout.get(np.arange(len(heldout))), train.get(np.arange(len(train)))
    before, before_seen = agent.score(held), agent.score(seen)
    for _ in range(400):
        metrics = agent.update(train.sample(64))
    after, after_seen = agent.score(held), agent.score(seen)
    assert after["action_mse"] < 0.85 * before["action_mse"], (before, after)  # on held-out segments
    # the rest on the training segments (~80 segments: the priors overfit, and progress is learnt slowly)
    for key, factor in (("loss", 0.5), ("skill_ce", 0.6), ("progress_mse", 0.95)):
        assert after_seen[key] < factor * before_seen[key], (key, before_seen, after_seen)
    assert after["kl"] > 1.0 > before["kl"]  # the argument carries information about the actions
    assert set(metrics) == {"loss", "action_nll", "action_mse", "progress_mse", "kl", "skill_ce", "skill_accuracy",
                            "argument_nll"}


def test_acting_runs_each_plan_until_its_progress_ends_it():
    agent, buffer = segment_batch()
    np.testing.assert_array_equal(agent.plan_length(np.array([[0.1, 0.5, 0.95, 0.99], [0.1, 0.2, 0.3, 0.4]])), [3, 4])
    for _ in range(200):
        agent.update(buffer.sample(32))
    agent.train(False)
    obs = {"state": buffer.state[:3, 0], "env_index": np.arange(3), "is_first": np.ones(3, bool)}
    first = agent.act(obs)
    skill, z, plan, length = agent._skill[:3].copy(), agent._z[:3].copy(), agent._plan[:3].copy(), agent._plan_len[:3]
    assert np.abs(z).max() < agent.z_bound and first.dtype == np.float32 and np.abs(first).max() <= 1
    actions, progress = agent.decode(skill, z)
    np.testing.assert_allclose(first, actions[:, 0])
    np.testing.assert_array_equal(length, agent.plan_length(progress))
    for t in range(1, int(length[0])):  # the plan's actions, whatever the state
        action = agent.act({**obs, "state": np.random.default_rng(t).normal(size=(3, 4)).astype(np.float32),
                            "is_first": np.zeros(3, bool)})
        np.testing.assert_allclose(action[0], plan[0, t])
        assert agent._skill[0] == skill[0] and np.array_equal(agent._z[0], z[0])
    agent.act({**obs, "is_first": np.zeros(3, bool)})
    assert agent._pos[0] == 1  # the plan was used up: a new skill and plan


def test_extract_entry_end_to_end_then_the_skill_model_trains_on_it(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    out = run_script("extract_skills.py", f"data_dir={tmp_path}", "play.num_episodes=4", "extract.k=4",
                     f"hydra.run.dir={tmp_path}/extract")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = dataset_path(tmp_path, "polytask/maze/extract-features-v0")
    episodes = load_episodes(folder)
    assert len(episodes) == 4 and {"goal", "layout", "skill", "progress"} <= set(episodes[0].infos)
    skill = np.concatenate([ep.infos["skill"] for ep in episodes])
    assert set(np.unique(skill)) <= {-1, 0, 1, 2, 3} and (skill >= 0).any()
    with open(folder / "segments.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(SegmentBuffer(episodes)) and all(5 <= int(r["length"]) <= 30 for r in rows)
    report = json.loads((folder / "quality.json").read_text())
    assert -1 <= report["smoothed"]["ari"] <= 1 and set(report["seconds"]) >= {"load", "embed", "cluster", "segment"}
    assert (folder / "clusters.png").stat().st_size > 0 and (folder / "clusters.csv").exists()
    out = run_script("train.py", "agent=extract_skill", "suite=maze", "device=cpu", f"data_dir={tmp_path}",
                     "extract.k=4", "num_train_steps=20", "eval_every_steps=20", "log_every_steps=10",
                     "eval.num_episodes=1", "eval.num_envs=1", "eval.video=off",
                     f"hydra.run.dir={tmp_path}/run")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["step"] == 20 and np.isfinite(results["heldout_action_mse"])
    out = run_script("train.py", "agent=extract_skill", "suite=maze", "device=cpu", f"data_dir={tmp_path}",
                     "num_train_steps=1", f"hydra.run.dir={tmp_path}/run8")
    assert out.returncode == 1 and "extract.k: asked 8, made with 4" in out.stdout + out.stderr
    assert "'extract.k=4'" in out.stdout + out.stderr  # the data's options are one way out
    cfg = compose_cfg("agent=extract_skill", "suite=maze", f"data_dir={tmp_path}", "extract.k=4",
                      "extract.median_window=3", "extract.label_key=null")  # only scores: not compared
    with pytest.raises(DatasetError, match=r"(?s)extract.median_window: asked 3, made with 7.*"
                                           r"python extract_skills.py suite=maze .* 'extract.median_window=3'") as e:
        load_or_discover(cfg)
    assert "label_key" not in str(e.value) and "extract.k" not in str(e.value)


def test_missing_labelled_data_names_the_command_that_makes_it(tmp_path):
    cfg = compose_cfg("agent=extract_skill", "suite=maze", f"data_dir={tmp_path}", "collect_missing_demos=false")
    with pytest.raises(DatasetError, match=f"python extract_skills.py suite=maze obs_type=features seed=1 "
                                           f"data_dir={tmp_path}"):
        load_or_discover(cfg)


def test_discovery_embeds_the_dims_the_suite_names():
    """The kitchen's state_delta discovery uses the robot's joint positions (suite.skill_embedding_dims), in
    extract_skills.py and in the stages that discover first; suites without the key use every dim; an
    override wins."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        entry = compose("config_extract", overrides=["suite=kitchen"])
    assert list(entry.extract.embedding.dims) == list(range(9))
    assert list(compose_cfg("agent=extract_skill", "suite=kitchen").extract.embedding.dims) == list(range(9))
    assert compose_cfg("agent=extract_skill", "suite=maze").extract.embedding.dims is None
    assert list(compose_cfg("agent=extract_skill", "suite=kitchen", "extract.embedding.dims=[0,18]")
                .extract.embedding.dims) == [0, 18]
