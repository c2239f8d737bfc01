"""train_collective.py: its modes in sequence on 2 Meta-World tasks with short episodes, the missing-input
errors (with the command that makes the input), the embedding wrapper against the windows the actor is
distilled on, and the students' use of the collective (slow: every mode as a script, with a kill and a
resume of a SAC worker)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from tests.conftest import DEVICE, ROOT, kill_after_first_checkpoint, run_script

TASKS = "suite.task=[reach,drawer-close]"
#: 50 agent steps per episode (100 simulator steps at action repeat 2), small nets, few updates
TINY = ["suite.env.episode_len=100", "record.num_episodes=3", "transformer.steps=5", "transformer.batch_size=16",
        "transformer.report_windows=10", "distill.steps=50", "distill.batch_size=32", "log_every_steps=5",
        "eval.num_episodes=1", "eval.num_envs=1", "eval.video=off", DEVICE]


def compose(*overrides: str):
    """The config ``train_collective.py`` gets for ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import polytask.config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        return hydra_compose("config_collective", overrides=list(overrides))


def run(tmp_path, mode: str, *overrides: str):
    """``mode`` run in-process on the two tasks with :data:`TINY` settings under ``tmp_path``."""
    from polytask.training.collective_modes import run_mode

    cfg = compose(f"mode={mode}", TASKS, f"data_dir={tmp_path / 'data'}", *TINY, *overrides)
    return run_mode(cfg, tmp_path / "runs" / mode)


def test_missing_inputs_fail_with_the_command_that_makes_them(tmp_path):
    from polytask.errors import PolyTaskError

    with pytest.raises(PolyTaskError, match=r"python train_collective.py mode=record 'suite.task=\[reach\]'"):
        run(tmp_path, "train_transformer")
    with pytest.raises(PolyTaskError, match=r"mode=train_worker 'suite.task=\[reach\]' collective.teacher=sac"):
        run(tmp_path, "online_distill", "collective.teacher=sac")
    with pytest.raises(PolyTaskError, match=r"mode=online_distill 'suite.task=\[reach\]'"):
        run(tmp_path, "train_transformer", "collective.data=online")
    with pytest.raises(PolyTaskError, match=r"mode=train_transformer 'suite.task=\[reach,drawer-close\]'"):
        run(tmp_path, "distill_collective")
    with pytest.raises(PolyTaskError, match=r"-m mode=train_worker 'suite.task=\[reach\],\[drawer-close\]'"):
        run(tmp_path, "train_worker")
    with pytest.raises(PolyTaskError, match="random_prob"):
        run(tmp_path, "record", "collective.random_prob=1.5")
    with pytest.raises(PolyTaskError, match="online_distill.student='teacher'"):
        run(tmp_path, "online_distill", "online_distill.student=teacher")
    with pytest.raises(PolyTaskError, match="distill.mean_loss='tanh'"):
        run(tmp_path, "distill_collective", "distill.mean_loss=tanh")
    # as a script: the message and the command, no traceback
    p = run_script("train_collective.py", "mode=distill_collective", TASKS, f"data_dir={tmp_path / 'data'}",
                   f"hydra.run.dir={tmp_path / 'script'}", DEVICE)
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out, out[-2000:]
    assert "No collective weights at" in out and "python train_collective.py mode=train_transformer" in out


