"""The flat prior (agent=flat_prior) and SAC from it (agent=bc_sac): the prior's likelihood against
torch.distributions and learning on maze play data, SAC starting exactly as the prior, the KL-regularised
variant's KL and loss, the entropy variant's SAC update, and the flat prior made first by convention."""

import pytest
import torch
from torch.distributions import Normal, TransformedDistribution, kl_divergence
from torch.distributions.transforms import TanhTransform

from polytask.agents.base import Agent
from polytask.agents.flat import BCSACAgent, FlatPriorAgent
from polytask.agents.sac import SACAgent
from polytask.data.buffer import DemoBuffer
from polytask.errors import ConfigError
from polytask.training.skill_inputs import flat_prior_spec, missing_stages, stage_file, stage_path
from polytask.training.weights import read_weights
from tests.conftest import DEVICE, compose_cfg, diag_normal, exported_weights, run_script, state_batch

pytest.importorskip("gymnasium_robotics")

D, A = 4, 2


def _prior(seed=0, **options) -> FlatPriorAgent:
    torch.manual_seed(seed)
    return FlatPriorAgent({"state": (D,)}, A, "features", hidden_dim=32, **options)


def _spec(prior: FlatPriorAgent) -> dict:
    return {"model": prior.model.state_dict(), "hidden_dim": 32, "hidden_depth": 2, "log_std_bounds": [-5.0, 2.0]}


def _batch(n=64, seed=0) -> dict:
    return state_batch(n, D, A, seed)


def test_nll_is_the_tanh_gaussian_likelihood():
    prior = _prior(action_clip=0.99)
    g = torch.Generator().manual_seed(1)
    state, action = torch.randn(32, D, generator=g), torch.rand(32, A, generator=g) * 1.9 - 0.95
    action[0] = 1.0  # an action at the bound is clipped to action_clip first
    mean, log_std = prior.model(state)
    squashed = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    expected = -squashed.log_prob(action.clamp(-0.99, 0.99)).sum(-1)
    torch.testing.assert_close(prior.nll(state, action), expected, rtol=1e-4, atol=1e-4)
    assert torch.isfinite(prior.nll(state, action)).all()


def test_nll_falls_on_held_out_play_data():
    from polytask.experts.maze import play_episodes

    eps = list(play_episodes(None, 6, seed=3))
    train, heldout = (DemoBuffer({0: e}, ("state",), seed=0) for e in (eps[:5], eps[5:]))
    prior = _prior(lr=3e-3)
    held = heldout.get_windows(torch.arange(min(len(heldout), 512)).numpy(), *prior.window)
    before = prior.score(held)
    for _ in range(300):
        metrics = prior.update(train.sample_windows(128, *prior.window))
    after = prior.score(held)
    assert metrics["nll"] < before["nll"] - 1.0 and after["nll"] < before["nll"] - 1.0, (before, after)
    assert after["mse"] < before["mse"], (before, after)


