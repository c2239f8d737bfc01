"""One contract over every agent config in ``cfgs/agent/`` (as Stable-Baselines3 tests all its
algorithms alike): actions, update metrics, save/load, seeding and exported weights; and an exported
multi-task student that loads and scores like any other policy. A new agent config is picked up
from the folder; tests/agent_harness.py builds each agent and feeds it as its trainer does."""

import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from polytask.agents.frozen import policy_modules
from polytask.data.goals import onehot_goals
from polytask.errors import ConfigError
from polytask.training.inputs import base_policy as load_base_policy
from polytask.training.run import env_factory, tasks_of
from polytask.training.weights import load_policy, read_weights
from polytask.utils import metric_floats
from tests.agent_harness import (
    AGENT_NAMES,
    act_obs,
    acting_space,
    assert_same_state,
    batch_sampler,
    build,
    checksum,
    export,
    seeded_act,
    small_cfg,
    spaces_env,
    takes_pixels,
)
from tests.conftest import DEVICE, run_script, torch_round_trip

with tempfile.TemporaryDirectory() as _tmp:
    #: every agent on state features, and those that take pixels on pixels
    CASES = [(n, "features") for n in AGENT_NAMES] + [(n, "pixels") for n in AGENT_NAMES if takes_pixels(n, Path(_tmp))]
each_agent = pytest.mark.parametrize("name, obs_type", CASES)


def _trained(name, obs_type, seed, data_dir, updates=3):
    """``(cfg, agent, sample, metrics)``: the agent after ``updates`` updates from ``seed``, and its
    batch sampler."""
    cfg, agent = build(name, seed, data_dir, obs_type)
    sample = batch_sampler(cfg, agent)
    return cfg, agent, sample, [metric_floats(agent.update(sample(), step)) for step in range(updates)]


def _weights_only_round_trip(state):
    """``state`` through ``torch.save`` and ``torch.load(weights_only=True)``: an agent's state must be
    tensors and plain data, which loads without running code from the file."""
    f = io.BytesIO()
    torch.save(state, f)
    f.seek(0)
    return torch.load(f, weights_only=True)


@each_agent
def test_act_gives_bounded_float32_actions(name, obs_type, tmp_path):
    cfg, agent, _, _ = _trained(name, obs_type, 1, tmp_path)
    if not getattr(agent, "is_policy", True):
        pytest.skip(f"agent={name} scores states and does not act")
    weights = torch_round_trip(agent.state_dict())
    for batch_size in (5, 1):  # the evaluator's batches, the online trainer's single observation
        obs = act_obs(cfg, batch_size)
        given = {k: np.copy(v) for k, v in obs.items()}
        for eval_mode, step in ((True, 0), (False, 0), (False, 10**6)):  # train mode: exploring, then the policy's
            agent.train(not eval_mode)
            action = agent.act(obs, eval_mode=eval_mode, step=step)
            assert isinstance(action, np.ndarray) and action.dtype == np.float32, (eval_mode, type(action))
            assert action.shape == (batch_size, acting_space(cfg, agent).shape[0]), (eval_mode, action.shape)
            assert np.isfinite(action).all() and np.abs(action).max() <= 1.0, (eval_mode, action)
        assert_same_state(given, obs, "obs")  # acting leaves the observations alone
    assert_same_state(weights, agent.state_dict())  # and the weights


@each_agent
def test_update_returns_finite_float_metrics(name, obs_type, tmp_path):
    cfg, agent, sample, history = _trained(name, obs_type, 1, tmp_path)
    before = checksum(agent)
    metrics = agent.update(sample(), len(history))
    assert checksum(agent) != before  # an update learns
    assert isinstance(metrics, dict) and metrics
    bad = {k: v for k, v in metrics.items() if not (isinstance(k, str) and (
        type(v) is float or (torch.is_tensor(v) and v.dim() == 0 and v.is_floating_point() and not v.requires_grad)))}
    assert not bad, f"metrics must be Python floats or 0-d float tensors without gradient, got {bad}"
    history.append(metric_floats(metrics))
    for row in history:
        assert all(math.isfinite(v) for v in row.values()), row
    json.dumps(history)  # the loggers write them as they are


@each_agent
def test_state_dict_round_trip_acts_and_trains_the_same(name, obs_type, tmp_path):
    cfg, agent, sample, _ = _trained(name, obs_type, 1, tmp_path)
    _, restored = build(name, 2, tmp_path, obs_type)  # other initial weights, overwritten by the load
    restored.load_state_dict(_weights_only_round_trip(agent.state_dict()))
    assert_same_state(agent.state_dict(), restored.state_dict())
    obs = act_obs(cfg)
    for a in (agent, restored):
        a.train(False)
    np.testing.assert_array_equal(seeded_act(agent, obs), seeded_act(restored, obs))
    # training goes on identically (the optimiser state came along) on the same batch and noise
    batch = sample()
    after = []
    for a, b in ((agent, batch), (restored, torch_round_trip(batch))):
        a.train(True)
        torch.manual_seed(5)
        after.append(metric_floats(a.update(b, 3)))
    assert after[0] == after[1]
    assert_same_state(agent.state_dict(), restored.state_dict())


