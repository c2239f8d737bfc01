import numpy as np
import torch

from polytask.agents.bc import BCAgent
from polytask.data.buffer import DemoBuffer
from polytask.data.demos import load_episodes
from polytask.nets.encoders import RandomShiftsAug
from polytask.training.demos import demo_path
from tests.conftest import compose_cfg


def test_bc_loss_falls_on_real_demos(data_dir):
    torch.manual_seed(0)
    eps = load_episodes(demo_path(compose_cfg(f"data_dir={data_dir}"), "drawer-close"))
    buf = DemoBuffer({0: eps}, ("state",), seed=0)
    agent = BCAgent({"state": (39,)}, 4, "features", hidden_dim=256)
    probe = buf.get(np.arange(len(buf)))
    with torch.no_grad():
        before = (agent._mean(probe["state"]) - probe["action"]).pow(2).mean().item()
    for _ in range(300):
        metrics = agent.update(buf.sample(64))
    after = (agent._mean(probe["state"]) - probe["action"]).pow(2).mean().item()
    assert after < 0.3 * before, (before, after)
    assert np.isfinite(metrics["loss"])


def test_bc_pixels_act_and_update_shapes():
    torch.manual_seed(0)
    agent = BCAgent({"pixels": (9, 84, 84), "state": (39,)}, 4, "pixels", hidden_dim=64, hidden_depth=1,
                    feature_dim=32)
    obs = {"pixels": np.random.randint(0, 255, (5, 9, 84, 84), dtype=np.uint8)}
    a = agent.act(obs, eval_mode=True)
    assert a.shape == (5, 4) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    noisy = agent.act(obs, eval_mode=False)
    assert np.all(np.abs(noisy) <= 1) and not np.allclose(a, noisy)
    batch = {"pixels": torch.from_numpy(obs["pixels"]), "action": torch.zeros(5, 4)}
    losses = [agent.update(batch)["loss"] for _ in range(20)]
    assert losses[-1] < losses[0]


def test_bc_state_dict_round_trip():
    a = BCAgent({"state": (39,)}, 4, "features", hidden_dim=32)
    b = BCAgent({"state": (39,)}, 4, "features", hidden_dim=32)
    obs = {"state": np.random.randn(3, 39).astype(np.float32)}
    assert not np.allclose(a.act(obs), b.act(obs))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.act(obs), b.act(obs))


def test_random_shift_is_a_bounded_shift():
    torch.manual_seed(0)
    x = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    y = RandomShiftsAug(pad=2)(x)
    assert y.shape == x.shape
    # interior of a shifted image equals the original shifted by at most 2 pixels
    found = [any(torch.equal(y[b, 0, 4:12, 4:12], x[b, 0, 4 + dy:12 + dy, 4 + dx:12 + dx])
                 for dy in range(-2, 3) for dx in range(-2, 3)) for b in range(2)]
    assert all(found)
    u8 = RandomShiftsAug(4)(torch.randint(0, 255, (3, 9, 84, 84), dtype=torch.uint8))
    assert u8.dtype == torch.uint8 and u8.shape == (3, 9, 84, 84)
