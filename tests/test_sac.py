"""SAC: the squashed-Gaussian likelihood, critic learning on a fixed batch, temperature tuning,
acting, save/load, and a tiny online run with resume (plus a slow learning check)."""

import json

import numpy as np
import pytest
import torch

from polytask.agents.sac import SACAgent
from polytask.errors import ConfigError
from polytask.nets.mlp import GaussianActor
from polytask.training.checkpoint import load_checkpoint
from polytask.training.logger import read_metrics
from tests.conftest import DEVICE, exported_weights, online_run_args, run_script, state_batch, torch_round_trip

SHAPES = {"state": (39,)}


def _batch(n=128, seed=0):
    return state_batch(n, 39, 4, seed)


def test_squashed_gaussian_log_prob_matches_torch_distribution():
    torch.manual_seed(0)
    actor = GaussianActor(39, 4, 32, 32, 1, False)
    h = torch.randn(256, 39)
    action, log_prob = actor.sample(h)
    mu, log_std = actor(h)
    ref = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mu, log_std.exp()), [torch.distributions.TanhTransform()])
    inside = action.abs().max(-1).values < 0.999  # atanh is ill-conditioned at the edges
    torch.testing.assert_close(log_prob[inside, 0], ref.log_prob(action).sum(-1)[inside], atol=2e-3, rtol=1e-4)
    assert action.abs().max() <= 1 and torch.isfinite(log_prob).all()
    assert torch.all(log_std >= -5) and torch.all(log_std <= 2)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_update_reduces_critic_loss_on_fixed_batch(layer_norm):
    torch.manual_seed(0)
    agent = SACAgent(SHAPES, 4, "features", hidden_dim=64, lr=1e-3, critic_layer_norm=layer_norm)
    norms = [m for m in agent.critic_target.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == (2 * 2 if layer_norm else 0)  # one per hidden layer (2) of each of the twin Q MLPs
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in agent.actor.modules())
    batch = _batch()
    losses = [agent.update(batch)["critic_loss"] for _ in range(150)]
    assert np.mean(losses[-10:]) < 0.3 * losses[0], (losses[0], losses[-10:])


def test_actor_waits_for_actor_update_after():
    """Before ``actor_update_after`` only the critics learn; from it on actor and temperature do too."""
    torch.manual_seed(0)
    agent = SACAgent(SHAPES, 4, "features", hidden_dim=32, actor_update_after=100)
    actor0 = [p.detach().clone() for p in agent.actor.parameters()]
    critic0 = [p.detach().clone() for p in agent.critic.parameters()]
    metrics = agent.update(_batch(), step=99)
    assert "actor_loss" not in metrics and "critic_loss" in metrics
    assert all(torch.equal(a, b) for a, b in zip(actor0, agent.actor.parameters())) and agent.alpha.item() == 1.0
    assert not all(torch.equal(a, b) for a, b in zip(critic0, agent.critic.parameters()))
    metrics = agent.update(_batch(), step=100)
    assert "actor_loss" in metrics and agent.alpha.item() != 1.0
    assert not all(torch.equal(a, b) for a, b in zip(actor0, agent.actor.parameters()))


@pytest.mark.parametrize("target_entropy, direction", [(-40.0, -1), (8.0, +1)])
def test_temperature_moves_toward_target_entropy(target_entropy, direction):
    """Entropy above the target (−40 for A=4) lowers α; a target above the reachable entropy (the
    squashed policy's entropy is at most 4·log 2) raises it."""
    torch.manual_seed(0)
    agent = SACAgent(SHAPES, 4, "features", hidden_dim=64, lr=1e-2, target_entropy=target_entropy)
    alphas = [agent.update(_batch())["alpha"] for _ in range(30)]
    assert direction * (alphas[-1] - 1.0) > 0.1, alphas[-1]
    assert agent.target_entropy == target_entropy and SACAgent(SHAPES, 6, "features").target_entropy == -6.0


