"""Collective learning's models: the trajectory transformer's token layout, masking and InfoNCE, its
task separation on two toy tasks, windows, the collective actor, the shaping schedule and bonus, and
the embedding report and plot."""

import math

import numpy as np
import pytest
import torch

from polytask.collective.analysis import embedding_report, plot_embeddings
from polytask.collective.shaping import shaping_bonus, shaping_weight
from polytask.collective.training import embed_windows, train_transformer
from polytask.collective.windows import last_window, sample_windows, trailing_windows
from polytask.errors import ConfigError, PolyTaskError
from polytask.nets.collective import CollectiveActor, distill_loss
from polytask.nets.mlp import GaussianActor
from polytask.nets.trajectory_transformer import (
    ACTION,
    CLS,
    OBS,
    REWARD,
    TrajectoryTransformer,
    info_nce,
    mask_tokens,
    token_layout,
)


def test_token_layout_order_and_steps():
    modality, step = token_layout(4)
    assert modality.tolist() == [OBS, ACTION, REWARD, OBS, ACTION, REWARD, OBS, ACTION, REWARD, OBS, CLS]
    assert step.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, -1]
    assert len(token_layout(20)[0]) == 3 * 20 - 1


def test_tokens_follow_layout_and_share_step_embedding():
    torch.manual_seed(0)
    w, d, a = 5, 3, 2
    model = TrajectoryTransformer(d, a, window=w, d_model=16, n_heads=4, n_layers=1).eval()
    obs, act, rew = torch.randn(2, w, d), torch.randn(2, w - 1, a), torch.randn(2, w - 1)
    tokens = model.tokens(obs, act, rew)
    assert tokens.shape == (2, 3 * w - 1, 16)
    modality, step = token_layout(w)
    # the step embedding is the same vector for every modality of a step
    steps_only = tokens[:, :-1] - model.modality_tokens(obs, act, rew)
    for t in range(w):
        rows = steps_only[0, step[:-1] == t]
        torch.testing.assert_close(rows, model.step_embed.weight[t].expand_as(rows))
    torch.testing.assert_close(tokens[:, -1], model.cls_token.expand(2, -1))
    # changing a_2 changes only the token at a_2's position
    act2 = act.clone()
    act2[:, 2] += 1.0
    changed = (model.tokens(obs, act2, rew) - tokens).abs().sum((0, 2)) > 0
    assert changed.nonzero().flatten().tolist() == [int(((modality == ACTION) & (step == 2)).nonzero())]
    with pytest.raises(ConfigError, match="actions has shape"):
        model.tokens(obs, act[:, :-1], rew)


def test_mask_tokens_rates():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(400, 50, 8, generator=g) + 3.0  # no token is all zeros
    masked, selected = mask_tokens(tokens, 0.2, generator=g)
    n_sel = selected.sum().item()
    assert abs(n_sel / selected.numel() - 0.2) < 0.01
    zeroed = (masked == 0).all(-1)
    kept = (masked == tokens).all(-1)
    assert not (zeroed & ~selected).any() and kept[~selected].all()
    assert abs(zeroed[selected].float().mean().item() - 0.8) < 0.02
    kept_rate = kept[selected].float().mean().item()
    assert abs(kept_rate - 0.1) < 0.015
    replaced = selected & ~zeroed & ~kept
    assert abs(replaced.sum().item() / n_sel - 0.1) < 0.015
    # replacements are tokens of the batch
    flat = tokens.reshape(-1, 8)
    some = masked[replaced][:20]
    assert all((flat == row).all(-1).any() for row in some)
    with pytest.raises(ConfigError):
        mask_tokens(tokens, 1.5)


def test_info_nce_hand_computed_with_same_task_exclusion():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    tasks = torch.tensor([0, 0, 1])
    tau = 0.5
    c = 1 / math.sqrt(2)
    # cosine similarities S[i, j] = cos(z1_i, z2_j)
    s = [[c, 0.0, -1.0], [c, 1.0, 0.0], [1.0, c, -c]]
    # anchors of view 1: samples 0 and 1 share task 0, so each excludes the other
    l1 = [-s[0][0] / tau + math.log(math.exp(s[0][0] / tau) + math.exp(s[0][2] / tau)),
          -s[1][1] / tau + math.log(math.exp(s[1][1] / tau) + math.exp(s[1][2] / tau)),
          -s[2][2] / tau + math.log(sum(math.exp(x / tau) for x in s[2]))]
    # anchors of view 2 (columns of S)
    l2 = [-s[0][0] / tau + math.log(math.exp(s[0][0] / tau) + math.exp(s[2][0] / tau)),
          -s[1][1] / tau + math.log(math.exp(s[1][1] / tau) + math.exp(s[2][1] / tau)),
          -s[2][2] / tau + math.log(sum(math.exp(s[j][2] / tau) for j in range(3)))]
    expected = 0.5 * (sum(l1) / 3 + sum(l2) / 3)
    assert info_nce(z1, z2, tasks, tau).item() == pytest.approx(expected, rel=1e-5)
    # without the exclusion the loss is larger (the same-task window counts as a negative)
    assert info_nce(z1, z2, torch.tensor([0, 1, 2]), tau).item() > expected


