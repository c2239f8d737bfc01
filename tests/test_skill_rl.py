"""Skill-space SAC (SPiRL, SkiLD): the KL-regularised actor loss, the temperature tuned toward the
target divergence, SkiLD's reward and KL split, the skill-space env, a maze run killed and resumed,
the missing-stage message, and (slow) SkiLD end to end with every earlier stage made first."""

import json
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.distributions import kl_divergence

from polytask.agents.skill_rl import SkiLDAgent, SkillSACAgent
from polytask.agents.skills import DemoDiscriminatorAgent, SkillPosteriorAgent, SkillPriorAgent
from polytask.errors import ConfigError
from polytask.training.checkpoint import load_checkpoint
from polytask.training.logger import read_metrics
from polytask.training.skill_inputs import missing_stages, stage_file, stage_overrides, stage_path
from polytask.utils import atomic_torch_save
from tests.conftest import (
    DEVICE,
    ROOT,
    compose_cfg,
    diag_normal,
    exported_weights,
    kill_after_first_checkpoint,
    run_script,
    state_batch,
)

D, A, Z = 4, 2, 10
SIZES = {"z_dim": Z, "horizon": 10, "hidden_dim": 32, "hidden_depth": 2}


def _spec(agent) -> dict:
    return {"model": agent.model.state_dict(), **SIZES}


def _prior_spec(seed=0) -> dict:
    torch.manual_seed(seed)
    return _spec(SkillPriorAgent({"state": (D,)}, A, "features", hidden_dim=32, hidden_depth=2))


def _skild_inputs(seed=0) -> dict:
    torch.manual_seed(seed)
    post = SkillPosteriorAgent({"state": (D,)}, A, "features", hidden_dim=32, hidden_depth=2)
    disc = DemoDiscriminatorAgent({"state": (D,)}, A, "features", hidden_dim=16, hidden_depth=1)
    return {"skill_posterior": {**_spec(post), "posterior": post.posterior.state_dict()},
            "demo_discriminator": {"net": disc.net.state_dict(), "normalizer": disc.normalizer.state_dict(),
                                   "hidden_dim": 16, "hidden_depth": 1}}


def _batch(n=64, seed=0) -> dict:
    return state_batch(n, D, Z, seed)


