"""Policy Decorator (residual SAC on a frozen base): the residual bound, progressive exploration,
frozen base weights, base actions stored at collection time, the generic policy loader, and a tiny
BC -> residual run with resume."""

import json
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from polytask.agents.bc import BCAgent
from polytask.agents.frozen import fingerprint
from polytask.agents.residual import FrozenPolicyChangedError, ResidualAgent
from polytask.data.replay import ReplayBuffer
from polytask.errors import ConfigError
from polytask.suites import make_env
from polytask.training.checkpoint import load_checkpoint
from polytask.training.logger import read_metrics
from polytask.training.online import OnlineTrainer
from polytask.training.replay_store import ReplayStore
from polytask.training.run import training_wrappers
from polytask.training.weights import find_weights, load_policy
from tests.conftest import DEVICE, compose_cfg, exported_weights, run_script

SHAPES = {"state": (39,)}


def _base(seed=0):
    torch.manual_seed(seed)
    return BCAgent(SHAPES, 4, "features", hidden_dim=32, hidden_depth=1)


def _agent(base=None, **kw):
    return ResidualAgent(SHAPES, 4, "features", base_policy=base or _base(), hidden_dim=32, **kw)


class RecordingBase:
    """A stateless stand-in base policy that records the extra keys it is called with."""

    def __init__(self, action=0.5):
        self.action, self.calls = action, []

    def act(self, obs, eval_mode=True, step=0):
        self.calls.append({k: np.array(obs[k]) for k in ("env_index", "is_first") if k in obs})
        return np.full((len(obs["state"]), 4), self.action, np.float32)

    def train(self, training=True):
        pass