def test_loss_is_finite_and_backpropagates():
    torch.manual_seed(0)
    model = TrajectoryTransformer(4, 2, window=6, d_model=16, n_heads=8, n_layers=1)
    obs, act, rew = torch.randn(8, 6, 4), torch.randn(8, 5, 2), torch.randn(8, 5)
    loss, metrics = model.loss(obs, act, rew, torch.arange(8) % 2)
    loss.backward()
    assert math.isfinite(metrics["loss"]) and metrics["loss"] == pytest.approx(
        metrics["reconstruction"] + 0.25 * metrics["info_nce"], rel=1e-5)
    assert all(p.grad is not None for p in model.obs_embed.parameters())
    emb = model.eval().embed(obs, act, rew)
    assert emb.shape == (8, 6)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(8))


def _toy_episodes(n, rng, length=30):
    """Two tasks on 3-d states and 2-d actions, s' = 0.8·s + B_k·a + noise: task 0's actions move
    dims 0 and 1 and its reward is s_0, task 1's actions move dim 2 and its reward is −s_2."""
    b = [np.array([[0.5, 0], [0, 0.5], [0, 0]]), np.array([[0, 0], [0, 0], [0.5, 0.5]])]
    episodes = []
    for i in range(n):
        task = i % 2
        s = rng.normal(size=3)
        obs, acts, rews = [s], [], []
        for _ in range(length):
            act = rng.uniform(-1, 1, 2)
            rews.append(s[0] if task == 0 else -s[2])
            s = 0.8 * s + b[task] @ act + 0.05 * rng.normal(size=3)
            acts.append(act)
            obs.append(s)
        episodes.append((task, np.array(obs), np.array(acts), np.array(rews)))
    return episodes

def test_train_transformer_fits_normalization_logs_and_stops_on_nan():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    eps = _toy_episodes(6, rng, length=12)
    model = TrajectoryTransformer(3, 2, window=6, d_model=16, n_heads=4, n_layers=1)
    logged = []
    metrics = train_transformer(lambda n: sample_windows(eps, 6, n, rng), model, 5, batch_size=8,
                                log_fn=lambda step, m: logged.append(step), log_every=2, norm_windows=500)
    assert logged == [1, 3, 4] and set(metrics) >= {"loss", "reconstruction", "info_nce"}
    all_obs = np.concatenate([e[1] for e in eps])
    np.testing.assert_allclose(model.obs_mean.numpy(), all_obs.mean(0), atol=0.15)
    assert bool(model.normalization_fitted)
    assert embed_windows(model, sample_windows(eps, 6, 7, rng), batch_size=3).shape == (7, 6)
    bad = [(0, e[1] * np.nan, e[2], e[3]) for e in eps]
    with pytest.raises(PolyTaskError, match="non-finite at step 0"):
        train_transformer(lambda n: sample_windows(bad, 6, n, rng), model, 2, batch_size=8)


def test_windows_uniform_over_start_positions_and_shapes():
    rng = np.random.default_rng(0)
    eps = [(3, np.arange(11.0)[:, None], np.zeros((10, 2)), np.arange(10.0)),  # 11 states: 7 starts for W=5
           (1, np.arange(100.0, 104.0)[:, None], np.zeros((3, 2)), np.zeros(3))]  # too short: skipped
    w = sample_windows(eps, 5, 7000, rng)
    assert w["obs"].shape == (7000, 5, 1) and w["actions"].shape == (7000, 4, 2) and w["rewards"].shape == (7000, 4)
    assert w["task_id"].dtype == np.int64 and set(w["task_id"]) == {3}
    starts = w["obs"][:, 0, 0].astype(int)
    counts = np.bincount(starts, minlength=7)
    assert len(counts) == 7 and counts.min() > 850 and counts.max() < 1150
    np.testing.assert_array_equal(w["rewards"][:, 0], w["obs"][:, 0, 0])  # r_t sits with s_t
    with pytest.raises(PolyTaskError, match="no episode holds"):
        sample_windows(eps[1:], 5, 3, rng)