@pytest.mark.parametrize("kl_to_prior", [False, True])
def test_sac_starts_as_the_flat_prior(kl_to_prior):
    prior = _prior()
    agent = BCSACAgent({"state": (D,)}, A, "features", flat_prior=_spec(prior), hidden_dim=32, kl_to_prior=kl_to_prior,
                       num_expl_steps=0)
    x = _batch()["obs"]["state"]
    for got, want in zip(agent.actor(x), prior.model(x)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    obs = {"state": x.numpy()}
    torch.testing.assert_close(torch.as_tensor(agent.act(obs, eval_mode=True)), torch.as_tensor(prior.act(obs)))
    torch.manual_seed(5)
    sampled = agent.act(obs, eval_mode=False, step=0)
    torch.manual_seed(5)
    torch.testing.assert_close(torch.as_tensor(sampled), torch.as_tensor(prior.act(obs, eval_mode=False)))
    assert agent.action_dim == A and type(agent).wrap_env is Agent.wrap_env  # env actions, not skills
    # the prior stays frozen while the actor learns
    before = {k: v.clone() for k, v in agent.prior.state_dict().items()}
    for step in range(3):
        agent.update(_batch(seed=step), step)
    assert all(torch.equal(before[k], v) for k, v in agent.prior.state_dict().items())
    assert not torch.equal(agent.actor(x)[0], prior.model(x)[0])


def test_kl_to_prior_loss_matches_torch_distributions():
    agent = BCSACAgent({"state": (D,)}, A, "features", flat_prior=_spec(_prior()), hidden_dim=32, kl_to_prior=True,
                       init_temperature=0.5, target_divergence=None)
    obs = _batch()["obs"]
    x = agent._actor_input(obs)
    torch.testing.assert_close(agent.divergences(x, *agent.actor(x))["prior"], torch.zeros(len(x)))
    with torch.no_grad():  # move the policy off the prior
        agent.actor.policy[-1].bias.add_(0.5)
    torch.manual_seed(3)
    mean, log_std = agent.actor(x)
    action = torch.tanh(mean + log_std.exp() * torch.randn_like(mean))
    kl = kl_divergence(diag_normal(mean, log_std), diag_normal(*agent.prior(x)))
    assert kl.min() > 0
    expected = (0.5 * kl - torch.min(*agent.critic(x, action)).squeeze(-1)).mean()
    torch.manual_seed(3)
    metrics = agent._update_actor_and_alpha(obs, x)
    assert metrics["actor_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["kl_prior"].item() == pytest.approx(kl.mean().item(), rel=1e-5)
    assert "entropy" not in metrics and "alpha_loss_prior" not in metrics  # alpha fixed


def test_entropy_variant_is_sacs_update():
    """Without kl_to_prior the agent updates exactly as SACAgent with the same weights."""
    prior = _prior()
    agent = BCSACAgent({"state": (D,)}, A, "features", flat_prior=_spec(prior), hidden_dim=32)
    sac = SACAgent({"state": (D,)}, A, "features", hidden_dim=32, init_temperature=agent.cfg.init_temperature)
    sac.load_state_dict({k: v for k, v in agent.state_dict().items() if k != "flat_prior"})
    for step in range(3):
        torch.manual_seed(step)
        ours = agent.update(_batch(seed=step), step)
        torch.manual_seed(step)
        theirs = sac.update(_batch(seed=step), step)
        assert {k: float(v) for k, v in ours.items()} == pytest.approx({k: float(v) for k, v in theirs.items()})
    assert "entropy" in ours and "kl_prior" not in ours


def test_bc_sac_rejects_a_prior_of_other_sizes():
    spec = {**_spec(_prior()), "hidden_dim": 64}
    with pytest.raises(ValueError, match="the flat prior does not fit 4-d states and 2-d actions"):
        BCSACAgent({"state": (D,)}, A, "features", flat_prior=spec, hidden_dim=32)


def test_bc_sac_refuses_the_scaled_squash():
    with pytest.raises(ConfigError, match="agent.squash='scaled': BC \\+ SAC acts in the env's action space"):
        BCSACAgent({"state": (D,)}, A, "features", flat_prior=_spec(_prior()), squash="scaled")


def test_flat_prior_stage_is_found_by_convention(tmp_path):
    cfg = compose_cfg("agent=bc_sac", "suite=maze", f"data_dir={tmp_path}", "collect_missing_demos=false")
    assert missing_stages(cfg, BCSACAgent.inputs({})) == ["flat_prior"]
    assert stage_path(cfg, "flat_prior") == tmp_path / "weights" / "flat_prior" / "maze" / "play-features-seed1.pt"
    with pytest.raises(ConfigError, match=r"No flat_prior weights at .*play-features-seed1\.pt\. Make them with:\n"
                                          r"  python train\.py agent=flat_prior suite=maze obs_type=features seed=1"):
        stage_file(cfg, "flat_prior")
    demos = compose_cfg("agent=bc_sac", "suite=maze", f"data_dir={tmp_path}", "prior_data=demos",
                        "num_demos_per_task=3", "collect_missing_demos=false")
    assert stage_path(demos, "flat_prior").name == "umaze-features-d3-seed1.pt"
    with pytest.raises(ConfigError, match=r"agent=flat_prior .* prior_data=demos 'suite\.task=\[umaze\]' "
                                          r"num_demos_per_task=3"):
        stage_file(demos, "flat_prior")
    named = compose_cfg("agent=bc_sac", "suite=maze", f"data_dir={tmp_path}", f"flat_prior={tmp_path / 'x.pt'}")
    assert missing_stages(named, BCSACAgent.inputs({})) == []
    with pytest.raises(ConfigError, match="prior_data must be one of"):
        stage_path(compose_cfg("agent=bc_sac", "suite=maze", "prior_data=bogus"), "flat_prior")


def test_bc_sac_makes_the_flat_prior_first(tmp_path):
    """``train.py agent=bc_sac suite=maze`` with nothing on disk: play data and flat prior are made first
    (tiny), SAC starts from the prior, and the prior's file holds SAC's actor."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    stage = ('stage_overrides.flat_prior=["play.num_episodes=4","num_train_steps=100","eval_every_steps=100",'
             '"eval.num_episodes=1","eval.video=off","heldout_windows=64","agent.hidden_dim=32"]')
    p = run_script("train.py", "agent=bc_sac", "suite=maze", f"hydra.run.dir={run}", f"data_dir={data_dir}", stage,
                   "num_train_steps=60", "update_after_steps=20", "batch_size=16", "agent.hidden_dim=32",
                   "eval_every_steps=60", "eval.num_episodes=1", "eval.video=off", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stderr + p.stdout
    # named with the stage overrides' settings (the eval ones left out), as the stage's own command names it
    prior_file = (data_dir / "weights" / "flat_prior" / "maze" /
                  "play-features-seed1-agent.hidden_dim-32+heldout_windows-64+num_train_steps-100+play.num_episodes-4.pt")
    assert f"flat_prior weights missing at {prior_file}" in out and "Play data missing" in out
    assert f"flat_prior (frozen) from {prior_file}" in out
    assert (run / "stages" / "flat_prior" / "heldout.csv").exists()
    saved = read_weights(exported_weights(p))
    assert saved["agent_name"] == "bc_sac"
    spec = flat_prior_spec(read_weights(prior_file))
    for k, v in spec["model"].items():
        assert torch.equal(saved["agent"]["flat_prior"]["model"][k], v), k