class TinyEnv(gym.Env):
    """Random 39-d states, episodes of 5 steps, success from the third step on."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (39,), np.float32)})
    action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return {"state": self.np_random.standard_normal(39).astype(np.float32)}, {}

    def step(self, action):
        self.t += 1
        obs = {"state": self.np_random.standard_normal(39).astype(np.float32)}
        return obs, 10.0, False, self.t == 5, {"success": float(self.t >= 3)}


@pytest.mark.parametrize("res_scale", [0.05, 0.3])
def test_residual_is_bounded_by_res_scale(res_scale):
    agent = _agent(res_scale=res_scale, prog_explore=0, zero_init=False)
    rng = np.random.default_rng(0)
    for eval_mode, step in [(True, 0), (False, 0), (False, 10**6)]:
        base = np.clip(rng.uniform(-1.3, 1.3, (512, 4)), -1, 1).astype(np.float32)  # many on the bounds
        obs = {"state": (5 * rng.standard_normal((512, 39))).astype(np.float32), "base_action": base}
        a = agent.act(obs, eval_mode=eval_mode, step=step)
        assert a.shape == (512, 4) and np.all(np.abs(a) <= 1)
        assert np.all(np.abs(a - base) <= res_scale + 1e-6)
        assert np.abs(a - base).max() > 0.5 * res_scale  # the residual is used
    squashed = torch.rand(512, 4) * 2 - 1
    composed = agent.execute({"base_action": torch.zeros(512, 4)}, squashed)
    torch.testing.assert_close(composed, res_scale * squashed)  # a = a_base + α·tanh(u) inside the bounds


def test_eval_uses_base_plus_scaled_mean_residual():
    base = _base()
    agent = _agent(base, res_scale=0.2, zero_init=False)
    obs = {"state": np.random.randn(6, 39).astype(np.float32)}
    expected = np.clip(base.act(obs) + 0.2 * agent.actor.mean(torch.from_numpy(obs["state"])).detach().numpy(), -1, 1)
    np.testing.assert_allclose(agent.act(obs, eval_mode=True), expected, atol=1e-6)
    np.testing.assert_allclose(agent.observe(obs)["base_action"], base.act(obs))


def test_untrained_decorated_policy_acts_as_its_base():
    base = _base()
    agent = _agent(base, res_scale=0.3)  # zero_init: the mean residual starts at 0
    obs = {"state": np.random.randn(6, 39).astype(np.float32)}
    np.testing.assert_allclose(agent.act(obs, eval_mode=True), np.clip(base.act(obs), -1, 1), atol=1e-6)
    explored = agent.act(obs, eval_mode=False, step=10**6)  # exploration still samples residuals
    assert np.abs(explored - base.act(obs)).max() > 1e-3


def test_actor_sees_the_base_action_with_obs_base_action():
    """actor_input=obs_base_action: the residual depends on the base action given with the state,
    stays within res_scale, and updates run on replay batches."""
    agent = _agent(RecordingBase(), res_scale=0.2, zero_init=False, actor_input="obs_base_action")
    assert agent.actor.policy[0].in_features == 39 + 4
    state = np.random.default_rng(0).standard_normal((8, 39)).astype(np.float32)
    acts = [agent.act({"state": state, "base_action": np.full((8, 4), b, np.float32)}) - b for b in (-0.3, 0.3)]
    assert np.abs(acts[0] - acts[1]).max() > 1e-4  # same states, other base action: other residual
    assert all(np.abs(r).max() <= 0.2 + 1e-6 for r in acts)
    metrics = agent.update(_replay_batch())
    assert np.isfinite(metrics["critic_loss"]) and np.isfinite(metrics["actor_loss"])
    with pytest.raises(ValueError, match="actor_input must be one of"):
        _agent(actor_input="base")


@pytest.mark.parametrize("step", [0, 250, 600, 1000, 5000])
def test_progressive_exploration_probability(step):
    torch.manual_seed(step)
    agent = _agent(RecordingBase(0.0), prog_explore=1000)
    n = 4000
    obs = {"state": np.random.default_rng(step).standard_normal((n, 39)).astype(np.float32),
           "base_action": np.zeros((n, 4), np.float32)}
    a = agent.act(obs, eval_mode=False, step=step)
    on = np.any(a != 0.0, axis=1).mean()  # off rows execute exactly the base action
    p = min(step / 1000, 1.0)
    assert agent.residual_probability(step) == p
    assert abs(on - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9, (on, p)  # 4 standard errors


def _replay_batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": {"state": torch.randn(n, 39, generator=g), "base_action": torch.rand(n, 4, generator=g) * 2 - 1},
            "next_obs": {"state": torch.randn(n, 39, generator=g),
                         "base_action": torch.rand(n, 4, generator=g) * 2 - 1},
            "action": torch.rand(n, 4, generator=g) * 2 - 1, "reward": torch.rand(n, generator=g),
            "discount": torch.full((n,), 0.99)}


def test_base_weights_frozen_through_updates():
    base = _base()
    before = {k: v.clone() for k, v in base.actor.state_dict().items()}
    agent = _agent(base, res_scale=0.1)
    assert all(not p.requires_grad for p in base.actor.parameters()) and not base.actor.training
    trained = {id(p) for opt in (agent.actor_opt, agent.critic_opt, agent.alpha_opt)
               for g in opt.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in base.actor.parameters()}
    losses = [agent.update(_replay_batch())["critic_loss"] for _ in range(30)]
    agent.train(False), agent.train(True)
    assert losses[-1] < losses[0] and not base.actor.training
    for k, v in base.actor.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    agent.check_frozen()
    assert "actor.policy.0.weight" not in str(agent.state_dict().keys())  # no base weights in the state
    with torch.no_grad():
        base.actor.policy[0].weight[0, 0] += 1e-3
    with pytest.raises(FrozenPolicyChangedError, match="CHANGED"):
        agent.check_frozen()
    fresh = _agent(_base(seed=1))
    with pytest.raises(FrozenPolicyChangedError, match="other weights"):
        fresh.load_state_dict(_agent(_base(seed=2)).state_dict())


def test_trainer_stores_base_actions_and_passes_episode_flags(tmp_path):
    """Base actions are computed when observations arrive, stored in the replay buffer, and match the
    base policy on sampled next observations; the base sees is_first at each episode's first step."""
    cfg = compose_cfg("agent=residual", "base_policy=unused.pt", "prog_explore=0", "update_after_steps=8",
                      "batch_size=16", "update_every_steps=1", DEVICE, "success_terminates=false",
                      "sparse_reward_offset=0")
    base = _base()
    calls = []
    record = base.act

    def recording_act(obs, eval_mode=True, step=0):
        calls.append((int(obs["env_index"][0]), bool(obs["is_first"][0])))
        return record(obs, eval_mode, step)

    base.act = recording_act
    agent = _agent(base, res_scale=0.2)
    env = training_wrappers(cfg, TinyEnv())  # as make_train_env wraps the suite's env
    replay = ReplayBuffer(100, {"state": (39,), **agent.extra_obs_shapes}, 4, nstep=3, seed=0)
    trainer = OnlineTrainer(cfg, tmp_path, agent, None, env, replay)
    for _ in range(12):
        metrics = trainer.train_step()
        trainer.step += 1  # as Trainer._loop does
    assert "critic_loss" in metrics
    # 12 steps = 2 episodes of 5 + 2 steps: observations 6 + 6 + 3, one base call each
    assert [f for _, f in calls] == [True] + [False] * 5 + [True] + [False] * 5 + [True, False, False]
    assert {i for i, _ in calls} == {0}
    batch = replay.sample(64)
    for key in ("obs", "next_obs"):
        np.testing.assert_allclose(batch[key]["base_action"].numpy(),
                                   record({"state": batch[key]["state"].numpy()}), atol=1e-6)
    # prog_explore=0: the residual is always on; executed actions stay within res_scale of the base
    rows = np.arange(replay.count)[replay.has_action[: replay.count]]
    assert np.all(np.abs(replay.action[rows] - replay.obs["base_action"][rows]) <= 0.2 + 1e-6)
    # sparse_reward (the residual config's default): rewards are the success indicator, not the env's 10
    np.testing.assert_array_equal(np.unique(replay.reward[rows]), [0.0, 1.0])


