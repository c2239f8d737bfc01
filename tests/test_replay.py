import numpy as np
import pytest

from polytask.data.replay import ReplayBuffer
from polytask.training.checkpoint import CheckpointError
from polytask.training.replay_store import ReplayStore
from tests.conftest import torch_round_trip


def _obs(t, pixels=False):
    o = {"state": np.full(2, t, np.float32)}
    if pixels:
        o["pixels"] = np.full((9, 2, 2), t, np.uint8)  # a stack whose newest frame is value t
    return o


def _episode(buf, rewards, terminated_at_end=False, start=0, pixels=False):
    buf.add_first(_obs(start, pixels))
    for k, r in enumerate(rewards):
        last = k == len(rewards) - 1
        buf.add(np.full(1, start + k, np.float32), r, _obs(start + k + 1, pixels),
                terminated=last and terminated_at_end, truncated=last and not terminated_at_end)


def test_nstep_return_hand_computed():
    buf = ReplayBuffer(100, {"state": (2,)}, 1, nstep=3, discount=0.5)
    _episode(buf, [1.0, 2.0, 4.0, 8.0, 16.0])  # slots 0..5, truncated at the end
    b = buf.get(np.array([0, 1]))
    np.testing.assert_allclose(b["reward"].numpy(), [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4 + 0.25 * 8])
    np.testing.assert_allclose(b["discount"].numpy(), [0.125, 0.125])
    np.testing.assert_array_equal(b["next_obs"]["state"][:, 0].numpy(), [3, 4])
    np.testing.assert_array_equal(b["obs"]["state"][:, 0].numpy(), [0, 1])
    np.testing.assert_array_equal(b["action"][:, 0].numpy(), [0, 1])


def test_truncated_bootstraps_terminated_does_not():
    trunc = ReplayBuffer(100, {"state": (2,)}, 1, nstep=3, discount=0.5)
    _episode(trunc, [1.0, 2.0, 4.0], terminated_at_end=False)
    term = ReplayBuffer(100, {"state": (2,)}, 1, nstep=3, discount=0.5)
    _episode(term, [1.0, 2.0, 4.0], terminated_at_end=True)
    for buf, disc in ((trunc, 0.5 ** 2), (term, 0.0)):
        b = buf.get(np.array([1]))  # steps 1, 2 then the episode ends
        assert b["reward"].item() == pytest.approx(2 + 0.5 * 4)
        assert b["discount"].item() == pytest.approx(disc)
        assert b["next_obs"]["state"][0, 0].item() == 3  # the final observation