def test_last_window_pads_the_episode_start():
    obs = np.arange(3.0)[:, None] + 1.0
    out = last_window(obs, np.ones((2, 2)), np.array([5.0, 6.0]), 5)
    np.testing.assert_array_equal(out["obs"][:, 0], [1, 1, 1, 2, 3])
    np.testing.assert_array_equal(out["actions"], [[0, 0], [0, 0], [1, 1], [1, 1]])
    np.testing.assert_array_equal(out["rewards"], [0, 0, 5, 6])
    long = last_window(np.arange(10.0)[:, None], np.arange(9.0)[:, None], np.arange(9.0), 4)
    np.testing.assert_array_equal(long["obs"][:, 0], [6, 7, 8, 9])
    np.testing.assert_array_equal(long["actions"][:, 0], [6, 7, 8])
    first = last_window(obs[:1], [], [], 3, action_dim=2)
    assert first["actions"].shape == (2, 2) and (first["obs"] == 1).all()
    with pytest.raises(PolyTaskError):
        last_window(obs, np.ones((1, 2)), [0.0], 5)


def test_trailing_windows_match_last_window_at_every_step():
    rng = np.random.default_rng(0)
    _, obs, act, rew = _toy_episodes(1, rng, length=7)[0]
    out = trailing_windows(obs, act, rew, 4)
    assert out["obs"].shape == (8, 4, 3) and out["actions"].shape == (8, 3, 2) and out["rewards"].shape == (8, 3)
    for t in range(8):
        ref = last_window(obs[:t + 1], act[:t], rew[:t], 4, action_dim=2)
        for k in ref:
            np.testing.assert_allclose(out[k][t], ref[k], rtol=1e-6, err_msg=f"{k} at t={t}")