def test_record_transformer_collective_evaluate_in_sequence(tmp_path):
    from polytask.collective.data import collective_dataset_path, load_task_data
    from polytask.training.checkpoint import load_checkpoint
    from polytask.training.collective import collective_file
    from polytask.training.logger import read_metrics

    cfg = compose(TASKS, f"data_dir={tmp_path / 'data'}", *TINY, "collective.random_prob=0.5")
    recorded = run(tmp_path, "record", "collective.random_prob=0.5")
    assert set(recorded) == {"reach/teacher_success", "drawer-close/teacher_success"}
    assert collective_dataset_path(cfg, "reach").name == "reach-v0"
    assert "collective-scripted-p50" in str(collective_dataset_path(cfg, "reach"))
    episodes, meta = load_task_data(cfg, "reach")
    ep = episodes[0]
    assert len(episodes) == 3 and len(ep) == 50 and meta["random_prob"] == 0.5
    assert ep.infos["mean"].shape == ep.action.shape == (50, 4) and np.all(ep.infos["log_std"] == -1.0)
    # the label is the scripted action (pre-tanh); half the executed actions are random instead
    same = np.isclose(np.tanh(ep.infos["mean"]), ep.action, atol=1e-5).all(axis=1)
    assert 0.2 < same.mean() < 0.8

    run(tmp_path, "train_transformer", "collective.random_prob=0.5", "save_every_steps=3")
    report = run(tmp_path, "train_transformer", "collective.random_prob=0.5", "transformer.steps=8")  # resumes at 5
    steps = [r["step"] for r in read_metrics(tmp_path / "runs" / "train_transformer" / "train.csv") if "loss" in r]
    assert steps == [3, 5, 8] and load_checkpoint(tmp_path / "runs" / "train_transformer" / "checkpoints" /
                                               "latest.pt")["step"] == 8
    path = collective_file(cfg, "transformer")
    assert path.exists() and path.with_suffix(".png").stat().st_size > 1000
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved["n_tasks"] == 2 and 0 <= saved["nearest_centroid_accuracy"] <= 1 and saved == report
    assert {"ari", "n_clusters"} <= set(saved)

    distilled = run(tmp_path, "distill_collective", "collective.random_prob=0.5", "distill.normalize_state=false")
    assert distilled["labelled_steps"] == 2 * 3 * 50 and np.isfinite(distilled["distill_loss"])
    assert collective_file(cfg).exists() and "state_mean" not in load_checkpoint(collective_file(cfg))[
        "collective"]["actor"]["state"]
    # the state normaliser is fitted on every task's training states and saved with the actor
    run(tmp_path, "distill_collective", "collective.random_prob=0.5", "distill.normalize_state=true")
    actor = load_checkpoint(collective_file(cfg))["collective"]["actor"]
    states = np.concatenate([e.obs["state"][:-1] for t in ("reach", "drawer-close") for e in load_task_data(cfg, t)[0]])
    assert actor["kwargs"]["normalize_state"] is True
    np.testing.assert_allclose(actor["state"]["state_mean"].numpy(), states.mean(0), atol=1e-5)

    results = run(tmp_path, "evaluate", "collective.random_prob=0.5")
    for task in ("reach", "drawer-close"):
        assert 0 <= results[f"{task}/success"] <= 1 and results[f"{task}/teacher_success"] == 1.0
    assert results["success_vs_teachers"] == results["success"] / results["teacher_success"]
    assert json.loads((tmp_path / "runs" / "evaluate" / "results.json").read_text())["mode"] == "evaluate"


def test_online_distill_with_the_collective_acting(tmp_path):
    """DAgger with the collective acting: the round-0 collective (the recorded data's) acts on its own
    embedding, the teacher labels the states it visits, the data grow and the collective learns on them;
    a re-run with no more rounds changes nothing."""
    from polytask.collective.data import collective_dataset_path, load_task_data
    from polytask.collective.policy import Collective
    from polytask.errors import PolyTaskError
    from polytask.experts.metaworld import ScriptedExpert
    from polytask.training.checkpoint import load_checkpoint
    from polytask.training.collective import collective_file
    from polytask.training.collective_fit import step_windows

    dagger = ["online_distill.student=collective", "online_distill.rounds=1", "online_distill.episodes_per_round=1"]
    run(tmp_path, "record")
    with pytest.raises(PolyTaskError, match=r"mode=distill_collective 'suite.task=\[reach,drawer-close\]'"):
        run(tmp_path, "online_distill", *dagger)
    run(tmp_path, "train_transformer")
    run(tmp_path, "distill_collective")
    cfg = compose(TASKS, f"data_dir={tmp_path / 'data'}", *TINY, *dagger, "collective.data=online")
    start = Collective(load_checkpoint(collective_file(compose(TASKS, f"data_dir={tmp_path / 'data'}")))["collective"])

    results = run(tmp_path, "online_distill", *dagger)
    assert "collective-scripted-online-collective" in str(collective_dataset_path(cfg, "reach", online=True))
    for i, task in enumerate(("reach", "drawer-close")):
        episodes, meta = load_task_data(cfg, task)
        assert len(episodes) == 3 + 1 and meta["online_rounds"] == 1 and meta["recorded_episodes"] == 3
        assert meta["collective_success"] == [results[f"{task}/collective_success"]]
        assert meta["own_window_accuracy"] == [results[f"{task}/own_window_accuracy"]]
        ep = episodes[-1]
        # the teacher's labels at the states the collective visited
        expert = ScriptedExpert(task)
        teacher = np.stack([expert.act({"state": s}) for s in ep.obs["state"][:-1]])
        np.testing.assert_allclose(np.tanh(ep.infos["mean"]), np.clip(teacher, -0.999, 0.999), atol=1e-5)
        # the round-0 collective acted: tanh(mu) on the embedding of its own last W steps
        windows = step_windows((i, ep.obs["state"], ep.action, ep.reward), start.window)
        emb = np.stack([start.embed({k: v[t] for k, v in windows.items()}) for t in range(len(ep.action))])
        mean, _ = start.gaussian(torch.as_tensor(emb), torch.as_tensor(ep.obs["state"][:-1]))
        np.testing.assert_allclose(ep.action, torch.tanh(mean).numpy(), atol=1e-4)
        assert not np.allclose(ep.action, teacher, atol=1e-2)
    saved = load_checkpoint(collective_file(cfg))
    assert saved["dagger_rounds"] == 1 and (tmp_path / "runs" / "online_distill" / "collective-round1.pt").exists()
    after = Collective(saved["collective"])
    for part in ("transformer", "actor"):
        old, new = start.state_dict()[part]["state"], after.state_dict()[part]["state"]
        assert any(not torch.equal(old[k], new[k]) for k in old), part  # both went on learning
    before = collective_file(cfg).stat().st_mtime_ns
    again = run(tmp_path, "online_distill", *dagger)  # no more rounds asked: nothing is redone
    assert again == {k: v for k, v in results.items() if k.endswith(("success", "own_window_accuracy"))}
    assert collective_file(cfg).stat().st_mtime_ns == before
    online = ("collective.data=online", *dagger)
    with pytest.raises(PolyTaskError, match="DAgger round 1"):  # the downstream modes do not replace the round's files
        run(tmp_path, "distill_collective", *online)
    evaluated = run(tmp_path, "evaluate", *online)  # while they find them by convention
    assert set(evaluated) >= {"reach/success", "drawer-close/success", "success_vs_teachers"}