def test_residual_defaults_end_episodes_at_success_with_negative_sparse_reward(tmp_path):
    """The residual config's reward, as in Policy Decorator: -1 per step until success, 0 at the
    success step, which ends the episode as terminated (so it is not bootstrapped)."""
    cfg = compose_cfg("agent=residual", "base_policy=unused.pt", "update_after_steps=100", DEVICE)
    agent = _agent(_base(), res_scale=0.2)
    replay = ReplayBuffer(100, {"state": (39,), **agent.extra_obs_shapes}, 4, nstep=1, seed=0)
    trainer = OnlineTrainer(cfg, tmp_path, agent, None, training_wrappers(cfg, TinyEnv()), replay)
    lengths = []
    for _ in range(9):  # TinyEnv succeeds from its third step on: 3 episodes of 3 steps
        metrics = trainer.train_step()
        trainer.step += 1
        if "episode_length" in metrics:
            lengths.append(metrics["episode_length"])
            assert metrics["episode_success"] == 1.0 and metrics["episode_reward"] == -2.0
    assert lengths == [3.0, 3.0, 3.0]
    rows = np.arange(replay.count)[replay.has_action[: replay.count]]
    np.testing.assert_array_equal(replay.reward[rows], [-1.0, -1.0, 0.0] * 3)
    np.testing.assert_array_equal(replay.terminated[rows], [False, False, True] * 3)
    assert not replay.truncated[rows].any()


def test_load_policy_errors_and_fit(tmp_path):
    with pytest.raises(ConfigError, match="No policy weights.*\n.*python train.py agent=bc"):
        load_policy(tmp_path / "missing.pt", TinyEnv())
    bc = _base()
    path = tmp_path / "bc.pt"
    cfg = compose_cfg("agent=bc", "agent.hidden_dim=32", "agent.hidden_depth=1")
    torch.save({"agent": bc.state_dict(), "agent_name": "bc", "config": OmegaConf.to_container(cfg, resolve=True)},
               path)
    loaded = load_policy(path, TinyEnv())
    obs = {"state": np.random.randn(4, 39).astype(np.float32)}
    np.testing.assert_array_equal(loaded.act(obs), bc.act(obs))
    assert fingerprint(loaded) == fingerprint(bc) and not any(p.requires_grad for p in loaded.actor.parameters())

    class WideEnv(TinyEnv):
        action_space = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)

    with pytest.raises(ConfigError, match="does not fit this env"):
        load_policy(path, WideEnv())


