import h5py
import numpy as np
import pytest

from polytask.data.__main__ import main as data_cli
from polytask.data.d4rl import load_d4rl, load_spirl
from polytask.data.demos import DatasetError, load_episodes, read_metadata


def _d4rl_file(path, n=12, next_obs=False, drop=None):
    """A D4RL-style file: a terminal after step 4, a timeout after step 9, 2 unflagged steps at the end."""
    rng = np.random.default_rng(0)
    data = {"observations": rng.standard_normal((n, 3)), "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
            "rewards": np.arange(n, dtype=np.float32), "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
    data["terminals"][4] = data["timeouts"][9] = True
    if next_obs:
        data["next_observations"] = data["observations"] + 100.0
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if k != drop:
                f.create_dataset(k, data=v)
        f.create_dataset("infos/goal", data=np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1))
    return data


def test_d4rl_episodes_split_at_terminals_and_timeouts(tmp_path):
    data = _d4rl_file(tmp_path / "maze2d.hdf5")
    eps = load_d4rl(tmp_path / "maze2d.hdf5")
    obs, act = data["observations"].astype(np.float32), data["actions"]
    assert [len(e) for e in eps] == [5, 4, 1]
    # terminal episode: all 5 steps, the last observation repeated (nothing is bootstrapped from it)
    np.testing.assert_array_equal(eps[0].obs["state"], np.concatenate([obs[0:5], obs[4:5]]))
    np.testing.assert_array_equal(eps[0].action, act[0:5])
    assert eps[0].terminated.tolist() == [False] * 4 + [True] and not eps[0].truncated.any()
    assert eps[0].extras["final_obs_repeated"]
    # timed-out episode: the last step (whose next observation is not stored) is dropped
    np.testing.assert_array_equal(eps[1].obs["state"], obs[5:10])
    np.testing.assert_array_equal(eps[1].action, act[5:9])
    np.testing.assert_array_equal(eps[1].reward, data["rewards"][5:9])
    assert eps[1].truncated.tolist() == [False] * 3 + [True] and not eps[1].terminated.any()
    np.testing.assert_array_equal(eps[1].infos["goal"][:, 0], np.arange(5, 9))
    # the unflagged end of the file is a truncated episode too
    np.testing.assert_array_equal(eps[2].obs["state"], obs[10:12])
    assert eps[2].truncated.tolist() == [True]


def test_d4rl_next_observations_keep_every_step(tmp_path):
    data = _d4rl_file(tmp_path / "kitchen.hdf5", next_obs=True)
    eps = load_d4rl(tmp_path / "kitchen.hdf5")
    assert [len(e) for e in eps] == [5, 5, 2]
    np.testing.assert_array_equal(eps[1].obs["state"][-1], data["next_observations"][9].astype(np.float32))
    np.testing.assert_array_equal(eps[1].obs["state"][:-1], data["observations"][5:10].astype(np.float32))
    assert not eps[0].extras["final_obs_repeated"]


def test_d4rl_bad_files(tmp_path):
    _d4rl_file(tmp_path / "bad.hdf5", drop="timeouts")
    with pytest.raises(DatasetError, match="not a D4RL dataset: it lacks timeouts"):
        load_d4rl(tmp_path / "bad.hdf5")
    with h5py.File(tmp_path / "short.hdf5", "w") as f:
        for k, n in [("observations", 4), ("actions", 3), ("rewards", 4), ("terminals", 4), ("timeouts", 4)]:
            f.create_dataset(k, data=np.zeros((n, 2) if k in ("observations", "actions") else n))
    with pytest.raises(DatasetError, match="arrays differ in length"):
        load_d4rl(tmp_path / "short.hdf5")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        load_d4rl(tmp_path / "text.hdf5")
    with pytest.raises(DatasetError, match="No file at .*missing.hdf5 \\(expected a D4RL dataset"):
        load_d4rl(tmp_path / "missing.hdf5")