def _tiny_collective(obs_dim: int = 39, action_dim: int = 4, window: int = 5, normalize_state: bool = False) -> dict:
    """A random collective (transformer + actor) as plain data; ``normalize_state``: its actor standardises
    the state with statistics fitted on random states far from zero mean and unit spread."""
    from polytask.collective.policy import module_state
    from polytask.nets.collective import CollectiveActor
    from polytask.nets.trajectory_transformer import TrajectoryTransformer

    torch.manual_seed(0)
    t_kwargs = {"obs_dim": obs_dim, "action_dim": action_dim, "window": window, "d_model": 16, "n_heads": 2,
                "n_layers": 1, "ff_dim": 32}
    a_kwargs = {"obs_dim": obs_dim, "action_dim": action_dim, "embed_dim": 6, "hidden_dim": 32}
    actor = CollectiveActor(**a_kwargs, normalize_state=normalize_state)
    if normalize_state:
        a_kwargs["normalize_state"] = True
        actor.fit_state_normalization(torch.randn(100, obs_dim) * torch.linspace(0.3, 3, obs_dim) + 0.5)
    return {"transformer": module_state(TrajectoryTransformer(**t_kwargs), t_kwargs),
            "actor": module_state(actor, a_kwargs)}


def test_embedding_wrapper_sees_the_windows_the_actor_is_distilled_on():
    """At every step the wrapper's embedding is the transformer's embedding of the window ending at that
    state, exactly as distill_collective computes it from the recorded episode."""
    from polytask.collective.policy import EMBEDDING_KEY, Collective, TrajectoryEmbedding
    from polytask.suites.metaworld import make
    from polytask.training.collective_fit import step_windows

    collective = Collective(_tiny_collective())
    env = TrajectoryEmbedding(make("reach", episode_len=30), collective)
    obs, _ = env.reset(seed=0)
    states, actions, rewards, embs = [obs["state"]], [], [], [obs[EMBEDDING_KEY]]
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = rng.uniform(-1, 1, 4).astype(np.float32)
        obs, r, *_ = env.step(a)
        states.append(obs["state"])
        actions.append(a)
        rewards.append(r)
        embs.append(obs[EMBEDDING_KEY])
    assert env.observation_space[EMBEDDING_KEY].shape == (6,)
    windows = step_windows((0, np.stack(states), np.stack(actions), np.asarray(rewards, np.float32)), 5)
    expected = [collective.embed({k: v[t] for k, v in windows.items()}) for t in range(12)]
    np.testing.assert_allclose(np.stack(embs[:12]), np.stack(expected), atol=1e-5)
    assert not np.allclose(embs[0], embs[8])  # the embedding follows the trajectory