def test_residual_run_from_bc_with_resume(data_dir, tmp_path):
    common = [f"data_dir={data_dir}", "suite/metaworld_task=drawer-close", "num_demos_per_task=3", "seed=7",
              "eval.num_episodes=2", "eval.video=off", DEVICE]
    bc_weights = data_dir / "weights" / "bc" / "metaworld" / "drawer-close-features-d3-seed7.pt"
    res = [f"hydra.run.dir={tmp_path / 'res'}", "agent=residual", "agent.hidden_dim=64", "prog_explore=200",
           "res_scale=0.2", "update_after_steps=100", "log_every_steps=50", "save_every_steps=100",
           "replay_capacity=3000", "batch_size=32", *common]
    cfg = compose_cfg(*res[1:])
    with pytest.raises(ConfigError, match="add base_policy=(.|\n)*python train.py agent=bc"):
        OnlineTrainer.from_config(cfg, tmp_path / "x")
    missing = f"No policy weights at {re.escape(str(bc_weights))}(.|\n)*python train.py agent=bc"
    with pytest.raises(ConfigError, match=missing):
        OnlineTrainer.from_config(compose_cfg(*res[1:], f"base_policy={bc_weights}"), tmp_path / "x")
    bc = run_script("train.py", f"hydra.run.dir={tmp_path / 'bc'}", "agent=bc", "agent.hidden_dim=64",
                    "num_train_steps=50", *common)
    assert bc.returncode == 0, bc.stderr[-2000:]
    # named after its settings: found as the one BC run of this task, demo count and seed
    assert find_weights(bc_weights) == exported_weights(bc)
    bc_weights = exported_weights(bc)
    res.append(f"base_policy={bc_weights}")
    p = run_script("train.py", *res, "num_train_steps=300", "eval_every_steps=300")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Loaded a frozen bc policy" in p.stdout + p.stderr and "weights unchanged" in p.stdout + p.stderr
    ckpt = load_checkpoint(tmp_path / "res" / "checkpoints" / "latest.pt")
    replay = ReplayBuffer(3000, {"state": (39,), "base_action": (4,)}, 4)
    ReplayStore(tmp_path / "res" / "checkpoints" / "replay").load(replay, ckpt["replay"])
    stored = replay.slot_arrays(0, replay.count)
    assert ckpt["replay"]["count"] == 302 and stored["obs.base_action"].shape == (302, 4)
    assert "base_fingerprint" in ckpt["agent"] and "encoder" not in ckpt["agent"]  # no base weights stored
    # the stored base actions are the base policy's on every stored observation
    base = BCAgent(SHAPES, 4, "features", hidden_dim=64)
    base.load_state_dict(load_checkpoint(bc_weights)["agent"])
    np.testing.assert_allclose(stored["obs.base_action"], base.act({"state": stored["obs.state"]}), atol=1e-5)
    acts = stored["action"][stored["has_action"]]
    assert np.all(np.abs(acts - stored["obs.base_action"][stored["has_action"]]) <= 0.2 + 1e-5)
    p = run_script("train.py", *res, "num_train_steps=400", "eval_every_steps=400")
    assert p.returncode == 0 and "at step 300" in p.stdout + p.stderr, p.stderr[-3000:]
    assert json.loads((tmp_path / "res" / "results.json").read_text())["step"] == 400
    # eval.at_start (the residual config's default): the base is scored at step 0, once (not on resume)
    assert [r["step"] for r in read_metrics(tmp_path / "res" / "eval.csv")] == [0, 300, 400]
    # the exported residual policy loads generically (its base from the file it names)
    exported = exported_weights(p)
    assert exported.name.startswith(f"drawer-close-features-seed7-on-bc-{bc_weights.stem}-")
    env = make_env(compose_cfg("suite/metaworld_task=drawer-close").suite, "drawer-close", obs_type="features")
    policy = load_policy(exported, env)
    obs = {"state": stored["obs.state"][:5]}
    a = policy.act(obs, eval_mode=True)
    assert np.all(np.abs(a - base.act(obs)) <= 0.2 + 1e-5)
    env.close()


def test_residual_runs_and_weights_are_named_after_their_base():
    """Residuals on different bases get different run directories and weights files; a BC path
    asked for by name (agent="bc") is not tagged."""
    from polytask.config import base_tag
    from polytask.training.weights import weights_path

    assert base_tag(None) == "" and base_tag("") == ""
    assert base_tag("data/weights/bet/metaworld/hammer-features-d10-seed1.pt") == "-on-bet-hammer-features-d10-seed1"
    assert base_tag("base.pt") == "-on-base"
    paths = {weights_path(compose_cfg("agent=residual", "suite/metaworld_task=hammer",
                                      f"base_policy=data/weights/{a}/metaworld/hammer-features-d10-seed1.pt"))
             for a in ("bet", "diffusion")}
    assert {p.name for p in paths} == {"hammer-features-seed1-on-bet-hammer-features-d10-seed1.pt",
                                       "hammer-features-seed1-on-diffusion-hammer-features-d10-seed1.pt"}
    cfg = compose_cfg("agent=residual", "suite/metaworld_task=hammer", "base_policy=x/y/z.pt")
    assert weights_path(cfg, agent="bc").name == "hammer-features-d10-seed1.pt"
