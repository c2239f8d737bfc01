import pickle

import numpy as np
import pytest

from polytask.data.buffer import DemoBuffer
from polytask.data.collect import rollout
from polytask.data.demos import DatasetError, check_compatible, load_episodes, read_metadata, write_dataset
from polytask.data.rot_pickle import load_rot_pickle
from polytask.suites.metaworld import make
from polytask.training.demos import collect_command, demo_path, load_or_collect_demos
from tests.conftest import compose_cfg


def _short_pixel_episode(steps=6):
    """A real 6-step pixel episode plus the frame-stacked observations the env produced."""
    env = make("drawer-close", "pixels", frame_stack=3)
    obs, _ = env.reset(seed=5)
    stacked, frames, states, actions = [obs["pixels"]], [obs["pixels"][-3:]], [obs["state"]], []
    for _ in range(steps):
        a = env.action_space.sample()
        obs, *_ = env.step(a)
        stacked.append(obs["pixels"])
        frames.append(obs["pixels"][-3:])
        states.append(obs["state"])
        actions.append(a)
    env.close()
    return np.stack(stacked), np.stack(frames), np.stack(states), np.stack(actions).astype(np.float32)


def test_dataset_round_trip(tmp_path):
    env = make("drawer-close", "pixels", frame_stack=1)
    eps = [rollout(env, lambda o: env.action_space.sample(), seed=s) for s in (7, 8)]
    path = write_dataset(tmp_path, "test/metaworld/dc-pixels-v0", eps, env, "random", "test",
                         extra_metadata={"note": 1})
    env.close()
    back = load_episodes(path)
    assert len(back) == 2
    for a, b in zip(eps, back):
        assert b.seed == a.seed
        for k in a.obs:
            assert b.obs[k].dtype == a.obs[k].dtype
            np.testing.assert_array_equal(a.obs[k], b.obs[k])
        for f in ("action", "reward", "terminated", "truncated", "success"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    meta = read_metadata(path)
    assert meta["polytask"] == {"note": 1} and meta["total_episodes"] == 2
    # only the requested keys are loaded
    assert set(load_episodes(path, 1, obs_keys=("state",))[0].obs) == {"state"}


def test_demo_buffer_rebuilds_env_frame_stacks():
    stacked, frames, states, actions = _short_pixel_episode()
    from polytask.data.demos import Episode

    T = len(actions)
    ep = Episode(obs={"pixels": frames, "state": states}, action=actions, reward=np.zeros(T, np.float32),
                 terminated=np.zeros(T, bool), truncated=np.zeros(T, bool), success=np.zeros(T, np.float32))
    # two copies of the episode: stacks must not leak across the episode boundary
    buf = DemoBuffer({0: [ep, ep]}, ("pixels", "state"), frame_stack=3)
    batch = buf.get(np.arange(2 * T))
    np.testing.assert_array_equal(batch["pixels"][:T].numpy(), stacked[:T])
    np.testing.assert_array_equal(batch["pixels"][T:].numpy(), stacked[:T])
    np.testing.assert_array_equal(batch["action"][:T].numpy(), actions)
    assert buf.sample(4)["pixels"].shape == (4, 9, 84, 84)


def test_demo_buffer_sampling_resumes_identically():
    stacked, frames, states, actions = _short_pixel_episode(3)
    from polytask.data.demos import Episode

    T = len(actions)
    ep = Episode(obs={"state": states}, action=actions, reward=np.zeros(T, np.float32),
                 terminated=np.zeros(T, bool), truncated=np.zeros(T, bool), success=np.zeros(T, np.float32))
    a = DemoBuffer({0: [ep]}, ("state",), seed=3)
    a.sample(2)
    state = a.state_dict()
    first = a.sample(5)["state"]
    b = DemoBuffer({0: [ep]}, ("state",), seed=99)
    b.load_state_dict(state)
    np.testing.assert_array_equal(first.numpy(), b.sample(5)["state"].numpy())


def test_rot_pickle_import(tmp_path):
    stacked, frames, states, actions = _short_pixel_episode()
    T = len(actions)
    rewards = np.arange(T, dtype=np.float32)
    # ROT layout: observation t (stacked) with the action taken from it; T entries each
    path = tmp_path / "demos.pkl"
    with open(path, "wb") as f:
        pickle.dump([[stacked[:T]], [states[:T]], [actions], [rewards]], f)
    (ep,) = load_rot_pickle(path)
    np.testing.assert_array_equal(ep.obs["pixels"][:T], frames[:T])
    np.testing.assert_array_equal(ep.action, actions)
    np.testing.assert_array_equal(ep.reward, rewards)
    assert ep.obs["state"].shape == (T + 1, 39) and ep.truncated[-1]
    # rebuilding stacks from the imported frames gives back the pickle's stacks
    buf = DemoBuffer({0: [ep]}, ("pixels",), frame_stack=3)
    np.testing.assert_array_equal(buf.get(np.arange(T))["pixels"].numpy(), stacked[:T])
    # and it converts to a Minari dataset that reads back the same
    out = write_dataset(tmp_path, "test/rot-v0", [ep], None, "import", "test")
    np.testing.assert_array_equal(load_episodes(out)[0].obs["pixels"], ep.obs["pixels"])


def test_rot_pickle_bad_format(tmp_path):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump({"not": "a list"}, f)
    with pytest.raises(DatasetError, match="expected a list"):
        load_rot_pickle(path)
    with pytest.raises(DatasetError, match="No PolyTask/ROT demo pickle"):
        load_rot_pickle(tmp_path / "missing.pkl")


class _Payload:
    """Creates the file ``marker`` when unpickled, as a crafted pickle would run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_rot_pickle_with_code_or_objects_is_refused(tmp_path):
    _, _, states, actions = _short_pixel_episode()
    T = len(actions)
    marker = tmp_path / "ran"
    crafted = [[np.zeros((T, 9, 84, 84), np.uint8)], [states[:T]], [actions], [_Payload(marker)]]
    path = tmp_path / "crafted.pkl"
    path.write_bytes(pickle.dumps(crafted))
    with pytest.raises(DatasetError, match="refers to .*open, which is not loaded.*only NumPy arrays"):
        load_rot_pickle(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # a real exploit: plain unpickling runs the payload
    assert marker.exists()
    path.write_bytes(pickle.dumps([[np.array([1, "a"], dtype=object)], [states[:T]], [actions], [np.zeros(T)]]))
    with pytest.raises(DatasetError, match="dtype object.*numeric NumPy arrays only"):
        load_rot_pickle(path)


def test_rot_pickle_written_by_numpy_1_imports(tmp_path):
    stacked, frames, states, actions = _short_pixel_episode()
    T = len(actions)
    data = pickle.dumps([[stacked[:T]], [states[:T]], [actions], [np.arange(T, dtype=np.float32)]], protocol=2)
    assert b"numpy._core.multiarray" in data
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))  # NumPy 1's module name
    (ep,) = load_rot_pickle(path)
    np.testing.assert_array_equal(ep.obs["pixels"][:T], frames[:T])
    np.testing.assert_array_equal(ep.action, actions)


def test_missing_dataset_error_gives_path_and_command(tmp_path):
    cfg = compose_cfg(f"data_dir={tmp_path}", "suite/metaworld_task=hammer", "collect_missing_demos=false")
    env = make("hammer", "features")
    with pytest.raises(DatasetError) as e:
        load_or_collect_demos(cfg, "hammer", env)
    msg = str(e.value)
    assert str(demo_path(cfg, "hammer")) in msg
    assert collect_command(cfg, "hammer", 10) in msg and "collect_demos.py" in msg


def test_missing_demos_are_collected(tmp_path):
    cfg = compose_cfg(f"data_dir={tmp_path}", "suite/metaworld_task=drawer-close", "num_demos_per_task=2")
    env = make("drawer-close", "features")
    eps = load_or_collect_demos(cfg, "drawer-close", env)
    assert len(eps) == 2 and all(e.success.max() == 1.0 for e in eps)
    assert [e.seed for e in eps] == [0, 1]


def test_corrupted_dataset_error(data_dir, tmp_path):
    import shutil

    src = demo_path(compose_cfg(f"data_dir={data_dir}"), "drawer-close")
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    h5 = bad / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[:2000])
    with pytest.raises(DatasetError, match="corrupted"):
        load_episodes(bad)


def test_shape_mismatch_error(data_dir):
    eps = load_episodes(demo_path(compose_cfg(f"data_dir={data_dir}"), "drawer-close"))
    env = make("drawer-close", "pixels")
    with pytest.raises(DatasetError, match="observation 'pixels' is missing"):
        check_compatible(eps, env.observation_space, env.action_space, 3, "x")
    env.close()