@each_agent
def test_same_seed_same_updates(name, obs_type, tmp_path):
    _, first, _, metrics = _trained(name, obs_type, 3, tmp_path / "a")
    _, second, _, again = _trained(name, obs_type, 3, tmp_path / "b")
    assert metrics == again
    assert_same_state(first.state_dict(), second.state_dict())
    _, _, _, other = _trained(name, obs_type, 4, tmp_path / "c")
    assert other != metrics  # the seed matters, so the equality above is not vacuous


@each_agent
def test_exported_weights_load_and_act_the_same(name, obs_type, tmp_path):
    cfg, agent, _, _ = _trained(name, obs_type, 1, tmp_path)
    policy = load_policy(export(cfg, agent), spaces_env(cfg))
    assert type(policy) is type(agent)
    assert not any(p.requires_grad for m in policy_modules(policy).values() for p in m.parameters())
    agent.train(False)
    obs = act_obs(cfg)
    np.testing.assert_array_equal(seeded_act(agent, obs), seeded_act(policy, obs))


def test_distilled_student_loads_and_scores_through_evaluate(tmp_path):
    """A distillation run's exported student (2 Meta-World tasks, features) is rebuilt from its file
    alone, goals included, and ``evaluate.py`` scores it on both tasks as the run's final eval did."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    p = run_script("train_distill.py", f"data_dir={data_dir}", f"hydra.run.dir={run}", "num_envs_to_distil=2",
                   "relabel.episodes_per_task=2", "num_train_steps=20", "log_every_steps=10", "eval_every_steps=20",
                   "save_every_steps=20", "eval.num_episodes=2", "eval.video=off", "agent.hidden_dim=32", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    (weights,) = (data_dir / "weights" / "distill").rglob("*.pt")
    run_cfg = OmegaConf.create(read_weights(weights)["config"])
    tasks = tasks_of(run_cfg)
    env = env_factory(run_cfg)(tasks[0])
    try:
        student = load_policy(weights, env)
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    np.testing.assert_array_equal(student.goals.numpy(), onehot_goals(2))
    both = student.act({"state": np.stack([obs["state"]] * 2), "task_id": np.arange(2)})
    assert both.shape == (2, env.action_space.shape[0]) and not np.array_equal(both[0], both[1])  # goal-conditioned

    ev = run_script("evaluate.py", f"policy={weights}", "eval.num_episodes=2", DEVICE,
                    f"hydra.run.dir={tmp_path / 'ev'}")
    assert ev.returncode == 0, ev.stderr[-3000:]
    scored = json.loads((tmp_path / "ev" / "results.json").read_text())
    trained = json.loads((run / "results.json").read_text())
    keys = [f"{t}/{m}" for t in tasks for m in ("success", "return")] + ["success", "return"]
    assert {k: scored[k] for k in keys} == {k: trained[k] for k in keys}  # both tasks, the run's eval episodes


def test_load_policy_explains_files_it_cannot_rebuild(tmp_path):
    cfg, agent = build("distill", 1, tmp_path)
    saved = torch.load(export(cfg, agent), weights_only=False)
    del saved["agent"]["goals"]  # a student's goals are needed to rebuild it
    torch.save(saved, tmp_path / "no_goals.pt")
    with pytest.raises(ConfigError, match="lacks goals in its saved agent state"):
        load_policy(tmp_path / "no_goals.pt", spaces_env(cfg))
    cfg, agent = build("drqv2", 1, tmp_path)
    saved = torch.load(export(cfg, agent), weights_only=False)
    saved["config"]["agent"]["twin_q"] = "max"  # the constructor refuses it
    torch.save(saved, tmp_path / "bad_option.pt")
    with pytest.raises(ConfigError, match="twin_q must be one of"):
        load_policy(tmp_path / "bad_option.pt", spaces_env(cfg))


def test_multitask_student_as_a_single_task_base_policy(tmp_path):
    cfg, student = build("distill", 1, tmp_path)
    cfg.suite.task = ["reach", "push"]
    path = export(cfg, student)
    student.train(False)
    obs = act_obs(cfg)
    as_push = student.act({**obs, "task_id": np.ones(len(obs["state"]), np.int64)})
    run = small_cfg("residual", 1, tmp_path)
    run.suite.task, run.base_policy = ["push"], str(path)
    base = load_base_policy(run, spaces_env(run))  # a push run passes task_id 0: the student acts for push
    np.testing.assert_array_equal(base.act({**obs, "task_id": np.zeros(len(obs["state"]), np.int64)}), as_push)
    run.suite.task = ["pick-place"]
    with pytest.raises(ConfigError, match=r"trained on \['reach', 'push'\], not on pick-place"):
        load_base_policy(run, spaces_env(run))
