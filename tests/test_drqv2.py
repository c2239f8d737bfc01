"""DrQ-v2: critic learning on a fixed batch, BC regularisation, and a tiny online run with resume."""

import json

import numpy as np
import pytest
import torch

from polytask.agents.bc import BCAgent
from polytask.agents.drqv2 import DrQV2Agent
from polytask.agents.qlearning import td_target
from polytask.agents.rot import ROTAgent
from polytask.data.replay import ReplayBuffer
from polytask.errors import ConfigError
from polytask.training.checkpoint import load_checkpoint
from polytask.utils import schedule
from tests.conftest import online_run_args, run_script


def _batch(obs_type, n=64):
    g = torch.Generator().manual_seed(0)
    key, shape = ("pixels", (9, 84, 84)) if obs_type == "pixels" else ("state", (39,))
    make = (lambda: torch.randint(0, 255, (n, *shape), generator=g, dtype=torch.uint8)) if key == "pixels" else \
        (lambda: torch.randn(n, *shape, generator=g))
    return {"obs": {key: make()}, "next_obs": {key: make()}, "action": torch.rand(n, 4, generator=g) * 2 - 1,
            "reward": torch.rand(n, generator=g), "discount": torch.full((n,), 0.99 ** 3)}


@pytest.mark.parametrize("obs_type,layer_norm,state_trunk", [("features", False, False), ("features", True, False),
                                                             ("features", False, True), ("pixels", False, False)])