def test_import_d4rl_cli_round_trip(tmp_path, capsys):
    _d4rl_file(tmp_path / "maze2d.hdf5")
    code = data_cli(["--data-dir", str(tmp_path), "import-d4rl", str(tmp_path / "maze2d.hdf5"), "d4rl/maze2d-test-v1"])
    assert code == 0 and "Wrote 3 episodes" in capsys.readouterr().out
    path = tmp_path / "datasets" / "d4rl" / "maze2d-test-v1"
    back, orig = load_episodes(path), load_d4rl(tmp_path / "maze2d.hdf5")
    for a, b in zip(orig, back):
        np.testing.assert_array_equal(a.obs["state"], b.obs["state"])
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.terminated, b.terminated)
        np.testing.assert_array_equal(a.infos["goal"], b.infos["goal"])
    assert read_metadata(path)["polytask"]["source"] == str(tmp_path / "maze2d.hdf5")
    assert data_cli(["--data-dir", str(tmp_path), "import-d4rl", str(tmp_path / "nope.hdf5"), "d4rl/x-v0"]) == 1
    assert "expected a D4RL dataset" in capsys.readouterr().err


def _spirl_file(path, lengths, valid=None):
    """A SPiRL rollout file: traj<i> with states (T, 4), actions (T, 2), images (T, 32, 32, 3), pad_mask."""
    rng = np.random.default_rng(len(str(path)))
    trajs = []
    with h5py.File(path, "w") as f:
        f.create_dataset("traj_per_file", data=len(lengths))
        for i, T in enumerate(lengths):
            t = {"states": rng.standard_normal((T, 4)).astype(np.float32),
                 "actions": rng.uniform(-1, 1, (T, 2)).astype(np.float32),
                 "images": rng.integers(0, 256, (T, 32, 32, 3), dtype=np.uint8),
                 "pad_mask": (np.arange(T) < (valid[i] if valid else T)).astype(np.float64)}
            for k, v in t.items():
                f.create_dataset(f"traj{i}/{k}", data=v)
            trajs.append(t)
    return trajs


def test_spirl_rollouts(tmp_path):
    (tmp_path / "batch0").mkdir()
    a = _spirl_file(tmp_path / "batch0" / "rollout_2.h5", [6])
    b = _spirl_file(tmp_path / "batch0" / "rollout_10.h5", [5, 8], valid=[5, 3])
    eps = load_spirl(tmp_path)
    assert [len(e) for e in eps] == [5, 4, 2]  # natural file order; T-1 transitions of the valid steps
    np.testing.assert_array_equal(eps[0].obs["state"], a[0]["states"])
    np.testing.assert_array_equal(eps[0].action, a[0]["actions"][:5])
    np.testing.assert_array_equal(eps[0].obs["pixels"], a[0]["images"].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(eps[2].obs["state"], b[1]["states"][:3])  # padding removed
    assert eps[2].obs["pixels"].shape == (3, 3, 32, 32) and eps[2].truncated.tolist() == [False, True]
    assert "pixels" not in load_spirl(tmp_path, images=False)[0].obs


def test_spirl_errors_and_cli(tmp_path, capsys):
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("states", data=np.zeros((3, 4)))
    with pytest.raises(DatasetError, match="no traj<i> groups"):
        load_spirl(tmp_path / "empty.h5")
    bad = tmp_path / "bad"
    bad.mkdir()
    with h5py.File(bad / "r.h5", "w") as f:
        f.create_dataset("traj0/states", data=np.zeros((4, 4)))
        f.create_dataset("traj0/actions", data=np.zeros((4, 2)))
        f.create_dataset("traj0/pad_mask", data=np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(DatasetError, match="pad_mask must be 1 on a prefix"):
        load_spirl(bad)
    (tmp_path / "no_files").mkdir()
    with pytest.raises(DatasetError, match="No .h5 rollout files"):
        load_spirl(tmp_path / "no_files")
    good = tmp_path / "good"
    good.mkdir()
    trajs = _spirl_file(good / "rollout_0.h5", [7])
    assert data_cli(["--data-dir", str(tmp_path), "import-spirl", str(good), "polytask/maze/spirl-play-pixels-v0"]) == 0
    back = load_episodes(tmp_path / "datasets" / "polytask" / "maze" / "spirl-play-pixels-v0")
    np.testing.assert_array_equal(back[0].obs["pixels"], trajs[0]["images"].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(back[0].action, trajs[0]["actions"][:6])
    args = ["--data-dir", str(tmp_path), "import-spirl", str(good), "test/spirl-states-v0", "--no-images"]
    assert data_cli(args) == 0
    assert "pixels" not in load_episodes(tmp_path / "datasets" / "test" / "spirl-states-v0")[0].obs