def test_actor_loss_is_kl_regularised_and_pulls_the_policy_to_the_prior():
    agent = SkillSACAgent({"state": (D,)}, A, "features", skill_model=_prior_spec(), hidden_dim=32,
                          init_temperature=0.5, target_divergence=None, lr=1e-2)
    x = agent._actor_input(_batch()["obs"])
    # the policy starts as the prior: zero divergence
    torch.testing.assert_close(agent.divergences(x, *agent.actor(x))["prior"], torch.zeros(len(x)))
    with torch.no_grad():  # move the policy off the prior
        agent.actor.net[-1].bias.add_(0.7)
    torch.manual_seed(3)
    mean, log_std = agent.actor(x)
    action = torch.tanh(mean + log_std.exp() * torch.randn_like(mean))
    kl = kl_divergence(diag_normal(mean, log_std), diag_normal(*agent.prior(x)))
    expected = (0.5 * kl - torch.min(*agent.critic(x, action)).squeeze(-1)).mean()
    torch.manual_seed(3)
    metrics = agent._update_actor_and_alpha(_batch()["obs"], x)
    assert metrics["actor_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["kl_prior"] == pytest.approx(kl.mean().item(), rel=1e-5)
    assert metrics["alpha_prior"] == pytest.approx(0.5) and "alpha_loss_prior" not in metrics  # alpha fixed
    # with a critic that scores every skill alike, the actor only follows the KL back to the prior
    for p in agent.critic.parameters():
        p.data.zero_()
    for _ in range(100):
        agent._update_actor_and_alpha(_batch()["obs"], x)
    after = agent.divergences(x, *agent.actor(x))["prior"].mean().item()
    assert after < 0.2 * kl.mean().item(), (kl.mean().item(), after)


@pytest.mark.parametrize("squash", ["tanh", "scaled"])
def test_scaled_squash_makes_the_initial_policy_act_as_the_prior(squash):
    """``squash=scaled`` (z = bound·tanh(u / bound)): the untrained policy, a copy of the prior, acts with
    the prior's skills (up to the squash's O(u³/bound²)); ``squash=tanh`` (z = bound·tanh(u)) does not."""
    agent = SkillSACAgent({"state": (D,)}, A, "features", skill_model=_prior_spec(), bound=5.0, squash=squash,
                          eval_mean_skill=True, num_expl_steps=0)
    state = np.random.default_rng(0).standard_normal((256, D)).astype(np.float32)
    skill = 5.0 * agent.act({"state": state}, eval_mode=True)
    with torch.no_grad():
        prior_mean = agent.prior(agent.normalizer(torch.as_tensor(state)))[0].numpy()
    small = np.abs(prior_mean) < 1.0
    assert small.mean() > 0.5
    error = np.abs(skill - prior_mean)[small].max()
    assert error < 0.02 if squash == "scaled" else error > 0.5, error
    with pytest.raises(ConfigError, match="agent.squash must be one of"):
        SkillSACAgent({"state": (D,)}, A, "features", skill_model=_prior_spec(), squash="clip")


def test_prior_kl_is_clipped_where_the_prior_is_extremely_narrow():
    """Off the play data a learned prior can be extremely narrow (σ ~ e⁻¹⁰): its KL is clipped at
    ``prior_kl_clip`` nats per state there, and such states pass no gradient to the policy."""
    agent = SkillSACAgent({"state": (D,)}, A, "features", skill_model=_prior_spec(), hidden_dim=32, prior_kl_clip=50.0)
    x = agent._actor_input(_batch()["obs"])
    with torch.no_grad():  # half the states are so far off that the prior's σ collapses
        x[::2] *= 1e4
        agent.prior.net[-1].bias[Z:].fill_(-10.0)
    mean, log_std = agent.actor(x)
    raw = kl_divergence(diag_normal(mean, log_std), diag_normal(*agent.prior(x)))
    kl = agent.divergences(x, mean, log_std)["prior"]
    assert raw.max().item() > 1e6 and kl.max().item() == pytest.approx(50.0)
    torch.testing.assert_close(kl[raw < 50], raw[raw < 50])
    (grad,) = torch.autograd.grad(kl.sum(), mean)
    assert torch.all(grad[raw >= 50] == 0) and torch.all(torch.isfinite(grad))


@pytest.mark.parametrize("offset, grows", [(3.0, True), (0.0, False)])
def test_alpha_is_tuned_toward_the_target_divergence(offset, grows):
    """α grows while KL(π ‖ p) is above the target divergence and shrinks while it is below."""
    agent = SkillSACAgent({"state": (D,)}, A, "features", skill_model=_prior_spec(), hidden_dim=32,
                          init_temperature=0.1, target_divergence=1.0, lr=1e-2)
    agent.actor_opt.param_groups[0]["lr"] = 0.0  # keep the policy (and its divergence) where it is
    with torch.no_grad():
        agent.actor.net[-1].bias[:Z].add_(offset)
    obs = _batch()["obs"]
    x = agent._actor_input(obs)
    kl = agent.divergences(x, *agent.actor(x))["prior"].mean().item()
    assert (kl > 1.0) == grows, kl
    alphas = [agent._update_actor_and_alpha(obs, x)["alpha_prior"] for _ in range(20)]
    assert alphas[-1] != pytest.approx(0.1)
    assert (agent.alpha.item() > 0.1) == grows, alphas


def test_skild_reward_and_kl_split():
    agent = SkiLDAgent({"state": (D,)}, A, "features", hidden_dim=32, init_temperature=0.2,
                       init_temperature_q=0.05, posterior_kl_clip=None, **_skild_inputs())
    batch = _batch()
    obs, state = batch["obs"], batch["obs"]["state"]
    d = torch.sigmoid(agent.discriminator(agent.disc_normalizer(state)).squeeze(-1))
    reward, metrics = agent.reward(obs, batch["reward"])
    torch.testing.assert_close(reward, 0.9 * batch["reward"] + 0.1 * (torch.log(d) - torch.log1p(-d)))
    assert metrics["env_reward"] == pytest.approx(batch["reward"].mean().item())
    x = agent._actor_input(obs)
    mean, log_std = agent.actor(x)
    reg, divs, weights = agent.regulariser(obs, x, mean, log_std)
    kl_p = kl_divergence(diag_normal(mean, log_std), diag_normal(*agent.prior(x)))
    kl_q = kl_divergence(diag_normal(mean, log_std), diag_normal(*agent.posterior(x)))
    torch.testing.assert_close(weights["posterior"], d)
    torch.testing.assert_close(reg.squeeze(-1), 0.2 * (1 - d) * kl_p + 0.05 * d * kl_q, rtol=1e-4, atol=1e-5)
    imitation = SkiLDAgent({"state": (D,)}, A, "features", hidden_dim=32, imitation=True, **_skild_inputs())
    torch.testing.assert_close(imitation.reward(obs, batch["reward"])[0], torch.log(d) - torch.log1p(-d))
    # the clip bounds the posterior term per state
    clipped = SkiLDAgent({"state": (D,)}, A, "features", hidden_dim=32, posterior_kl_clip=0.5, **_skild_inputs())
    assert clipped.divergences(x, mean, log_std)["posterior"].max().item() <= 0.5
    # the logit clamp bounds the discriminator reward and leaves logits inside the bound as they are
    logit = torch.log(d) - torch.log1p(-d)
    c = logit.abs().median().item()
    bounded = SkiLDAgent({"state": (D,)}, A, "features", hidden_dim=32, demo_logit_clip=c, **_skild_inputs())
    torch.testing.assert_close(bounded.reward(obs, batch["reward"])[0],
                               0.9 * batch["reward"] + 0.1 * logit.clamp(-c, c))
    assert (logit.abs() > c).any() and (logit.abs() < c).any()
    # both temperatures learn, each weighted by where its term applies; the state round-trips
    before = (agent.log_alpha.item(), agent.log_alpha_q.item())
    metrics = agent.update(batch)
    assert {"kl_prior", "kl_posterior", "alpha_loss_prior", "alpha_loss_posterior", "demo_reward"} <= set(metrics)
    assert agent.log_alpha.item() != before[0] and agent.log_alpha_q.item() != before[1]
    state = agent.state_dict()
    again = SkiLDAgent({"state": (D,)}, A, "features", hidden_dim=32,
                       **{k: state[k] for k in SkiLDAgent.state_init_args})
    again.load_state_dict(state)
    assert again.log_alpha_q.item() == agent.log_alpha_q.item()


class RecordActions(gym.Wrapper):
    """Keeps every (observation, action) the env was stepped from."""

    def reset(self, **kwargs):
        self.obs, info = self.env.reset(**kwargs)
        self.steps = []
        return self.obs, info

    def step(self, action):
        self.steps.append((self.obs, action))
        self.obs, *rest = self.env.step(action)
        return (self.obs, *rest)


def test_skill_space_env_runs_the_decoder_for_h_steps():
    from polytask.suites.maze import make

    agent = SkillSACAgent({"state": (D,)}, A, "features", skill_model=_prior_spec(), hidden_dim=32)
    recorded = RecordActions(make("umaze"))
    env = agent.wrap_env(recorded)
    assert env.action_space.shape == (Z,) and env.action_space.high.max() == 1.0
    obs, _ = env.reset(seed=0)
    action = agent.act({"state": obs["state"][None]}, eval_mode=False, step=0)[0]
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["env_steps"] == 10 and len(recorded.steps) == 10 and np.isfinite(reward)
    for seen, env_action in recorded.steps:  # closed loop: the decoder at each state, skill z = 2·action
        np.testing.assert_allclose(env_action, agent.decode(seen, 2.0 * action), rtol=1e-5, atol=1e-6)
    assert not np.allclose(recorded.steps[0][0]["state"], recorded.steps[-1][0]["state"])
    env.close()


def _spirl_run(run, data_dir, steps):
    return [sys.executable, str(ROOT / "train.py"), "agent=spirl", "suite=maze", f"hydra.run.dir={run}",
            f"data_dir={data_dir}", f"num_train_steps={steps}", "update_after_steps=20", "batch_size=32",
            "agent.hidden_dim=32", "log_every_steps=10", "save_every_steps=20", f"eval_every_steps={steps}",
            "eval.num_episodes=2", "eval.video=off", DEVICE]


def test_missing_stages_come_in_the_order_they_are_made(tmp_path):
    """SkiLD asks for the posterior and the discriminator: with nothing on disk the skill model comes
    first (the posterior trains on it); a posterior on disk needs no skill model; a named file counts."""
    cfg = compose_cfg("agent=skild", "suite=maze", f"data_dir={tmp_path}", "num_demos_per_task=2")
    inputs = SkiLDAgent.inputs({})
    assert missing_stages(cfg, inputs) == ["skill_prior", "skill_posterior", "demo_discriminator"]
    posterior = stage_path(cfg, "skill_posterior")
    posterior.parent.mkdir(parents=True)
    posterior.write_bytes(b"")
    assert missing_stages(cfg, inputs) == ["demo_discriminator"]
    named = compose_cfg("agent=skild", "suite=maze", f"data_dir={tmp_path}", f"demo_discriminator={posterior}")
    assert missing_stages(named, inputs) == ["skill_prior", "skill_posterior"]  # 5 demos: not that posterior file
    assert missing_stages(cfg, SkillSACAgent.inputs({})) == ["skill_prior"]


def test_stage_files_carry_the_settings_of_the_stage_overrides(tmp_path):
    """A run that sets ``stage_overrides.<stage>`` looks for and makes that stage's file with those settings
    in its name (the eval ones left out), as the stage's own command names it: a run asking for other
    settings never takes it. The posterior made first trains on the run's skill model."""
    base = ("agent=skild", "suite=maze", f"data_dir={tmp_path}", "num_demos_per_task=2")
    plain = compose_cfg(*base)
    longer = compose_cfg(*base, 'stage_overrides.skill_prior=["num_train_steps=40000","eval.num_episodes=3"]')
    longest = compose_cfg(*base, 'stage_overrides.skill_prior=["num_train_steps=100000"]')
    assert stage_path(plain, "skill_prior").name == "play-features-seed1.pt"
    assert stage_path(longer, "skill_prior").name == "play-features-seed1-num_train_steps-40000.pt"
    assert "weights_tag=num_train_steps-40000" in stage_overrides(longer, "skill_prior")
    assert "weights_tag=" in stage_overrides(plain, "skill_prior")
    made = stage_path(longer, "skill_prior")
    made.parent.mkdir(parents=True)
    made.write_bytes(b"")
    inputs = SkiLDAgent.inputs({})
    assert missing_stages(longer, inputs) == ["skill_posterior", "demo_discriminator"]
    assert missing_stages(longest, inputs)[0] == "skill_prior"  # not the 40k-update model
    assert missing_stages(plain, inputs)[0] == "skill_posterior"  # the one file with other settings, as before
    assert f"skill_model={made}" in stage_overrides(longer, "skill_posterior")


def test_spirl_run_killed_and_resumed(tmp_path):
    """A maze run on a small exported skill model, killed after its first checkpoint and run again:
    it resumes there with its replay buffer and frame count and ends with the weights exported."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    cfg = compose_cfg("agent=spirl", "suite=maze", f"data_dir={data_dir}", "collect_missing_demos=false")
    with pytest.raises(ConfigError, match=r"No skill_prior weights at .*play-features-seed1\.pt\. Make them with:\n"
                                          r"  python train\.py agent=skill_prior suite=maze obs_type=features seed=1"):
        stage_file(cfg, "skill_prior")
    prior_cfg = compose_cfg("agent=skill_prior", "suite=maze", f"data_dir={data_dir}", "agent.hidden_dim=32",
                            "agent.hidden_depth=2")
    atomic_torch_save({"agent": {"model": _prior_spec()["model"]}, "agent_name": "skill_prior",
                       "config": OmegaConf.to_container(prior_cfg, resolve=True)},
                      data_dir / "weights" / "skill_prior" / "maze" / "play-features-seed1.pt")
    killed_at = kill_after_first_checkpoint(_spirl_run(run, data_dir, 200), run)
    latest = run / "checkpoints" / "latest.pt"
    assert 20 <= killed_at < 200
    p = run_script("train.py", *_spirl_run(run, data_dir, 200)[2:])
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"at step {killed_at}" in p.stderr + p.stdout
    ckpt = load_checkpoint(latest)
    assert ckpt["step"] == 200
    rows = read_metrics(run / "train.csv")
    frames = [r["frames"] for r in rows if "frames" in r]
    assert frames[-1] == ckpt["frames"] and 200 < ckpt["frames"] <= 2000  # env steps: up to H per skill
    assert 0 < rows[-1]["seconds_decoder"] < rows[-1]["seconds_env"]  # the decoder's part of the env time
    assert json.loads((run / "results.json").read_text())["frames"] == ckpt["frames"]  # eval logs env steps too
    assert ckpt["agent"]["skill_model"]["horizon"] == 10
    weights = exported_weights(p)
    assert weights.parent == data_dir / "weights" / "spirl" / "maze"
    # evaluate.py rebuilds the agent from its file alone and scores it in skill space
    p = run_script("evaluate.py", f"policy={weights}", "eval.num_episodes=2", f"hydra.run.dir={tmp_path / 'ev'}",
                   DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["umaze/length"] <= 30  # skills: 300 steps / H
    # an agent option changed for the evaluation (the mean skill), checked as a training run's options are
    p = run_script("evaluate.py", f"policy={weights}", "eval.num_episodes=2", "+agent.eval_mean_skill=true",
                   f"hydra.run.dir={tmp_path / 'ev-mean'}", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "ev-mean" / "results.json").read_text())["agent"] == {"eval_mean_skill": True}
    p = run_script("evaluate.py", f"policy={weights}", "+agent.eval_mean_skil=true", f"hydra.run.dir={tmp_path / 'e'}")
    assert p.returncode == 1 and "eval_mean_skil" in p.stdout + p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_skild_end_to_end_makes_every_missing_stage_first(tmp_path):
    """``train.py agent=skild suite=maze`` with nothing on disk: play data, skill model, demos, skill
    posterior and discriminator are made first (tiny), then skill-space SAC runs and exports."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    small = '"agent.hidden_dim=32","eval.num_episodes=1","eval.video=off","eval_every_steps=20","num_train_steps=20"'
    stages = [f'stage_overrides.skill_prior=[{small},"play.num_episodes=4","heldout_windows=32"]',
              f"stage_overrides.skill_posterior=[{small}]",
              'stage_overrides.demo_discriminator=["num_train_steps=20","eval_every_steps=20","heldout_windows=64"]']
    p = run_script("train.py", "agent=skild", "suite=maze", f"hydra.run.dir={run}", f"data_dir={data_dir}",
                   "num_demos_per_task=2", *stages, "num_train_steps=40", "update_after_steps=20", "batch_size=32",
                   "log_every_steps=10", "save_every_steps=20", "eval_every_steps=40", "eval.num_episodes=2",
                   "eval.video=off", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stderr + p.stdout
    for stage in ("skill_posterior", "skill_prior", "demo_discriminator"):
        assert f"{stage} weights missing at" in out, stage
        assert (run / "stages" / stage / "results.json").exists(), stage
    assert "Play data missing" in out
    posterior = (data_dir / "weights" / "skill_posterior" / "maze" /
                 "umaze-features-d2-seed1-agent.hidden_dim-32+num_train_steps-20.pt")  # its stage_overrides' settings
    assert f"skill_posterior (frozen) from {posterior}" in out
    weights = exported_weights(p)
    assert weights.parent == data_dir / "weights" / "skild" / "maze" and "-d2-seed1" in weights.name
    # run again for longer: the stages are found now, and the RL step resumes
    more = [a if not a.startswith("num_train_steps=") else "num_train_steps=60" for a in p.args[2:]]
    p = run_script("train.py", *more)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stderr + p.stdout
    assert "at step 40" in out and "weights missing" not in out
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 60