def test_window_stops_at_episode_boundary_and_newest_obs():
    buf = ReplayBuffer(100, {"state": (2,)}, 1, nstep=3, discount=0.5)
    _episode(buf, [1.0, 1.0], start=0)  # slots 0,1,2 (2 = final obs)
    buf.add_first(_obs(10))  # slot 3, episode still running
    buf.add(np.zeros(1), 5.0, _obs(11), False, False)  # slot 4 = newest obs
    b = buf.get(np.array([1, 3]))
    np.testing.assert_allclose(b["reward"].numpy(), [1.0, 5.0])
    np.testing.assert_allclose(b["discount"].numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(b["next_obs"]["state"][:, 0].numpy(), [2, 11])
    # final observations are never sampled as a start
    idx = buf.sample_indices(500)
    assert set(idx.tolist()) == {0, 1, 3}


def test_frame_stacks_rebuilt_by_index_and_wraparound():
    buf = ReplayBuffer(8, {"pixels": (9, 2, 2), "state": (2,)}, 1, frame_stack=3, nstep=1)
    _episode(buf, [0.0] * 3, start=0, pixels=True)  # slots 0..3
    _episode(buf, [0.0] * 4, start=20, pixels=True)  # slots 4..8 (8 overwrites row 0)
    b = buf.get(np.array([4, 5, 7]))
    firsts = b["obs"]["pixels"][:, ::3, 0, 0].numpy()  # one value per stacked frame
    np.testing.assert_array_equal(firsts, [[20, 20, 20], [20, 20, 21], [21, 22, 23]])
    assert b["obs"]["pixels"].shape == (3, 9, 2, 2) and b["obs"]["pixels"].dtype.is_floating_point is False
    np.testing.assert_array_equal(b["next_obs"]["pixels"][2, ::3, 0, 0].numpy(), [22, 23, 24])
    assert len(buf) == 8 and buf.sample_indices(200).min() >= 1  # slot 0 was overwritten


def test_save_load_round_trip(tmp_path):
    a = ReplayBuffer(50, {"pixels": (9, 2, 2), "state": (2,)}, 1, seed=1)
    _episode(a, [1.0, 2.0, 3.0, 4.0], pixels=True)
    _episode(a, [5.0, 6.0], start=30, terminated_at_end=True, pixels=True)
    state = ReplayStore(tmp_path).save(a)
    b = ReplayBuffer(50, {"pixels": (9, 2, 2), "state": (2,)}, 1, seed=7)
    ReplayStore(tmp_path).load(b, torch_round_trip(state))
    x, y = a.sample(16), b.sample(16)
    for k in ("reward", "discount", "action"):
        np.testing.assert_array_equal(x[k].numpy(), y[k].numpy())
    np.testing.assert_array_equal(x["obs"]["pixels"].numpy(), y["obs"]["pixels"].numpy())
    np.testing.assert_array_equal(x["next_obs"]["state"].numpy(), y["next_obs"]["state"].numpy())
    # the buffer keeps working after loading
    _episode(b, [1.0], start=40, pixels=True)
    assert b.num_transitions == a.num_transitions + 1


def _play(buf, t0, t1):
    """Events ``t0 .. t1-1`` of a stream of 5-step episodes (event 6k starts episode k, 6k+5 ends it
    truncated), so that saves between events fall in the middle of episodes."""
    for t in range(t0, t1):
        if t % 6 == 0:
            buf.add_first(_obs(t, pixels=True))
        else:
            buf.add(np.full(1, t, np.float32), float(t), _obs(t, pixels=True), False, t % 6 == 5)


def _assert_same(a, b):
    """Same counters and stored slots, and the same next sampled batch."""
    assert (a.count, a.steps_added, a._cur_start) == (b.count, b.steps_added, b._cur_start)
    first = max(0, a.count - a.capacity)
    x, y = a.slot_arrays(first, a.count), b.slot_arrays(first, b.count)
    for k in x:
        np.testing.assert_array_equal(x[k], y[k], err_msg=k)
    for k in ("reward", "discount", "action"):
        np.testing.assert_array_equal(a.sample(8)[k].numpy(), b.sample(8)[k].numpy())


def _buffer():
    return ReplayBuffer(40, {"pixels": (9, 2, 2), "state": (2,)}, 1, seed=1)


def test_saves_write_only_new_slots_and_reload_across_a_wrap(tmp_path):
    a, store = _buffer(), ReplayStore(tmp_path)
    for t in range(0, 140, 7):  # 140 events, 140 slots in a buffer of 40: it wraps three times
        _play(a, t, t + 7)
        state = store.save(a)
        start, end = state["chunks"][-1]
        assert end == a.count and end - start == (a.count if t == 0 else 8)  # the 7 new slots and the last saved one
        assert state["chunks"][0][1] > a.count - a.capacity  # chunks that were overwritten since are not listed
        b = ReplayBuffer(40, {"pixels": (9, 2, 2), "state": (2,)}, 1, seed=7)
        ReplayStore(tmp_path).load(b, torch_round_trip(state))
        rng = a.rng.bit_generator.state
        _assert_same(a, b)
        a.rng.bit_generator.state = rng  # sampling in the check leaves the run's stream as it was
    # a chunk that a saved checkpoint no longer lists is deleted at the following save
    assert len(list(tmp_path.glob("*.npz"))) > len(state["chunks"])
    assert store.save(a) == state  # nothing new: no chunk written
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == sorted(f"{s}-{e}.npz" for s, e in state["chunks"])


def test_kill_between_chunk_and_checkpoint_resumes_consistently(tmp_path):
    a, store = _buffer(), ReplayStore(tmp_path)
    _play(a, 0, 31)
    state = store.save(a)  # the checkpoint on disk
    ref = _buffer()
    ReplayStore(tmp_path).load(ref, state)
    _play(a, 31, 47)
    store.save(a)  # its chunk is written, then the run is killed before it renames latest.pt
    b, resumed = _buffer(), ReplayStore(tmp_path)
    resumed.load(b, state)  # the extra chunk is ignored
    _assert_same(ref, b)
    (tmp_path / ".47-60.npz.x1y2.tmp").write_bytes(b"torn")  # a chunk whose writing was killed
    _play(b, 31, 60)  # the resumed run goes on past the wrap and saves
    state = resumed.save(b)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}-{e}.npz" for s, e in state["chunks"])
    c = _buffer()
    ReplayStore(tmp_path).load(c, state)
    _assert_same(b, c)


def test_missing_chunk_is_a_checkpoint_error(tmp_path):
    a = _buffer()
    _play(a, 0, 10)
    state = ReplayStore(tmp_path).save(a)
    next(tmp_path.glob("*.npz")).unlink()
    with pytest.raises(CheckpointError, match="missing or unreadable.*resume=never"):
        ReplayStore(tmp_path).load(_buffer(), state)
