"""EXTRACT's hybrid skill-space SAC: the analytic KL terms, the hybrid policy's samples and
log-probabilities, the actor loss and critic target, the skill-space env's stopping rules, and a maze
run killed and resumed."""

import json
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.distributions as td
from omegaconf import OmegaConf

from polytask.agents.extract import ExtractSkillAgent
from polytask.agents.extract_rl import ExtractSACAgent
from polytask.errors import ConfigError
from polytask.suites.skills import HybridSkillWrapper
from polytask.training.checkpoint import load_checkpoint
from polytask.training.logger import read_metrics
from polytask.training.skill_inputs import stage_file
from polytask.utils import atomic_torch_save
from tests.conftest import DEVICE, ROOT, compose_cfg, exported_weights, kill_after_first_checkpoint, run_script

D, A, K, Z = 4, 2, 3, 5
SIZES = {"num_skills": K, "z_dim": Z, "z_bound": 2.0, "hidden_dim": 32, "hidden_depth": 2}


def _model_state(seed=0) -> dict:
    torch.manual_seed(seed)
    skills = ExtractSkillAgent({"state": (D,)}, A, "features", num_skills=K, z_dim=Z, hidden_dim=32, hidden_depth=2)
    return skills.model.state_dict()


def _agent(**options) -> ExtractSACAgent:
    return ExtractSACAgent({"state": (D,)}, A, "features", extract_model={"model": _model_state(), **SIZES},
                           hidden_dim=32, **options)


