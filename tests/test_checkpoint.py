"""Checkpoints and weights files load as plain data only: crafted files are refused without running
anything, files from before the change convert on request."""

import datetime
import random

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from polytask.data.replay import ReplayBuffer
from polytask.errors import ConfigError
from polytask.training.checkpoint import CheckpointError, convert_command, load_checkpoint, main
from polytask.training.replay_store import ReplayStore
from polytask.training.trainer import Trainer
from polytask.training.weights import read_weights
from polytask.utils import rng_state, set_rng_state
from tests.conftest import torch_round_trip


class Payload:
    """Creates the file ``marker`` when unpickled, as a crafted file would run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _crafted(tmp_path, name):
    tmp_path.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / f"{name}.ran"
    path = tmp_path / f"{name}.pt"
    torch.save({"agent": {"w": torch.zeros(2)}, "agent_name": "bc", "config": {"agent": {}}, "step": 1,
                "eval": Payload(marker)}, path)
    return path, marker


def test_crafted_weights_and_checkpoints_are_refused_and_run_nothing(tmp_path):
    weights, marker = _crafted(tmp_path, "weights")
    with pytest.raises(CheckpointError, match="holds objects other than tensors.*not read") as e:
        load_checkpoint(weights)
    assert convert_command(weights) in str(e.value)
    with pytest.raises(ConfigError, match="not read"):
        read_weights(weights)
    assert not marker.exists()
    latest, marker = _crafted(tmp_path / "run" / "checkpoints", "latest")
    trainer = Trainer(OmegaConf.create({"resume": "auto"}), tmp_path / "run", agent=None, evaluator=None)
    with pytest.raises(CheckpointError, match="not read"):
        trainer.resume()
    assert not marker.exists()
    torch.load(latest, weights_only=False)  # the files are real exploits: full unpickling runs the payload
    assert marker.exists()


def test_torn_file_is_unreadable_not_unsafe(tmp_path):
    path = tmp_path / "latest.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable.*resume=never"):
        load_checkpoint(path)


def test_rng_state_is_plain_data_and_restores():
    state = torch_round_trip(rng_state())  # weights_only=True
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected


def _old_checkpoint(buf):
    """What PolyTask saved before: NumPy RNG state and the replay buffer inline, by physical row."""
    n = len(buf)
    replay = {"capacity": buf.capacity, "count": buf.count, "cur_start": buf._cur_start,
              "steps_added": buf.steps_added, "rng": buf.rng.bit_generator.state,
              "obs": {k: v[:n].copy() for k, v in buf.obs.items()},
              **{k: getattr(buf, k)[:n].copy() for k in ("action", "reward", "terminated", "truncated",
                                                           "has_action", "ep_start")}}
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    return {"agent": {"w": torch.ones(3)}, "step": 7, "best_score": (0.5, np.float64(2.0)),
            "last_eval": {"success": 0.5}, "rng": rng, "config": {"agent": {"name": "drqv2"}}, "replay": replay,
            "episode": 3}


def test_old_checkpoint_fails_clearly_then_converts_on_request(tmp_path, capsys):
    buf = ReplayBuffer(16, {"pixels": (9, 2, 2), "state": (2,)}, 1, seed=3)
    for t in range(27):  # wraps: slots 11..26 are stored
        if t % 5 == 0:
            buf.add_first({"state": np.full(2, t, np.float32), "pixels": np.full((9, 2, 2), t, np.uint8)})
        else:
            buf.add(np.full(1, t, np.float32), float(t), {"state": np.full(2, t, np.float32),
                                                          "pixels": np.full((9, 2, 2), t, np.uint8)}, False, False)
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    old = _old_checkpoint(buf)
    torch.save(old, ckpt / "latest.pt")
    torch.save(old, ckpt / "best.pt")
    expected_numpy = np.random.random()
    with pytest.raises(CheckpointError, match="convert it once with") as e:
        load_checkpoint(ckpt / "latest.pt")
    assert convert_command(ckpt / "latest.pt") in str(e.value)
    before = (ckpt / "latest.pt").read_bytes()
    assert main(["convert", str(ckpt / "latest.pt")]) == 1 and "--trust" in capsys.readouterr().err
    assert (ckpt / "latest.pt").read_bytes() == before  # nothing converted without --trust
    assert main(["convert", str(ckpt / "latest.pt"), str(ckpt / "best.pt"), "--trust"]) == 0
    assert "replay buffer (16 slots) moved to" in capsys.readouterr().out
    state = load_checkpoint(ckpt / "latest.pt")
    assert state["step"] == 7 and state["best_score"] == (0.5, 2.0) and state["episode"] == 3
    restored = ReplayBuffer(16, {"pixels": (9, 2, 2), "state": (2,)}, 1, seed=0)
    ReplayStore(ckpt / "replay").load(restored, state["replay"])
    assert (restored.count, restored.steps_added) == (buf.count, buf.steps_added)
    for k, v in buf.slot_arrays(11, 27).items():
        np.testing.assert_array_equal(restored.slot_arrays(11, 27)[k], v, err_msg=k)
    np.testing.assert_array_equal(restored.sample_indices(32), buf.sample_indices(32))
    set_rng_state(state["rng"])
    assert np.random.random() == expected_numpy
    assert "replay" not in load_checkpoint(ckpt / "best.pt")
    torch.save({"when": datetime.date(2020, 1, 1)}, tmp_path / "other.pt")  # no plain form: not converted
    assert main(["convert", str(tmp_path / "other.pt"), "--trust"]) == 1
    assert "Cannot convert datetime.date at ['when']" in capsys.readouterr().err
