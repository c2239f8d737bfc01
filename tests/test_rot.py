"""ROT: Sinkhorn plans (checked against POT), OT rewards, and a tiny BC -> ROT run with resume."""

import json

import numpy as np
import ot
import pytest
import torch

from polytask.rewards.ot import OTRewarder, cosine_cost, sinkhorn_plan
from polytask.training.checkpoint import load_checkpoint
from polytask.training.logger import read_metrics
from tests.conftest import DEVICE, run_script


def test_sinkhorn_marginals_and_agreement_with_pot():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randn(30, 5, generator=g, dtype=torch.float64)
    cost = cosine_cost(x[None], y[None])
    plan = sinkhorn_plan(cost, eps=0.01, num_iters=300)[0].numpy()
    np.testing.assert_allclose(plan.sum(1), 1 / 40, rtol=1e-9)
    np.testing.assert_allclose(plan.sum(0), 1 / 30, rtol=1e-2)
    ref = ot.sinkhorn(np.full(40, 1 / 40), np.full(30, 1 / 30), cost[0].numpy(), 0.01, method="sinkhorn_log",
                      numItermax=300, stopThr=0)
    np.testing.assert_allclose(plan, ref, atol=1e-12)


def test_padded_batch_equals_separate_plans():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    ys = [torch.randn(n, 4, generator=g, dtype=torch.float64) for n in (12, 17)]
    y = torch.zeros(2, 17, 4, dtype=torch.float64)
    mask = torch.zeros(2, 17, dtype=torch.bool)
    for i, yi in enumerate(ys):
        y[i, : len(yi)], mask[i, : len(yi)] = yi, True
    batched = sinkhorn_plan(cosine_cost(x.expand(2, 20, 4), y), mask)
    for i, yi in enumerate(ys):
        alone = sinkhorn_plan(cosine_cost(x[None], yi[None]))[0]
        torch.testing.assert_close(batched[i, :, : len(yi)], alone)
        assert torch.all(batched[i, :, len(yi):] == 0)


def test_ot_reward_prefers_demo_like_trajectories():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 51)[:, None]
    demo = np.concatenate([np.sin(3 * t), np.cos(2 * t), t, 1 - t], 1)
    rewarder = OTRewarder([demo, rng.standard_normal((40, 4))])
    near = demo + 0.01 * rng.standard_normal(demo.shape)
    far = rng.standard_normal(demo.shape)
    r_near = rewarder(near)
    assert r_near.shape == (50,) and r_near.dtype == np.float32
    assert r_near.sum() == pytest.approx(-10.0, rel=1e-5)  # the first episode fixes the scale
    scale = rewarder.scale
    r_far = rewarder(far)
    assert rewarder.scale == scale and r_far.sum() < r_near.sum()
    fresh = OTRewarder([demo])
    fresh.load_state_dict(rewarder.state_dict())
    np.testing.assert_allclose(fresh(far), OTRewarder([demo], scale=scale)(far))


def test_demo_features_computed_once_per_refresh():
    rng = np.random.default_rng(2)
    demos = [rng.standard_normal((30, 6)) for _ in range(3)]
    weights = {"w": torch.eye(6, dtype=torch.float64)}  # the "reward encoder", changed only at refresh
    live = {"w": weights["w"]}  # the "online encoder", changed by training
    calls = {"featurize": 0, "refresh": 0}

    def featurize(x):
        calls["featurize"] += 1
        return torch.as_tensor(x) @ weights["w"]

    def refresh():
        calls["refresh"] += 1
        weights["w"] = live["w"].clone()

    rewarder = OTRewarder(demos, featurize, refresh, refresh_every=1000)
    episode = rng.standard_normal((30, 6))
    first = rewarder(episode, step=0)
    assert calls == {"refresh": 1, "featurize": 4}  # 3 demos + the episode
    live["w"] = torch.as_tensor(rng.standard_normal((6, 6)))  # training moves the online encoder
    np.testing.assert_array_equal(rewarder(episode, step=999), first)  # same frozen features, demos cached
    assert calls == {"refresh": 1, "featurize": 5}
    changed = rewarder(episode, step=1000)  # refresh due: new encoder, demos featurized again
    assert calls == {"refresh": 2, "featurize": 9} and rewarder.refreshed_at == 1000
    assert not np.allclose(changed, first)
    restored = OTRewarder(demos, featurize, refresh, refresh_every=1000)
    restored.load_state_dict(rewarder.state_dict())
    np.testing.assert_allclose(restored(episode, step=1500), changed)  # no refresh until step 2000
    assert calls["refresh"] == 2
    with pytest.raises(ValueError, match="refresh_every"):
        OTRewarder(demos, featurize, refresh, refresh_every=0)