def _batch(n: int = 8) -> dict:
    g = torch.Generator().manual_seed(1)
    obs = {"state": torch.randn(n, 39, generator=g), "collective_embedding": torch.randn(n, 6, generator=g)}
    nxt = {k: torch.randn(v.shape, generator=g) for k, v in obs.items()}
    return {"obs": obs, "next_obs": nxt, "action": torch.rand(n, 4, generator=g) * 2 - 1,
            "reward": torch.randn(n, generator=g), "discount": torch.full((n,), 0.99)}


def test_shaped_student_adds_the_weighted_bonus_to_the_reward(monkeypatch):
    from polytask.agents.collective_sac import ShapedSACAgent
    from polytask.agents.sac import SACAgent
    from polytask.collective.shaping import shaping_bonus

    agent = ShapedSACAgent({"state": (39,)}, 4, "features", collective=_tiny_collective(), hold_until=10, zero_at=20,
                           hidden_dim=32)
    seen = []
    monkeypatch.setattr(SACAgent, "update", lambda self, batch, step=0: seen.append(batch["reward"]) or {})
    batch = _batch()
    mean, log_std = agent.collective.gaussian(batch["obs"]["collective_embedding"], batch["obs"]["state"])
    batch["action"][:4] = torch.tanh(mean[:4])  # the collective's own mean action: bonus 1
    bonus = shaping_bonus(batch["action"], mean, log_std)
    for step, weight in ((5, 1.0), (15, 0.5), (25, 0.0)):
        metrics = agent.update(batch, step)
        assert metrics["shaping_weight"] == weight
        torch.testing.assert_close(seen[-1], batch["reward"] + weight * bonus)
    torch.testing.assert_close(bonus[:4], torch.ones(4))
    assert (bonus[4:] < 0.5).all()
    assert "collective" in agent.state_dict()  # the weights file rebuilds the student alone


@pytest.mark.parametrize("normalize_state", [False, True])
def test_finetuned_student_starts_as_the_collective_actor(normalize_state):
    from polytask.agents.collective_sac import CollectiveSACAgent

    collective = _tiny_collective(normalize_state=normalize_state)
    agent = CollectiveSACAgent({"state": (39,)}, 4, "features", collective=collective, hidden_dim=32)
    obs = _batch()["obs"]
    mean, log_std = agent.collective.gaussian(obs["collective_embedding"], obs["state"])
    np.testing.assert_allclose(agent.act({k: v.numpy() for k, v in obs.items()}, eval_mode=True),
                               torch.tanh(mean).numpy(), atol=1e-6)
    agent.update(_batch(), step=0)  # the actor learns from here on
    assert not np.allclose(agent.act({k: v.numpy() for k, v in obs.items()}), torch.tanh(mean).numpy())


@pytest.mark.slow
def test_every_mode_as_a_script_with_a_killed_and_resumed_worker(tmp_path):
    data = f"data_dir={tmp_path / 'data'}"
    online = ["num_train_steps=300", "update_after_steps=100", "agent.num_expl_steps=100", "batch_size=32",
              "eval_every_steps=300", "save_every_steps=100", "agent.hidden_dim=64", "replay_capacity=5000"]
    worker_run = tmp_path / "worker"
    args = [sys.executable, "train_collective.py", "mode=train_worker", "suite.task=[reach]", data,
            f"hydra.run.dir={worker_run}", *TINY, *online]
    kill_after_first_checkpoint(args, worker_run, timeout=300.0)
    p = run_script(*args[1:])
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert "Resumed from" in p.stdout + p.stderr
    assert (tmp_path / "data" / "datasets" / "polytask" / "metaworld" / "collective-sac" / "reach-v0").exists()
    p = run_script("train_collective.py", "mode=online_distill", "suite.task=[reach]", "collective.teacher=sac",
                   "online_distill.rounds=2", "online_distill.episodes_per_round=1",
                   "online_distill.updates_per_round=20", data, f"hydra.run.dir={tmp_path / 'od'}", *TINY)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]

    for mode in ("record", "train_transformer", "distill_collective", "evaluate"):
        p = run_script("train_collective.py", f"mode={mode}", TASKS, data, f"hydra.run.dir={tmp_path / mode}", *TINY)
        assert p.returncode == 0, (mode, (p.stdout + p.stderr)[-3000:])
    for mode in ("train_student", "finetune_student"):
        p = run_script("train_collective.py", f"mode={mode}", "suite.task=[drawer-open]", data, *TINY, *online,
                       "collective.tasks=[reach,drawer-close]", f"hydra.run.dir={tmp_path / mode}")
        assert p.returncode == 0, (mode, (p.stdout + p.stderr)[-3000:])
        assert json.loads((tmp_path / mode / "results.json").read_text())["step"] == 300