def _batch(n=64, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    skill = torch.randint(K, (n,), generator=g)
    action = torch.cat([torch.nn.functional.one_hot(skill, K).float(), torch.rand(n, Z, generator=g) * 2 - 1], -1)
    return {"obs": {"state": torch.randn(n, D, generator=g)}, "next_obs": {"state": torch.randn(n, D, generator=g)},
            "action": action, "reward": torch.rand(n, generator=g), "discount": torch.full((n,), 0.99)}


def _move_policy_off_the_priors(agent):
    with torch.no_grad():
        agent.actor["skill"][-1].bias.add_(torch.tensor([1.0, -0.5, 0.0]))
        agent.actor["argument"].net[-1].bias.add_(0.4)


def test_kl_terms_match_torch_distributions():
    agent = _agent()
    x = agent._actor_input(_batch()["obs"])
    _, kl_d, kl_z, _ = agent.divergences(x)  # the policy starts as the priors
    torch.testing.assert_close(kl_d, torch.zeros(len(x)), atol=1e-6, rtol=0)
    torch.testing.assert_close(kl_z, torch.zeros(len(x), K), atol=1e-6, rtol=0)
    _move_policy_off_the_priors(agent)
    probs, kl_d, kl_z, squashed = agent.divergences(x)
    pi_logits, prior_logits = agent.actor["skill"](x), agent.skill_prior(x)
    expected_d = td.kl_divergence(td.Categorical(logits=pi_logits), td.Categorical(logits=prior_logits))
    torch.testing.assert_close(kl_d, expected_d)
    torch.testing.assert_close(probs, torch.softmax(pi_logits, -1))
    for k in range(K):
        inp = torch.cat([x, torch.nn.functional.one_hot(torch.full((len(x),), k), K).float()], -1)
        (m, s), (pm, ps) = agent.actor["argument"](inp), agent.argument_prior(inp)
        expected = td.kl_divergence(td.Independent(td.Normal(m, s.exp()), 1),
                                    td.Independent(td.Normal(pm, ps.exp()), 1))
        torch.testing.assert_close(kl_z[:, k], expected)
    assert kl_d.min() > 0 and kl_z.min() > 0
    with torch.no_grad():  # a prior far narrower than the policy: the clip bounds each KL_z
        agent.argument_prior.net[-1].bias[Z:].fill_(-10.0)
    assert agent.divergences(x)[2].max().item() == pytest.approx(100.0)
    agent.cfg.argument_kl_clip = None
    assert agent.divergences(x)[2].min().item() > 100.0
    assert squashed.shape == (len(x), K, Z) and squashed.abs().max() < 1


def test_hybrid_policy_samples_and_log_probs():
    agent = _agent()
    _move_policy_off_the_priors(agent)
    obs = _batch(n=256)["obs"]
    x = agent._actor_input(obs)
    torch.manual_seed(1)
    skill, u = agent.sample(x)
    assert skill.shape == (256,) and skill.dtype == torch.int64 and u.shape == (256, Z)
    assert len(set(skill.tolist())) == K  # every skill drawn from a 256-state batch
    action = agent.act({"state": obs["state"].numpy()}, eval_mode=False)
    assert action.shape == (256, K + Z) and action.dtype == np.float32
    np.testing.assert_array_equal(action[:, :K].sum(-1), 1.0)  # one-hot skill
    assert set(np.unique(action[:, :K])) == {0.0, 1.0} and np.abs(action[:, K:]).max() < 1
    log_pk, log_pz = agent.log_prob(x, skill, u)
    logits = agent.actor["skill"](x)
    torch.testing.assert_close(log_pk, td.Categorical(logits=logits).log_prob(skill))
    inp = torch.cat([x, torch.nn.functional.one_hot(skill, K).float()], -1)
    mean, log_std = agent.actor["argument"](inp)
    z_dist = td.TransformedDistribution(td.Normal(mean, log_std.exp()),
                                        [td.TanhTransform(), td.AffineTransform(0.0, 2.0)])
    z = 2.0 * torch.tanh(u)
    torch.testing.assert_close(log_pz, z_dist.log_prob(z).sum(-1), rtol=1e-4, atol=1e-3)
    # the joint log π(k, z | s) is their sum; the skill probabilities sum to one at every state
    joint = td.Categorical(logits=logits).log_prob(skill) + z_dist.log_prob(z).sum(-1)
    torch.testing.assert_close(log_pk + log_pz, joint, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(torch.log_softmax(logits, -1).exp().sum(-1), torch.ones(256))
    # eval with the mean skill: the most likely k and tanh of the mean argument
    mean_agent = _agent(eval_mean_skill=True)
    _move_policy_off_the_priors(mean_agent)
    greedy = mean_agent.act({"state": obs["state"].numpy()}, eval_mode=True)
    np.testing.assert_array_equal(greedy[:, :K].argmax(-1), logits.argmax(-1).numpy())


def test_actor_loss_and_critic_target_are_the_soft_value():
    agent = _agent(init_temperature=0.05, init_temperature_d=0.2)
    _move_policy_off_the_priors(agent)
    batch = _batch()
    x, next_x = agent._actor_input(batch["obs"]), agent._actor_input(batch["next_obs"])

    def value(critic, states, seed):
        torch.manual_seed(seed)
        probs, kl_d, kl_z, squashed = agent.divergences(states)
        q = torch.stack([torch.min(*critic.heads(states, squashed[:, k]))[:, k] for k in range(K)], -1)
        return (probs * (-q + 0.05 * kl_z + 0.2 * kl_d[:, None])).sum(-1)  # Σ_k π_d(k|s)[−Q_k + α·KL_z + α_d·KL_d]

    with torch.no_grad():
        expected_target = batch["reward"] + 0.99 * -value(agent.critic_target, next_x, 5)
    torch.manual_seed(5)
    metrics = agent.update(batch)  # draws z'_k for the target first
    assert metrics["target_q"] == pytest.approx(expected_target.mean().item(), rel=1e-5)
    with torch.no_grad():
        expected_loss = value(agent.critic, x, 7).mean()
    torch.manual_seed(7)
    metrics = agent._update_actor_and_alpha(batch["obs"], x)
    assert metrics["actor_loss"] == pytest.approx(expected_loss.item(), rel=1e-5)
    assert metrics["alpha_argument"] == pytest.approx(0.05) and metrics["alpha_skill"] == pytest.approx(0.2)
    assert "alpha_loss_skill" not in metrics  # fixed temperatures by default
    # with a critic that scores everything alike, the actor follows the KLs back to the priors
    for p in agent.critic.parameters():
        p.data.zero_()
    before = metrics["kl_skill"] + metrics["kl_argument"]
    for _ in range(100):
        metrics = agent._update_actor_and_alpha(batch["obs"], x)
    assert metrics["kl_skill"] + metrics["kl_argument"] < 0.3 * before


def test_temperatures_tuned_toward_target_divergences_and_state_round_trip():
    agent = _agent(target_divergence=1e-3, target_divergence_d=1e-3, lr=1e-2)
    agent.actor_opt.param_groups[0]["lr"] = 0.0  # keep the KLs (above the targets) where they are
    _move_policy_off_the_priors(agent)
    batch = _batch()
    for _ in range(5):
        metrics = agent.update(batch)
    assert metrics["alpha_skill"] > 0.1 and metrics["alpha_argument"] > 0.01
    state = agent.state_dict()
    again = ExtractSACAgent({"state": (D,)}, A, "features", hidden_dim=32,
                            **{k: state[k] for k in ExtractSACAgent.state_init_args})
    again.load_state_dict(state)
    assert again.log_alpha_d.item() == agent.log_alpha_d.item()
    x = agent._actor_input(batch["obs"])
    for ours, theirs in zip(again.distributions(x), agent.distributions(x)):
        torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(again.critic(agent._actor_input(batch["obs"]), batch["action"]),
                               agent.critic(agent._actor_input(batch["obs"]), batch["action"]))


class CountingEnv(gym.Env):
    """1-d observation = steps taken; reward 1 per step; terminates at ``terminate_at`` steps."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (A,), np.float32)

    def __init__(self, terminate_at=1000):
        self.terminate_at, self.actions = terminate_at, []

    def reset(self, *, seed=None, options=None):
        self.t, self.actions = 0, []
        return {"state": np.zeros(1, np.float32)}, {}

    def step(self, action):
        self.t += 1
        self.actions.append(np.asarray(action))
        return {"state": np.full(1, self.t, np.float32)}, 1.0, self.t >= self.terminate_at, False, {}


def _plan_decoder(done_at):
    """Plans of 40 steps whose progress reaches 0.9 at step ``done_at`` (None: never); action t = [t, k]."""
    def decode(skill, z):
        steps = np.arange(40, dtype=np.float32)
        progress = np.full(40, 0.5, np.float32) if done_at is None else np.where(steps >= done_at, 0.95, 0.1)
        actions = np.stack([steps, np.full(40, skill[0], np.float32)], -1)
        return actions[None], progress[None].astype(np.float32)
    return decode


@pytest.mark.parametrize("done_at, terminate_at, steps", [(6, 1000, 7), (None, 1000, 30), (20, 4, 4)])
def test_hybrid_wrapper_stops_at_progress_threshold_max_len_or_termination(done_at, terminate_at, steps):
    base = CountingEnv(terminate_at)
    env = HybridSkillWrapper(base, _plan_decoder(done_at), K, Z, 2.0, progress_done=0.9, max_len=30)
    assert env.action_space.shape == (K + Z,)
    env.reset()
    action = np.array([0.1, 0.9, -0.3, *np.linspace(-1, 1, Z)], np.float32)  # skill 1
    assert env.split(action)[0] == 1 and np.allclose(env.split(action)[1], 2 * np.linspace(-1, 1, Z))
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["env_steps"] == steps == len(base.actions) and reward == steps and obs["state"][0] == steps
    assert terminated == (steps == terminate_at) and info["skill"] == 1
    np.testing.assert_array_equal(np.stack(base.actions), np.stack([np.arange(steps), np.ones(steps)], -1))


def _extract_run(run, data_dir, steps):
    return [sys.executable, str(ROOT / "train.py"), "agent=extract", "suite=maze", f"hydra.run.dir={run}",
            f"data_dir={data_dir}", f"num_train_steps={steps}", "update_after_steps=20", "batch_size=32",
            "agent.hidden_dim=32", "log_every_steps=10", "save_every_steps=20", f"eval_every_steps={steps}",
            "eval.num_episodes=2", "eval.video=off", DEVICE]


def test_extract_run_killed_and_resumed(tmp_path):
    """A maze run on a small exported EXTRACT skill model, killed after its first checkpoint and run
    again: it resumes there with its frame count and ends with the weights exported; evaluate.py
    rebuilds the agent from its file."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    cfg = compose_cfg("agent=extract", "suite=maze", f"data_dir={data_dir}", "collect_missing_demos=false")
    with pytest.raises(ConfigError, match=r"No extract_skill weights at .*extract_skill/maze/play-features-seed1\.pt"
                                          r"\. Make them with:\n  python train\.py agent=extract_skill suite=maze"):
        stage_file(cfg, "extract_skill")
    skill_cfg = compose_cfg("agent=extract_skill", "suite=maze", f"data_dir={data_dir}", "agent.hidden_dim=32",
                            "agent.hidden_depth=2", "agent.num_skills=3")
    atomic_torch_save({"agent": {"model": _model_state()}, "agent_name": "extract_skill",
                       "config": OmegaConf.to_container(skill_cfg, resolve=True)},
                      data_dir / "weights" / "extract_skill" / "maze" / "play-features-seed1.pt")
    killed_at = kill_after_first_checkpoint(_extract_run(run, data_dir, 120), run)
    latest = run / "checkpoints" / "latest.pt"
    assert 20 <= killed_at < 120
    p = run_script("train.py", *_extract_run(run, data_dir, 120)[2:])
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"at step {killed_at}" in p.stderr + p.stdout
    ckpt = load_checkpoint(latest)
    assert ckpt["step"] == 120
    frames = [r["frames"] for r in read_metrics(run / "train.csv") if "frames" in r]
    assert frames[-1] == ckpt["frames"] and 120 < ckpt["frames"] <= 120 * 30  # env steps: up to 30 per skill
    assert ckpt["agent"]["extract_model"]["num_skills"] == K
    weights = exported_weights(p)
    assert weights.parent == data_dir / "weights" / "extract" / "maze"
    p = run_script("evaluate.py", f"policy={weights}", "eval.num_episodes=2", f"hydra.run.dir={tmp_path / 'ev'}",
                   DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["umaze/length"] < 300  # skills, not env steps


@pytest.mark.slow
def test_extract_end_to_end_makes_the_skill_model_first(tmp_path):
    """``train.py agent=extract suite=maze`` with nothing on disk: play data, skill discovery and the
    skill model are made first (tiny), then the hybrid skill-space SAC runs and exports."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    stage = ('stage_overrides.extract_skill=["agent.hidden_dim=32","eval.num_episodes=1","eval.video=off",'
             '"eval_every_steps=20","num_train_steps=20","play.num_episodes=20","heldout_windows=32"]')
    p = run_script("train.py", "agent=extract", "suite=maze", f"hydra.run.dir={run}", f"data_dir={data_dir}", stage,
                   "num_train_steps=40", "update_after_steps=20", "batch_size=32", "agent.hidden_dim=32",
                   "log_every_steps=10", "save_every_steps=20", "eval_every_steps=40", "eval.num_episodes=2",
                   "eval.video=off", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stderr + p.stdout
    assert "extract_skill weights missing at" in out and "discovering skills first" in out
    model = data_dir / "weights" / "extract_skill" / "maze" / "play-features-seed1.pt"
    assert f"extract_skill (frozen) from {model}" in out
    assert (run / "stages" / "extract_skill" / "results.json").exists()
    assert exported_weights(p).parent == data_dir / "weights" / "extract" / "maze"