def test_act_modes_and_pixels_error():
    torch.manual_seed(0)
    agent = SACAgent(SHAPES, 4, "features", hidden_dim=32, num_expl_steps=10)
    obs = {"state": np.random.randn(512, 39).astype(np.float32), "task_id": np.zeros(512, np.int64)}
    mean = agent.act(obs, eval_mode=True)
    np.testing.assert_array_equal(mean, agent.act(obs, eval_mode=True))  # deterministic
    uniform, sampled = agent.act(obs, eval_mode=False, step=0), agent.act(obs, eval_mode=False, step=10)
    assert mean.shape == uniform.shape == sampled.shape == (512, 4) and mean.dtype == np.float32
    assert np.all(np.abs(sampled) <= 1) and np.all(np.abs(uniform) <= 1)
    assert abs(uniform.std() - 1 / np.sqrt(3)) < 0.02  # U(-1, 1)
    assert 0.05 < np.abs(sampled - mean).mean() < np.abs(uniform - mean).mean()
    with pytest.raises(ConfigError, match="obs_type=features"):
        SACAgent({"pixels": (9, 84, 84), "state": (39,)}, 4, "pixels")


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = SACAgent(SHAPES, 4, "features", hidden_dim=32, lr=1e-2)
    for _ in range(5):
        a.update(_batch())
    b = SACAgent(SHAPES, 4, "features", hidden_dim=32)
    b.load_state_dict(torch_round_trip(a.state_dict()))
    obs = {"state": np.random.randn(3, 39).astype(np.float32)}
    np.testing.assert_array_equal(a.act(obs), b.act(obs))
    assert b.alpha.item() == a.alpha.item() != 1.0
    torch.manual_seed(1)
    ma = a.update(_batch(seed=3))
    torch.manual_seed(1)
    assert b.update(_batch(seed=3)) == ma  # optimiser states and targets restored too


def test_online_run_end_to_end_with_resume(tmp_path):
    run = tmp_path / "run"
    common = online_run_args(run, tmp_path, "sac", "reach")
    p = run_script("train.py", *common, "num_train_steps=300", "eval_every_steps=300")
    assert p.returncode == 0, p.stderr[-3000:]
    weights_300 = exported_weights(p)
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 300 and ckpt["replay"]["count"] == 302 and ckpt["agent"]["log_alpha"].item() < 0
    logged = {k for r in read_metrics(run / "train.csv") for k in r}
    assert "alpha" in logged and "entropy" in logged
    p = run_script("train.py", *common, "num_train_steps=400", "eval_every_steps=400")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "at step 300" in p.stderr + p.stdout
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["replay"]["count"] == 403
    assert json.loads((run / "results.json").read_text())["step"] == 400
    weights = exported_weights(p)  # named after the run's settings, so a sweep's runs do not share one file
    assert weights.exists() and weights.parent == tmp_path / "weights" / "sac" / "metaworld"
    assert weights.name.startswith("reach-features-seed1-agent.hidden_dim-64+") and weights != weights_300
    p = run_script("train.py", *common, "obs_type=pixels", f"hydra.run.dir={tmp_path / 'px'}", "num_train_steps=10")
    assert p.returncode == 1 and "obs_type=features" in p.stdout + p.stderr


@pytest.mark.slow
def test_sac_learns_cartpole_balance(tmp_path):
    """SAC from the env reward clearly beats a random policy on DMC cartpole_balance after 6000 steps
    (2-4 minutes on one core; a lower initial temperature than the default 1.0 learns faster)."""
    run = tmp_path / "run"
    p = run_script("train.py", f"hydra.run.dir={run}", f"data_dir={tmp_path}", "agent=sac", "suite=dmc",
                   "suite.task=[cartpole_balance]", "irl=false", "num_train_steps=6000", "update_after_steps=1000",
                   "agent.num_expl_steps=1000", "agent.init_temperature=0.1", "eval_every_steps=6000",
                   "save_every_steps=6000", "log_every_steps=500", "eval.num_episodes=3", "eval.video=off",
                   DEVICE, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["return"] > 550, results  # uniform random actions score ~350; 650 here at step 6000