def test_transformer_separates_two_toy_tasks():
    """With the default masking and loss weights, a short training makes held-out windows of two toy
    tasks (same state and action spaces, different dynamics and reward laws) nearest to their own
    task's centroid, far more often than the untrained model does."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train_eps, held_eps = _toy_episodes(40, rng), _toy_episodes(20, rng)
    model = TrajectoryTransformer(3, 2, window=10, d_model=16, n_heads=4, n_layers=1, ff_dim=32, dropout=0.0)
    w, h = sample_windows(train_eps, 10, 300, rng), sample_windows(held_eps, 10, 300, rng)

    def accuracy():
        return embedding_report(embed_windows(model, w), w["task_id"], ["a", "b"], n_components=4,
                                held_out=(embed_windows(model, h), h["task_id"]))["nearest_centroid_accuracy"]

    model.fit_normalization(w["obs"], w["rewards"])
    before = accuracy()
    train_transformer(lambda n: sample_windows(train_eps, 10, n, rng), model, 200, batch_size=64, lr=5e-3)
    after = accuracy()
    assert after > 0.9 and after > before + 0.2, (before, after)


def test_embedding_report_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]])
    ids = np.repeat(np.arange(3), 60)
    emb = centres[ids] + 0.2 * rng.normal(size=(180, 3))
    held_ids = np.repeat(np.arange(3), 10)
    held = centres[held_ids] + 0.2 * rng.normal(size=(30, 3))
    report = embedding_report(emb, ids, ["x", "y", "z"], held_out=(held, held_ids))
    assert report["ari"] > 0.9 and report["n_clusters"] == 3 and report["nearest_centroid_accuracy"] == 1.0
    assert set(report["per_task_accuracy"]) == {"x", "y", "z"}
    # shuffled labels: no agreement
    assert embedding_report(emb, rng.permutation(ids), ["x", "y", "z"])["ari"] < 0.1
    path = plot_embeddings(emb, ids, ["x", "y", "z"], tmp_path / "emb.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="index names"):
        embedding_report(emb, ids + 1, ["x", "y", "z"])


def test_shaping_weight_schedule():
    assert shaping_weight(0) == 1.0 and shaping_weight(8000) == 1.0
    assert shaping_weight(29000) == pytest.approx(0.5)
    assert shaping_weight(50000) == 0.0 and shaping_weight(10 ** 6) == 0.0
    assert shaping_weight(15, hold_until=10, zero_at=20) == pytest.approx(0.5)
    weights = [shaping_weight(s) for s in range(0, 60000, 1000)]
    assert all(a >= b for a, b in zip(weights, weights[1:]))
    with pytest.raises(ConfigError):
        shaping_weight(0, hold_until=10, zero_at=5)


def test_shaping_bonus_is_one_at_the_mean_and_decreases():
    mean, log_std = torch.tensor([[0.3, -1.0]]), torch.tensor([[-1.0, 0.0]])
    at_mean = torch.tanh(mean)
    assert shaping_bonus(at_mean, mean, log_std).item() == pytest.approx(1.0)
    offsets = [0.1, 0.2, 0.4]
    bonus = [shaping_bonus(at_mean + torch.tensor([[d, 0.0]]), mean, log_std).item() for d in offsets]
    assert bonus[0] > bonus[1] > bonus[2] > 0
    # Gaussian in each dim with σ = e^log σ: a one-σ step gives exp(−½)
    one_sigma = at_mean + torch.tensor([[math.exp(-1.0), 0.0]])
    assert shaping_bonus(one_sigma, mean, log_std).item() == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert shaping_bonus(torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(5, 2)).shape == (5,)


def test_collective_actor_shapes_distill_loss_and_sac_export():
    torch.manual_seed(0)
    actor = CollectiveActor(5, 3, embed_dim=6, hidden_dim=32)
    emb, obs = torch.randn(4, 6), torch.randn(4, 5)
    mean, log_std = actor(emb, obs)
    assert mean.shape == log_std.shape == (4, 3)
    assert (log_std >= -5).all() and (log_std <= 2).all()
    assert distill_loss(mean, log_std, mean, log_std).item() == 0.0
    target_mean, target_log_std = mean + 1.0, log_std - 2.0
    assert CollectiveActor.distill_loss(mean, log_std, target_mean, target_log_std).item() == pytest.approx(
        1.0 + 0.2 * 4.0)
    # folding a fixed embedding gives a SAC actor on the state alone with the same outputs
    sac = GaussianActor(5, 3, 32, 32, 2, False)
    sac.load_state_dict(actor.sac_actor_state_dict(emb[0]))
    for got, want in zip(sac(obs), actor(emb[:1].expand(4, -1), obs)):
        torch.testing.assert_close(got, want)
    with pytest.raises(ConfigError, match="expected"):
        actor(emb[:, :5], obs)


def test_collective_actor_distills_a_teacher():
    torch.manual_seed(0)
    teacher = GaussianActor(7, 2, 32, 32, 2, False)
    student = CollectiveActor(5, 2, embed_dim=2, hidden_dim=64)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    x = torch.randn(256, 7)
    with torch.no_grad():
        t_mean, t_log_std = teacher(x)
    first = None
    for _ in range(300):
        loss = distill_loss(*student(x[:, :2], x[:, 2:]), t_mean, t_log_std)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_distill_loss_on_the_executed_action_ignores_the_size_of_saturated_labels():
    """A scripted +1 is the label atanh(0.999) = 3.8: in pre-tanh space a student at μ = 2 (action
    0.96) costs more than one that is 0.3 off a small action; on the executed action the other way round."""
    saturated = torch.full((1, 1), float(np.arctanh(0.999)))
    zeros = torch.zeros(1, 1)
    at_two, small_target, small_miss = torch.full((1, 1), 2.0), torch.full((1, 1), 0.1), torch.full((1, 1), 0.4)
    pre_sat = distill_loss(at_two, zeros, saturated, zeros).item()
    pre_small = distill_loss(small_miss, zeros, small_target, zeros).item()
    act_sat = distill_loss(at_two, zeros, saturated, zeros, mean_loss="action").item()
    act_small = distill_loss(small_miss, zeros, small_target, zeros, mean_loss="action").item()
    assert pre_sat == pytest.approx((np.arctanh(0.999) - 2.0) ** 2) and pre_sat > 10 * pre_small
    assert act_sat == pytest.approx((0.999 - np.tanh(2.0)) ** 2, rel=1e-4) and act_small > 50 * act_sat
    # the log σ term is the same in both
    log_std, target_log_std = torch.zeros(2, 3), torch.ones(2, 3)
    assert distill_loss(zeros, log_std, zeros, target_log_std, mean_loss="action").item() == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="mean_loss"):
        distill_loss(zeros, zeros, zeros, zeros, mean_loss="tanh")


def test_collective_actor_state_normalization_round_trips_and_folds_into_sac_weights():
    from polytask.collective.policy import build_module, module_state

    torch.manual_seed(0)
    states = torch.randn(500, 5) * torch.tensor([0.01, 0.1, 1.0, 10.0, 0.0]) + torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0])
    actor = CollectiveActor(5, 3, embed_dim=6, hidden_dim=32, normalize_state=True)
    emb = torch.randn(4, 6)
    before = actor(emb, states[:4])
    actor.fit_state_normalization(states)
    torch.testing.assert_close(actor.state_mean, states.mean(0))
    assert actor.state_std[4] == 1.0  # a constant dimension is only centred
    # the actor sees standardised states: centimetre differences of a 1 cm-spread dimension matter
    inner = actor.actor(torch.cat([emb, (states[:4] - states.mean(0)) / actor.state_std], -1))
    for got, want in zip(actor(emb, states[:4]), inner):
        torch.testing.assert_close(got, want)
    assert not torch.allclose(before[0], actor(emb, states[:4])[0])
    # the statistics travel in the saved plain state and come back on load
    rebuilt = build_module(CollectiveActor, module_state(actor, actor.hparams))
    torch.testing.assert_close(rebuilt.state_std, actor.state_std)
    for got, want in zip(rebuilt(emb, states[:4]), actor(emb, states[:4])):
        torch.testing.assert_close(got, want)
    # folded into plain SAC actors' first layer: on [embedding, state], and on the state for a fixed embedding
    full = GaussianActor(11, 3, 32, 32, 2, False)
    full.load_state_dict(actor.gaussian_actor_state_dict())
    sac = GaussianActor(5, 3, 32, 32, 2, False)
    sac.load_state_dict(actor.sac_actor_state_dict(emb[0]))
    for got, want in zip(full(torch.cat([emb, states[:4]], -1)), actor(emb, states[:4])):
        torch.testing.assert_close(got, want)
    for got, want in zip(sac(states[:4]), actor(emb[:1].expand(4, -1), states[:4])):
        torch.testing.assert_close(got, want)
    # a collective saved before the option (no normalize_state, no statistics) still loads, unnormalised
    old = module_state(CollectiveActor(5, 3, embed_dim=6, hidden_dim=32), {"obs_dim": 5, "action_dim": 3,
                                                                           "embed_dim": 6, "hidden_dim": 32})
    assert not build_module(CollectiveActor, old).normalize_state
    with pytest.raises(ConfigError, match="normalize_state=False"):
        CollectiveActor(5, 3, hidden_dim=32).fit_state_normalization(states)
    with pytest.raises(ConfigError, match="expected"):
        actor.fit_state_normalization(states[:, :4])


@pytest.mark.slow
def test_transformer_identifies_scripted_metaworld_tasks():
    """Default-size transformer on windows of Meta-World's scripted policies (20% random actions) for
    three tasks, states compressed to 21-d: held-out episodes' windows go to their task's centroid."""
    pytest.importorskip("metaworld")
    from polytask.experts.metaworld import ScriptedExpert
    from polytask.suites.metaworld import MetaWorldEnv

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train_eps, held_eps = [], []
    for task_id, task in enumerate(["reach", "push", "pick-place"]):
        env, expert = MetaWorldEnv(task, episode_len=100), ScriptedExpert(task)
        for e in range(6):
            obs, _ = env.reset(seed=e)
            states, actions, rewards = [obs["state"]], [], []
            for _ in range(100):
                a = rng.uniform(-1, 1, 4).astype(np.float32) if rng.random() < 0.2 else expert.act(obs)
                obs, r, *_ = env.step(a)
                states, actions, rewards = states + [obs["state"]], actions + [a], rewards + [r]
            s = np.stack(states)
            (train_eps if e < 4 else held_eps).append(
                (task_id, np.concatenate([s[:, :18], s[:, 36:]], 1), np.stack(actions), np.array(rewards)))
        env.close()
    model = TrajectoryTransformer(21, 4)
    train_transformer(lambda n: sample_windows(train_eps, 20, n, rng), model, 150, batch_size=32)
    w, h = sample_windows(train_eps, 20, 300, rng), sample_windows(held_eps, 20, 300, rng)
    report = embedding_report(embed_windows(model, w), w["task_id"], ["reach", "push", "pick-place"],
                              held_out=(embed_windows(model, h), h["task_id"]))
    assert report["nearest_centroid_accuracy"] > 0.9, report