def test_rot_run_from_bc_with_resume(tmp_path):
    common = [f"data_dir={tmp_path}", "suite/metaworld_task=drawer-close", "num_demos_per_task=1",
              "agent.hidden_dim=64", "eval.num_episodes=2", "eval.video=off", DEVICE]
    rot = [f"hydra.run.dir={tmp_path / 'rot'}", "agent=drqv2", "load_bc=true", "bc_regularize=true",
           "update_after_steps=250", "log_every_steps=50", "save_every_steps=250", "replay_capacity=3000",
           "batch_size=32", *common]
    missing = run_script("train.py", *rot, "num_train_steps=500")
    assert missing.returncode == 1 and "python train.py agent=bc" in missing.stdout + missing.stderr
    bc = run_script("train.py", f"hydra.run.dir={tmp_path / 'bc'}", "agent=bc", "num_train_steps=50", *common)
    assert bc.returncode == 0, bc.stderr[-2000:]
    # a ROT actor of another size than the BC run's: a one-line error with both sizes
    narrow = [a.replace("agent.hidden_dim=64", "agent.hidden_dim=32").replace(str(tmp_path / "rot"),
                                                                                str(tmp_path / "rot32")) for a in rot]
    other = run_script("train.py", *narrow, "num_train_steps=500")
    out = other.stdout + other.stderr
    assert other.returncode == 1 and "Traceback" not in out, out[-2000:]
    assert "BC has agent.hidden_dim=64" in out and "this run has agent.hidden_dim=32" in out
    p = run_script("train.py", *rot, "num_train_steps=500", "eval_every_steps=500")
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "Starting from BC weights" in out
    ckpt = load_checkpoint(tmp_path / "rot" / "checkpoints" / "latest.pt")
    assert ckpt["agent"]["ot"]["scale"] > 0 and ckpt["replay"]["count"] == 502  # 2 finished episodes
    logged = {k for r in read_metrics(tmp_path / "rot" / "train.csv") for k in r}
    assert "episode_reward" in logged and "bc_weight" in logged
    p = run_script("train.py", *rot, "num_train_steps=750", "eval_every_steps=750")
    assert p.returncode == 0 and "at step 500" in p.stdout + p.stderr
    after = load_checkpoint(tmp_path / "rot" / "checkpoints" / "latest.pt")
    assert after["step"] == 750 and after["agent"]["ot"]["scale"] == ckpt["agent"]["ot"]["scale"]
    assert json.loads((tmp_path / "rot" / "results.json").read_text())["step"] == 750


def test_pixel_rot_run_refreshes_reward_encoder(tmp_path):
    run = tmp_path / "rot"
    args = [f"hydra.run.dir={run}", f"data_dir={tmp_path}", "agent=drqv2", "obs_type=pixels",
            "suite/metaworld_task=drawer-close", "suite.env.episode_len=200", "num_demos_per_task=1",
            "agent.hidden_dim=32", "agent.feature_dim=16", "update_after_steps=50", "agent.num_expl_steps=50",
            "batch_size=8", "replay_capacity=1000", "ot.update_target_every=150", "save_every_steps=100",
            "eval.num_episodes=1", "eval.video=off", DEVICE]
    p = run_script("train.py", *args, "num_train_steps=200", "eval_every_steps=200")
    assert p.returncode == 0, p.stderr[-3000:]
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    # 100-step episodes end at steps 99 and 199: the first refreshes, the second is within 150 steps of it
    assert ckpt["agent"]["ot"]["refreshed_at"] == 99 and ckpt["agent"]["ot"]["scale"] > 0
    frozen, online = ckpt["agent"]["reward_encoder"], ckpt["agent"]["encoder"]
    assert not all(torch.equal(frozen[f"0.{k}"], v) for k, v in online.items())  # 100 updates since the copy
    p = run_script("train.py", *args, "num_train_steps=300", "eval_every_steps=300")
    assert p.returncode == 0 and "at step 200" in p.stdout + p.stderr
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["agent"]["ot"]["refreshed_at"] == 299
