"""The replay buffer's gather-based sampler against a per-sample reference: same indices give the same
batch, indices are uniform over stored steps, and kept batches are never overwritten."""

import numpy as np
import pytest

from polytask.data.buffer import gather_stacks
from polytask.data.prefetch import PrefetchSampler
from polytask.data.replay import ReplayBuffer

K, N, GAMMA = 3, 3, 0.9


def _filled(capacity=60, steps=200, seed=0):
    """A buffer that wrapped around several times, with episodes of random lengths ending terminated
    or truncated, and an episode in progress at the end."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(capacity, {"pixels": (3 * K, 4, 4), "state": (2,)}, 2, frame_stack=K, nstep=N,
                       discount=GAMMA, seed=seed)
    t = 0
    while t < steps:
        buf.add_first({"pixels": rng.integers(0, 256, (3 * K, 4, 4), dtype=np.uint8),
                       "state": rng.standard_normal(2).astype(np.float32)})
        length = int(rng.integers(1, 9))
        for k in range(length):
            end = k == length - 1 and t + 1 < steps
            term = bool(end and rng.random() < 0.5)
            buf.add(rng.standard_normal(2).astype(np.float32), float(rng.standard_normal()),
                    {"pixels": rng.integers(0, 256, (3 * K, 4, 4), dtype=np.uint8),
                     "state": rng.standard_normal(2).astype(np.float32)}, term, end and not term)
            t += 1
            if end:
                break
    return buf


def _reference(buf, idx):
    """One sample at a time: walk the n-step window by hand and rebuild the stacks with
    :func:`gather_stacks`, as the buffer did before its sampler was vectorised into one gather."""
    cap, oldest = buf.capacity, max(0, buf.count - buf.capacity)
    rewards, discounts, next_idx = [], [], []
    for i in idx:
        ret, disc, m = 0.0, 1.0, 0
        for k in range(N):
            row = (i + k) % cap
            if i + k >= buf.count or not buf.has_action[row]:
                break
            ret += GAMMA ** k * float(buf.reward[row])
            m += 1
            if buf.terminated[row]:
                disc = 0.0
                break
            if buf.truncated[row]:
                break
        rewards.append(ret)
        discounts.append(disc * GAMMA ** m if disc else 0.0)
        next_idx.append(i + m)
    next_idx = np.array(next_idx)

    def obs(a):
        first = np.maximum(buf.ep_start[a % cap], oldest)
        return {"pixels": gather_stacks(buf.obs["pixels"], a, first, K, cap), "state": buf.obs["state"][a % cap]}

    return {"obs": obs(idx), "next_obs": obs(next_idx), "action": buf.action[idx % cap],
            "reward": np.array(rewards), "discount": np.array(discounts)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_indices_give_the_reference_batch(seed):
    buf = _filled(seed=seed)
    idx = buf.sample_indices(300)
    got, want = buf.get(idx), _reference(buf, idx)
    for part in ("obs", "next_obs"):
        for key in ("pixels", "state"):
            np.testing.assert_array_equal(got[part][key].numpy(), want[part][key], err_msg=f"{part}.{key}")
    np.testing.assert_array_equal(got["action"].numpy(), want["action"])
    np.testing.assert_allclose(got["reward"].numpy(), want["reward"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["discount"].numpy(), want["discount"], rtol=1e-6)
    assert (want["discount"] == 0).any() and (want["discount"] < GAMMA ** N - 1e-6).any()  # both cut kinds occur


def test_indices_are_uniform_over_stored_steps():
    buf = _filled(capacity=40, steps=100)
    oldest = buf.count - buf.capacity
    stored = [s for s in range(oldest, buf.count) if buf.has_action[s % buf.capacity]]
    draws = 40_000
    counts = np.bincount(buf.sample_indices(draws) - oldest, minlength=buf.capacity)
    assert counts.sum() == draws and set(np.flatnonzero(counts) + oldest) == set(stored)
    expected = draws / len(stored)
    chi2 = float((((counts[np.array(stored) - oldest]) - expected) ** 2 / expected).sum())
    assert chi2 < len(stored) + 5 * np.sqrt(2 * len(stored))  # ~5 sigma above the chi-square mean


def test_a_kept_batch_is_not_overwritten_and_a_dropped_one_is_reused():
    buf = _filled()
    kept = buf.sample(32)
    copy = kept["obs"]["pixels"].clone(), kept["next_obs"]["state"].clone(), kept["action"].clone()
    other = buf.sample(32)
    assert other["obs"]["pixels"].data_ptr() != kept["obs"]["pixels"].data_ptr()
    for a, b in zip(copy, (kept["obs"]["pixels"], kept["next_obs"]["state"], kept["action"])):
        assert (a == b).all()
    pointer = other["obs"]["pixels"].data_ptr()
    del kept, other
    assert buf.sample(32)["obs"]["pixels"].data_ptr() == pointer  # the dropped batch's memory is used again


def test_prefetched_batches_are_the_plain_draws():
    """On CPU (a GPU's pinned copy cannot be tested here): the background thread draws the same
    batches, in order, as sampling in the update from an identical buffer; steps added meanwhile
    wait for the draw in flight (the buffer's lock) and show up in later batches."""
    plain, ahead = _filled(seed=3), _filled(seed=3)
    sampler = PrefetchSampler(ahead, 16)
    try:
        for _ in range(5):
            want, got = plain.sample(16), sampler.sample()
            for part in ("obs", "next_obs"):
                for key in ("pixels", "state"):
                    np.testing.assert_array_equal(got[part][key].numpy(), want[part][key].numpy())
            np.testing.assert_array_equal(got["reward"].numpy(), want["reward"].numpy())
        marker = np.full(2, 1e6, np.float32)
        for _ in range(200):  # new steps whose action marks them, added while batches are drawn
            ahead.add(marker, 0.0, {"pixels": np.zeros((3 * K, 4, 4), np.uint8), "state": np.zeros(2, np.float32)},
                      False, False)
            batch = sampler.sample()
            assert np.isfinite(batch["reward"].numpy()).all()
        assert (batch["action"].numpy() == 1e6).any()  # the buffer now holds mostly the new steps
    finally:
        sampler.close()
