"""Diffusion Policy: demo windows, the UNet, training, chunked stateful acting, saving, and a tiny
end-to-end train.py run whose exported weights load back."""

import json

import numpy as np
import pytest
import torch

from polytask.agents.diffusion import DiffusionAgent
from polytask.agents.sequence import PolicyMemory
from polytask.data.buffer import DemoBuffer
from polytask.data.demos import Episode
from polytask.nets.unet1d import ConditionalUnet1D
from tests.conftest import DEVICE, compose_cfg, exported_weights, run_script, trained_and_restored

pytest.importorskip("diffusers")

SMALL = dict(down_dims=(16, 32, 64), step_embed_dim=16, num_inference_steps=4)


def _episode(T, D=3, A=2, offset=0.0):
    """Observations and actions that encode their step: obs[t] = t + offset, action[t] = (t + offset) / 100."""
    steps = np.arange(T + 1, dtype=np.float32) + offset
    obs = {"state": np.repeat(steps[:, None], D, 1)}
    action = np.repeat(steps[:T, None] / 100, A, 1)
    z = np.zeros(T, bool)
    return Episode(obs, action, np.zeros(T, np.float32), z, z, np.zeros(T, np.float32))


def _smooth_episodes(n=4, T=40, seed=0):
    """Episodes whose action is a smooth function of a 3-d state (a small fixed dataset)."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n):
        s0 = rng.uniform(-1, 1, 3).astype(np.float32)
        t = np.arange(T + 1, dtype=np.float32)[:, None] / T
        state = s0 + t * (0.5 - s0)
        action = np.tanh(np.concatenate([state[:T, :2] * 2, np.sin(3 * t[:T])], 1)).astype(np.float32)
        z = np.zeros(T, bool)
        eps.append(Episode({"state": state}, action, np.zeros(T, np.float32), z, z, np.zeros(T, np.float32)))
    return eps


def test_windows_clip_to_the_episode_and_sampling_is_seeded():
    buf = DemoBuffer({0: [_episode(5), _episode(3, offset=100)]}, ("state",), seed=3)
    w = buf.get_windows(np.array([0, 4, 5, 7]), obs_steps=2, action_steps=4)
    assert w["state"].shape == (4, 2, 3) and w["action"].shape == (4, 4, 2)
    np.testing.assert_array_equal(w["state"][:, :, 0], [[0, 0], [3, 4], [100, 100], [101, 102]])
    np.testing.assert_allclose(w["action"][:, :, 0] * 100, [[0, 1, 2, 3], [4, 4, 4, 4], [100, 101, 102, 102],
                                                            [102, 102, 102, 102]], atol=1e-4)
    back = buf.get_windows(np.array([4]), obs_steps=3, action_steps=3, action_start=-2)  # BeT-style windows
    np.testing.assert_allclose(back["action"][0, :, 0] * 100, [2, 3, 4], atol=1e-4)
    state = buf.state_dict()
    a = buf.sample_windows(8, 2, 16)
    buf.load_state_dict(state)
    np.testing.assert_array_equal(a["action"], buf.sample_windows(8, 2, 16)["action"])


def test_unet_shapes_and_conditioning():
    torch.manual_seed(0)
    net = ConditionalUnet1D(4, 10, down_dims=(16, 32, 64), step_embed_dim=16)
    x, cond = torch.randn(3, 16, 4), torch.randn(3, 10)
    out = net(x, torch.tensor([0, 5, 99]), cond)
    assert out.shape == (3, 16, 4) and out.dtype == torch.float32
    assert not torch.allclose(out, net(x, torch.tensor([0, 5, 99]), cond + 1))  # FiLM uses the condition
    assert not torch.allclose(out, net(x, 50, cond))  # and the diffusion step
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 10, 4), 0, torch.randn(1, 10))


def test_noise_prediction_loss_falls_on_a_fixed_dataset():
    torch.manual_seed(0)
    buf = DemoBuffer({0: _smooth_episodes()}, ("state",), seed=0)
    agent = DiffusionAgent({"state": (3,)}, 3, "features", lr=1e-3, **SMALL)
    agent.fit_dataset(buf.obs["state"], buf.action)
    probe = buf.get_windows(np.arange(len(buf)), *agent.window)

    def probe_loss():
        torch.manual_seed(123)  # same noise and steps each time
        with torch.no_grad():
            return agent.loss(probe).item()

    before = probe_loss()
    for _ in range(150):
        agent.update(buf.sample_windows(32, *agent.window))
    after = probe_loss()
    assert after < 0.5 * before, (before, after)


def test_chunks_in_bounds_act_replans_every_action_horizon_steps(monkeypatch):
    torch.manual_seed(0)
    agent = DiffusionAgent({"state": (3,)}, 2, "features", **SMALL)
    chunks = agent.sample_chunks(np.random.randn(5, 2, 3).astype(np.float32) * 10)
    assert chunks.shape == (5, 16, 2) and chunks.dtype == torch.float32
    assert chunks.abs().max() <= 1.0
    calls = []
    real = agent.sample_chunks
    monkeypatch.setattr(agent, "sample_chunks", lambda hist, *a, **k: calls.append(np.array(hist)) or real(hist))
    idx = np.arange(3)
    for t in range(12):
        obs = {"state": np.full((3, 3), t, np.float32), "env_index": idx, "is_first": np.full(3, t == 0)}
        a = agent.act(obs)
        assert a.shape == (3, 2) and a.dtype == np.float32 and np.abs(a).max() <= 1
    assert len(calls) == 3  # steps 0, 4, 8: one batched call for the 3 envs each time
    assert all(c.shape == (3, 2, 3) for c in calls)
    np.testing.assert_array_equal(calls[0][0, :, 0], [0, 0])  # first obs repeated at the episode start
    np.testing.assert_array_equal(calls[1][0, :, 0], [3, 4])  # then the last two observations


def test_is_first_clears_only_that_envs_memory(monkeypatch):
    torch.manual_seed(0)
    agent = DiffusionAgent({"state": (3,)}, 2, "features", **SMALL)
    calls = []
    real = agent.sample_chunks
    monkeypatch.setattr(agent, "sample_chunks", lambda hist, *a, **k: calls.append(np.array(hist)) or real(hist))
    idx = np.array([0, 1])
    for t in range(2):
        agent.act({"state": np.full((2, 3), t, np.float32), "env_index": idx, "is_first": np.array([t == 0] * 2)})
    agent.act({"state": np.full((2, 3), 7, np.float32), "env_index": idx, "is_first": np.array([False, True])})
    assert len(calls) == 2 and calls[1].shape == (1, 2, 3)  # only env 1 replans, from its new first obs
    np.testing.assert_array_equal(calls[1][0, :, 0], [7, 7])
    # a subset of envs (finished ones drop out of the batch) keeps the others' memory
    agent.act({"state": np.full((1, 3), 8, np.float32), "env_index": np.array([1]), "is_first": np.array([False])})
    assert len(calls) == 2
    # without env keys: env 0; reset() forgets everything
    agent.reset()
    agent.act({"state": np.zeros((1, 3), np.float32)})
    assert len(calls) == 3


def test_policy_memory_histories():
    mem = PolicyMemory(3)
    idx = np.array([2, 0])
    h = mem.observe(np.array([[1.0], [10.0]]), idx, np.array([True, True]))
    np.testing.assert_array_equal(h[..., 0], [[1, 1, 1], [10, 10, 10]])
    h = mem.observe(np.array([[2.0], [11.0]]), idx, np.array([False, False]))
    np.testing.assert_array_equal(h[..., 0], [[1, 1, 2], [10, 10, 11]])
    mem.push(idx, np.zeros((2, 2, 1), np.float32))
    mem.pop(idx)
    assert not mem.needs_actions(idx).any()
    h = mem.observe(np.array([[5.0]]), np.array([2]), np.array([True]))
    np.testing.assert_array_equal(h[..., 0], [[5, 5, 5]])
    assert mem.needs_actions(np.array([2, 0])).tolist() == [True, False]
    with pytest.raises(RuntimeError):
        mem.pop(np.array([2]))


def test_state_dict_round_trip_gives_identical_actions():
    torch.manual_seed(0)
    buf = DemoBuffer({0: _smooth_episodes(n=2)}, ("state",), seed=0)
    a, b = trained_and_restored(lambda: DiffusionAgent({"state": (3,)}, 3, "features", **SMALL), buf, 5, 16)
    obs = {"state": buf.obs["state"][:4], "env_index": np.arange(4), "is_first": np.ones(4, bool)}
    torch.manual_seed(5)
    act_a = a.act(obs)
    torch.manual_seed(5)
    np.testing.assert_array_equal(act_a, b.act(obs))


def test_pixels_are_refused():
    with pytest.raises(ValueError, match="obs_type=features"):
        DiffusionAgent({"pixels": (9, 84, 84)}, 4, "pixels")


def test_train_diffusion_end_to_end_and_load_exported_weights(data_dir, tmp_path):
    from polytask.suites import make_env
    from polytask.training.weights import load_policy


    run = tmp_path / "run"
    overrides = [f"data_dir={data_dir}", f"hydra.run.dir={run}", "agent=diffusion", "suite/metaworld_task=drawer-close",
                 "num_demos_per_task=3", "num_train_steps=20", "batch_size=16", "log_every_steps=10",
                 "save_every_steps=10", "eval_every_steps=20", "eval.num_episodes=2", "eval.num_envs=2",
                 "eval.video=off", "agent.down_dims=[16,32,64]", "agent.step_embed_dim=16",
                 "agent.num_inference_steps=2", DEVICE]
    p = run_script("train.py", *overrides)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads((run / "results.json").read_text())["step"] == 20
    assert (run / "checkpoints" / "latest.pt").exists()
    again = run_script("train.py", *overrides)
    assert again.returncode == 0 and "already finished" in again.stderr + again.stdout
    weights = exported_weights(p)
    assert weights.parent == data_dir / "weights" / "diffusion" / "metaworld"
    assert weights.exists()
    env = make_env(compose_cfg("suite/metaworld_task=drawer-close").suite, "drawer-close", obs_type="features")
    try:
        policy = load_policy(weights, env)
        obs, _ = env.reset(seed=0)
        assert isinstance(policy, DiffusionAgent)
        a = policy.act({k: v[None] for k, v in obs.items()})
        assert a.shape == (1, 4) and np.abs(a).max() <= 1
    finally:
        env.close()


def test_pixel_runs_are_refused_before_loading_demos(tmp_path):
    from polytask.errors import ConfigError
    from polytask.training.offline import WindowTrainer


    for agent in ("diffusion", "bet"):
        cfg = compose_cfg(f"agent={agent}", "obs_type=pixels", f"data_dir={tmp_path}", "collect_missing_demos=false")
        with pytest.raises(ConfigError, match="obs_type=features"):
            WindowTrainer.from_config(cfg, tmp_path)
