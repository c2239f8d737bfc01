"""BeT: k-means action bins, the causal transformer, the loss, stateful acting, saving, and a tiny
end-to-end train.py run whose exported weights load back."""

import json

import numpy as np
import pytest
import torch

from polytask.agents.bet import BeTAgent, fit_action_bins, focal_loss
from polytask.data.buffer import DemoBuffer
from polytask.data.demos import load_episodes
from polytask.nets.gpt import CausalTransformer
from polytask.training.demos import demo_path
from tests.conftest import DEVICE, compose_cfg, exported_weights, run_script, trained_and_restored

pytest.importorskip("sklearn")

SMALL = dict(n_layer=2, n_head=2, n_embd=32, n_bins=8, window=5)


@pytest.fixture(scope="module")
def demo_buffer(data_dir):
    eps = load_episodes(demo_path(compose_cfg(f"data_dir={data_dir}"), "drawer-close"))
    return DemoBuffer({0: eps}, ("state",), seed=0)


def test_bins_cover_the_data(demo_buffer):
    actions = demo_buffer.action
    centers = fit_action_bins(actions, 16, seed=0)
    assert centers.shape == (16, 4) and centers.dtype == np.float32
    dist = np.linalg.norm(actions[:, None] - centers[None], axis=-1)
    nearest = dist.argmin(1)
    assert len(np.unique(nearest)) == 16  # every bin is used
    assert np.quantile(dist.min(1), 0.95) < 0.5, np.quantile(dist.min(1), 0.95)
    np.testing.assert_array_equal(centers, fit_action_bins(actions, 16, seed=0))  # seeded
    # well-separated modes each get their own center
    rng = np.random.default_rng(0)
    modes = rng.uniform(-0.8, 0.8, (6, 2))
    data = (modes[rng.integers(0, 6, 600)] + 0.01 * rng.standard_normal((600, 2))).astype(np.float32)
    c = fit_action_bins(data, 6, seed=1)
    assert np.linalg.norm(modes[:, None] - c[None], axis=-1).min(1).max() < 0.05
    with pytest.raises(ValueError, match="n_bins"):
        fit_action_bins(np.zeros((50, 2), np.float32), 4)


def test_transformer_is_causal():
    torch.manual_seed(0)
    net = CausalTransformer(3, 5, max_len=6, n_layer=2, n_head=2, n_embd=16, dropout=0.0).eval()
    x = torch.randn(2, 6, 3)
    y = x.clone()
    y[:, 4:] += 1.0
    out_x, out_y = net(x), net(y)
    assert out_x.shape == (2, 6, 5)
    torch.testing.assert_close(out_x[:, :4], out_y[:, :4])
    assert not torch.allclose(out_x[:, 4:], out_y[:, 4:])


def test_focal_loss_down_weights_easy_examples():
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([0, 0])
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    fl = torch.stack([focal_loss(logits[i:i + 1], target[i:i + 1], 2.0) for i in range(2)])
    assert torch.allclose(focal_loss(logits, target, 0.0), ce.mean())
    assert fl[0] / ce[0] < 0.01 and fl[1] / ce[1] == pytest.approx(0.25)


def test_bet_loss_falls(demo_buffer):
    torch.manual_seed(0)
    agent = BeTAgent({"state": (39,)}, 4, "features", lr=1e-3, dropout=0.0, **SMALL)
    agent.fit_dataset(demo_buffer.obs["state"], demo_buffer.action)
    probe = demo_buffer.get_windows(np.arange(0, len(demo_buffer), 3), *agent.window)
    with torch.no_grad():
        before = agent.losses(probe)[0].item()
    for _ in range(150):
        metrics = agent.update(demo_buffer.sample_windows(32, *agent.window))
    with torch.no_grad():
        after, parts = agent.losses(probe)
    assert after.item() < 0.5 * before, (before, after.item())
    assert parts["bin_acc"] > 0.5 and np.isfinite(metrics["loss"])


def test_act_is_stateful_per_env_and_round_trips(demo_buffer):
    torch.manual_seed(0)
    a, b = trained_and_restored(lambda: BeTAgent({"state": (39,)}, 4, "features", **SMALL), demo_buffer, 3, 16)
    torch.testing.assert_close(a.model.centers, b.model.centers)
    a.train(False), b.train(False)
    states = demo_buffer.obs["state"]
    for t in range(3):
        obs = {"state": states[[t, 100 + t]], "env_index": np.array([0, 1]), "is_first": np.full(2, t == 0)}
        torch.manual_seed(t)
        act_a = a.act(obs)
        torch.manual_seed(t)
        np.testing.assert_array_equal(act_a, b.act(obs))
        assert act_a.shape == (2, 4) and act_a.dtype == np.float32 and np.abs(act_a).max() <= 1
    hist = a.memory.observe(states[[3]], np.array([1]), np.array([False]))
    np.testing.assert_array_equal(hist[0], states[[100, 100, 101, 102, 3]])  # first obs repeated before the start
    hist = a.memory.observe(states[[50]], np.array([1]), np.array([True]))
    np.testing.assert_array_equal(hist[0], states[[50] * 5])  # is_first clears the env's history
    greedy = BeTAgent({"state": (39,)}, 4, "features", greedy_eval=True, **SMALL)
    greedy.load_state_dict(a.state_dict())
    greedy.train(False)
    obs = {"state": states[:2]}
    np.testing.assert_array_equal(greedy.act(obs), (greedy.reset(), greedy.act(obs))[1])


def test_train_bet_end_to_end_and_load_exported_weights(data_dir, tmp_path):
    from polytask.suites import make_env
    from polytask.training.weights import load_policy

    run = tmp_path / "run"
    overrides = [f"data_dir={data_dir}", f"hydra.run.dir={run}", "agent=bet", "suite/metaworld_task=drawer-close",
                 "num_demos_per_task=3", "num_train_steps=20", "batch_size=16", "log_every_steps=10",
                 "save_every_steps=10", "eval_every_steps=20", "eval.num_episodes=2", "eval.num_envs=2",
                 "eval.video=off", "agent.n_layer=1", "agent.n_embd=32", "agent.n_bins=8", DEVICE]
    p = run_script("train.py", *overrides)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads((run / "results.json").read_text())["step"] == 20
    weights = exported_weights(p)
    assert weights.parent == data_dir / "weights" / "bet" / "metaworld"
    env = make_env(compose_cfg("suite/metaworld_task=drawer-close").suite, "drawer-close", obs_type="features")
    try:
        policy = load_policy(weights, env)
        assert isinstance(policy, BeTAgent) and policy.model.centers.abs().sum() > 0
        obs, _ = env.reset(seed=0)
        a = policy.act({k: v[None] for k, v in obs.items()})
        assert a.shape == (1, 4) and np.abs(a).max() <= 1
    finally:
        env.close()