def test_update_reduces_critic_loss_on_fixed_batch(obs_type, layer_norm, state_trunk):
    torch.manual_seed(0)
    small = dict(hidden_dim=64, feature_dim=32, hidden_depth=1)
    agent = DrQV2Agent({"state": (39,), "pixels": (9, 84, 84)}, 4, obs_type, stddev_schedule=0.2,
                       lr=1e-3, critic_layer_norm=layer_norm, state_trunk=state_trunk, **small)
    assert any(isinstance(m, torch.nn.LayerNorm) for m in agent.critic.q1) == layer_norm
    has_trunk = obs_type == "pixels" or state_trunk
    for net in (agent.actor, agent.critic):
        assert any(isinstance(m, torch.nn.LayerNorm) for m in net.trunk.modules()) == has_trunk
    batch = _batch(obs_type)
    losses = [agent.update(batch, step=0)["critic_loss"] for _ in range(40 if obs_type == "features" else 15)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_twin_q_mean_target_lies_between_the_min_and_max_of_the_twin_targets():
    torch.manual_seed(0)
    small = dict(hidden_dim=32, feature_dim=16, hidden_depth=1)
    agents = {how: DrQV2Agent({"state": (39,)}, 4, "features", stddev_schedule=0.2, lr=1e-3, twin_q=how, **small)
              for how in ("min", "mean")}
    agents["mean"].load_state_dict(agents["min"].state_dict())
    batch = _batch("features")
    h_next, action = batch["next_obs"]["state"], torch.rand(64, 4) * 2 - 1
    reward, discount = batch["reward"].unsqueeze(-1), batch["discount"].unsqueeze(-1)
    q1, q2 = agents["min"].critic_target(h_next, action)
    targets = {how: td_target(agents[how].critic_target, h_next, action, reward, discount, twin_q=agents[how].twin_q)
               for how in agents}
    assert torch.allclose(targets["min"], reward + discount * torch.min(q1, q2))
    assert torch.allclose(targets["mean"], reward + discount * (q1 + q2) / 2)
    assert (targets["mean"] >= targets["min"]).all() and (targets["mean"] > targets["min"]).any()
    assert (targets["mean"] <= reward + discount * torch.max(q1, q2)).all()
    losses = [agents["mean"].update(batch, step=0)["critic_loss"] for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0], losses
    with pytest.raises(ValueError, match="twin_q must be"):
        DrQV2Agent({"state": (39,)}, 4, "features", twin_q="max", **small)


def test_state_trunk_bc_weights_load_only_into_a_matching_actor():
    small = dict(hidden_dim=32, feature_dim=16, hidden_depth=1)
    bc = BCAgent({"state": (39,)}, 4, "features", state_trunk=True, **small)
    obs = torch.randn(8, 39)
    with_trunk = ROTAgent({"state": (39,)}, 4, "features", state_trunk=True, load_bc=True, bc_state=bc.state_dict(),
                          **small)
    assert torch.allclose(with_trunk.actor(obs), bc.actor(obs))
    with pytest.raises(ValueError, match="do not fit"):
        ROTAgent({"state": (39,)}, 4, "features", state_trunk=False, load_bc=True, bc_state=bc.state_dict(), **small)


def test_reward_encoder_is_frozen_until_refreshed():
    torch.manual_seed(0)
    agent = ROTAgent({"pixels": (9, 84, 84)}, 4, "pixels", hidden_dim=32, feature_dim=16, hidden_depth=1,
                     stddev_schedule=0.2, lr=1e-3)
    batch = _batch("pixels", n=16)
    frames = batch["obs"]["pixels"][:4].numpy()
    before = agent.reward_features(frames)
    assert before.shape == (4, 16)
    for _ in range(3):
        agent.update(batch, step=0)
    torch.testing.assert_close(agent.reward_features(frames), before)  # training does not move it
    agent.refresh_reward_encoder()
    after = agent.reward_features(frames)
    with torch.no_grad():
        online = agent.critic.trunk(agent.encoder(torch.as_tensor(frames)))
    torch.testing.assert_close(after, online)
    assert not torch.allclose(after, before)
    restored = ROTAgent({"pixels": (9, 84, 84)}, 4, "pixels", hidden_dim=32, feature_dim=16, hidden_depth=1)
    restored.load_state_dict(agent.state_dict())
    torch.testing.assert_close(restored.reward_features(frames), after)


def test_act_exploration_modes():
    agent = DrQV2Agent({"state": (39,)}, 4, "features", hidden_dim=32, num_expl_steps=10, stddev_schedule=0.5)
    obs = {"state": np.random.randn(256, 39).astype(np.float32)}
    mean = agent.act(obs, eval_mode=True)
    uniform = agent.act(obs, eval_mode=False, step=0)
    noisy = agent.act(obs, eval_mode=False, step=100)
    assert mean.shape == (256, 4) and np.all(np.abs(uniform) <= 1) and np.all(np.abs(noisy) < 1)
    assert np.abs(uniform - mean).mean() > np.abs(noisy - mean).mean() > 0.2  # σ=0.5 noise is smaller


def test_schedule():
    assert schedule("linear(1.0,0.1,100)", 0) == 1.0
    assert schedule("linear(1.0,0.1,100)", 50) == pytest.approx(0.55)
    assert schedule("linear(1.0,0.1,100)", 1000) == pytest.approx(0.1)
    assert schedule(0.3, 5) == 0.3
    with pytest.raises(ValueError, match="linear"):
        schedule("cosine(1,2)", 0)


class _Demos:
    """A stand-in :class:`DemoBuffer`: always the same demo batch."""

    def __init__(self, batch):
        self.batch = batch

    def sample(self, n):
        return {k: v[:n] for k, v in self.batch.items()}

    def state_dict(self):
        return {}


def test_bc_regularisation_pulls_actor_to_demos():
    torch.manual_seed(0)
    shapes = {"state": (39,)}
    bc = BCAgent(shapes, 4, "features", hidden_dim=64, hidden_depth=1)
    demos = _Demos({"state": torch.randn(256, 39), "action": torch.full((256, 4), 0.5)})
    agent = ROTAgent(shapes, 4, "features", hidden_dim=64, hidden_depth=1, lr=1e-3, bc_regularize=True,
                     bc_weight_type="schedule", bc_weight_schedule=1.0, load_bc=True, bc_state=bc.state_dict(),
                     demos=demos)
    obs = {"state": np.random.randn(8, 39).astype(np.float32)}
    np.testing.assert_allclose(agent.act(obs), bc.act(obs), atol=1e-6)  # starts from the BC weights
    for _ in range(100):
        m = agent.update(_batch("features"), step=0)
    assert m["bc_weight"] == 1.0
    assert np.abs(agent.act({"state": demos.batch["state"][:64].numpy()}) - 0.5).mean() < 0.1
    with pytest.raises(ValueError, match="load_bc"):  # the soft Q-filter needs the BC policy
        ROTAgent(shapes, 4, "features", hidden_dim=64, hidden_depth=1, bc_regularize=True, demos=demos)
    q = ROTAgent(shapes, 4, "features", hidden_dim=64, hidden_depth=1, bc_regularize=True, load_bc=True,
                 bc_state=bc.state_dict(), demos=demos)
    assert 0.0 <= q.update(_batch("features"))["bc_weight"] <= 1.0
    with pytest.raises(ValueError, match="do not fit"):
        ROTAgent(shapes, 4, "features", hidden_dim=32, load_bc=True, bc_state=bc.state_dict())
    assert ROTAgent.inputs({"irl": True, "bc_regularize": True, "load_bc": True}) == \
        ("demo_episodes", "demos", "bc_state")
    assert ROTAgent.inputs({"irl": False}) == ()


def test_online_run_end_to_end_with_resume(tmp_path):
    run = tmp_path / "run"
    common = online_run_args(run, tmp_path, "drqv2", "drawer-close")
    p = run_script("train.py", *common, "num_train_steps=300", "eval_every_steps=300")
    assert p.returncode == 0, p.stderr[-3000:]
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 300 and ckpt["replay"]["count"] == 302  # 300 steps + 2 reset observations
    assert ckpt["episode"] == 1
    # continue the same run to 400 steps: it resumes with its replay data
    p = run_script("train.py", *common, "num_train_steps=400", "eval_every_steps=400")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Resumed" in p.stderr + p.stdout and "at step 300" in p.stderr + p.stdout
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 400 and ckpt["replay"]["count"] == 403  # a new episode started on resume
    results = json.loads((run / "results.json").read_text())
    assert results["step"] == 400 and 0.0 <= results["success"] <= 1.0


def test_replay_buffer_feeds_agent():
    buf = ReplayBuffer(1000, {"state": (39,)}, 4, nstep=3)
    buf.add_first({"state": np.zeros(39, np.float32)})
    for t in range(20):
        buf.add(np.zeros(4, np.float32), 1.0, {"state": np.full(39, t, np.float32)}, False, t == 19)
    agent = DrQV2Agent({"state": (39,)}, 4, "features", hidden_dim=32)
    m = agent.update(buf.sample(16), step=0)
    assert np.isfinite(m["critic_loss"]) and np.isfinite(m["actor_loss"])


@pytest.mark.parametrize("updates_per_step", [1, 3])
def test_updates_per_step_sets_the_update_to_data_ratio(tmp_path, updates_per_step):
    from polytask.training.build import build_trainer
    from tests.conftest import compose_cfg

    args = [a for a in online_run_args(tmp_path / "run", tmp_path, "drqv2", "drawer-close")
            if not a.startswith("hydra.")]
    cfg = compose_cfg(*args, "num_train_steps=160", "update_every_steps=2", f"updates_per_step={updates_per_step}",
                      "eval_every_steps=1000", "eval.num_episodes=1", "save_every_steps=1000")
    trainer = build_trainer(cfg, run_dir=tmp_path / "run")
    steps = []
    update = trainer.agent.update
    trainer.agent.update = lambda batch, step: steps.append(step) or update(batch, step)
    trainer.run()
    # updates start at update_after_steps=100 and come every 2nd step, updates_per_step at a time
    assert len(steps) == 30 * updates_per_step and min(steps) >= 100
    assert all(steps.count(s) == updates_per_step for s in set(steps)) and all(s % 2 == 0 for s in steps)


def test_reset_networks_reinitialises_actor_and_critic_only():
    torch.manual_seed(0)
    agent = ROTAgent({"pixels": (9, 84, 84)}, 4, "pixels", hidden_dim=32, feature_dim=16, hidden_depth=1,
                     stddev_schedule=0.2, lr=1e-3, critic_layer_norm=True)  # ROT: its reward encoder is kept
    for _ in range(3):
        agent.update(_batch("pixels", n=8), step=0)
    trained = {k: {n: p.clone() for n, p in getattr(agent, k).state_dict().items()}
               for k in ("encoder", "actor", "critic", "reward_encoder")}
    agent.reset_networks()
    changed = {k: any(not torch.equal(v, getattr(agent, k).state_dict()[n]) for n, v in trained[k].items())
               for k in trained}
    assert changed == {"encoder": False, "actor": True, "critic": True, "reward_encoder": False}
    assert all(torch.equal(a, b) for a, b in zip(agent.critic.state_dict().values(),
                                                   agent.critic_target.state_dict().values()))
    assert not agent.actor_opt.state and not agent.critic_opt.state  # Adam moments restarted
    fresh_ln = [m for m in agent.critic.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert fresh_ln and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in fresh_ln)
    assert np.isfinite(agent.update(_batch("pixels", n=8), step=0)["critic_loss"])


def test_trainer_resets_every_reset_every_steps(tmp_path):
    from polytask.training.build import build_trainer
    from tests.conftest import compose_cfg

    args = [a for a in online_run_args(tmp_path / "run", tmp_path, "drqv2", "drawer-close")
            if not a.startswith("hydra.")]
    cfg = compose_cfg(*args, "num_train_steps=250", "reset_every_steps=100", "eval_every_steps=1000",
                      "eval.num_episodes=1", "save_every_steps=1000")
    trainer = build_trainer(cfg, run_dir=tmp_path / "run")
    resets = []
    trainer.agent.reset_networks = lambda: resets.append(trainer.step)
    trainer.run()
    assert resets == [100, 200]
    with pytest.raises(ConfigError, match="reset_every_steps=-1"):
        build_trainer(compose_cfg(*args, "reset_every_steps=-1"), run_dir=tmp_path / "bad")
