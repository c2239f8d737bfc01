"""The robot gym's simulated stand-in: env checker, scripted experts, the software fence, teleop
recording through a fake key source, and tiny BC / ROT / distillation runs of the robot scripts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from polytask.data.collect import collect_episodes
from polytask.data.demos import load_episodes
from polytask.errors import ConfigError
from polytask.experts.robotgym import ScriptedExpert
from polytask.experts.teleop import FakeKeys, TeleopExpert, keys_to_action
from polytask.suites import UnknownTaskError, make_env
from polytask.suites.robotgym import TASKS
from tests.conftest import DEVICE, compose_cfg, exported_weights, run_script


def _cfg(*overrides):
    return compose_cfg("suite=robotgym", "suite/robotgym_task=all", *overrides)


@pytest.mark.parametrize("obs_type", ["features", "pixels"])
def test_env_checker_passes(obs_type):
    env = make_env(_cfg().suite, "boxopen", obs_type)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (6,) and env.action_space.shape == (3,)
    np.testing.assert_allclose(obs["state"][:3], [0.4, 0.0, 0.25], atol=0.002)  # home, in m
    np.testing.assert_allclose(obs["state"][3:], [np.pi, 0, 0], atol=0.01)       # pointing down, in rad
    if obs_type == "pixels":
        assert obs["pixels"].shape == (9, 84, 84) and obs["pixels"].dtype == np.uint8 and obs["pixels"].std() > 0
    assert env.render().shape == (256, 256, 3)
    env.close()


@pytest.mark.parametrize("task", TASKS)
def test_scripted_expert_solves_each_task_and_idling_does_not(task):
    env = make_env(_cfg().suite, task, "features", frame_stack=1)
    expert = ScriptedExpert(task, env)
    episodes, stats = collect_episodes(env, expert.act, 2, keep_failed=True)
    assert stats.successes == 2, f"the scripted expert should solve {task}"
    idle, _ = collect_episodes(env, lambda obs: np.zeros(3, np.float32), 1, keep_failed=True)
    assert idle[0].success.max() == 0, f"{task} must not count as done without acting"
    assert len(episodes[0]) == env.unwrapped.task_spec.episode_len
    env.close()


def test_the_arm_stays_inside_the_workspace():
    env = make_env(_cfg().suite, "reach", "features")
    env.reset(seed=0)
    spec = env.unwrapped.task_spec
    for action in ([1, 1, 1], [-1, -1, -1]):
        for _ in range(20):
            obs, *_ = env.step(np.array(action, np.float32))
        pos = obs["state"][:3] * 1000
        assert np.all(pos <= spec.high + 5) and np.all(pos >= spec.low - 5), pos
        corner = spec.high if action[0] > 0 else spec.low
        np.testing.assert_allclose(pos, corner, atol=5)  # it got there, and no further
    env.close()


def test_unknown_task_and_missing_settings():
    with pytest.raises(UnknownTaskError, match="boxopen"):
        make_env(_cfg().suite, "box-open", "features")
    with pytest.raises(ConfigError, match="suite/robotgym_task=drawerclose"):
        make_env(compose_cfg("suite=robotgym").suite, "drawerclose", "features")  # only boxopen's settings loaded


def test_scripted_experts_need_the_simulation():
    class RealEnv:
        unwrapped = type("Unwrapped", (), {"robot": object()})()

    with pytest.raises(ConfigError, match="teleop=keyboard"):
        ScriptedExpert("boxopen", RealEnv())


def test_key_mapping():
    np.testing.assert_array_equal(keys_to_action("wa", gripper=False), [1, 1, 0])
    np.testing.assert_array_equal(keys_to_action("wwsf", gripper=False), [1, 0, -1])  # w twice clips, s cancels one
    np.testing.assert_array_equal(keys_to_action("rco", gripper=True), [0, 0, 1, 1])   # the last gripper key wins
    np.testing.assert_array_equal(keys_to_action("xyz?", gripper=True), [0, 0, 0, 0])


def test_teleop_demos_are_recorded_by_collect_demos(tmp_path, monkeypatch):
    """collect_demos.py's path with teleop=keyboard, the terminal replaced by scripted key presses:
    what the person pressed is what the dataset holds, and the arm moved accordingly."""
    from polytask.experts import teleop
    from polytask.training.demos import collect_task_demos, demo_path

    presses = ["f"] * 3 + ["w"] * 4 + [""] * 40
    monkeypatch.setattr(teleop, "key_source", lambda kind: FakeKeys(presses))
    cfg = compose_cfg("suite=robotgym", "suite/robotgym_task=reach", "teleop=keyboard", f"data_dir={tmp_path}",
                      "keep_failed_demos=true")
    collect_task_demos(cfg, "reach", 1)
    (ep,) = load_episodes(demo_path(cfg, "reach"), 1, obs_keys=("state",))
    expected = np.array([keys_to_action(k, gripper=False) for k in presses[:40]])
    np.testing.assert_array_equal(ep.action, expected)
    moved = (ep.obs["state"][-1, :3] - ep.obs["state"][0, :3]) * 1000
    np.testing.assert_allclose(moved, [100, 0, -75], atol=3)  # 4 × 25 mm forward, 3 × 25 mm down


def test_teleop_expert_polls_once_per_step():
    keys = FakeKeys(["w", "", "d"])
    expert = TeleopExpert(keys)
    actions = [expert.act({}) for _ in range(4)]
    np.testing.assert_array_equal(actions, [[1, 0, 0], [0, 0, 0], [0, -1, 0], [0, 0, 0]])


def test_training_env_is_lent_to_the_evaluator():
    from polytask.training.run import make_evaluator

    cfg = compose_cfg("suite=robotgym", "suite/robotgym_task=reach", "eval.num_episodes=2")
    env = make_env(cfg.suite, "reach", "features")
    evaluator = make_evaluator(cfg, train_env=env)
    lent = evaluator.make_env("reach")
    assert lent.unwrapped is env.unwrapped and evaluator.num_envs == 1
    metrics = evaluator.run(lambda obs: np.zeros((len(obs["state"]), 3), np.float32))
    assert metrics["reach/success"] == 0.0
    env.reset(seed=0)  # still open: the evaluator closed only its loan
    env.close()


TINY = ["eval.video=off", "agent.hidden_dim=64", "batch_size=32", DEVICE]


def test_bc_then_rot_on_the_sim_with_the_published_robot_lines(tmp_path):
    """train_robot.py: BC from one scripted demo (collected first), then ROT from its weights with
    OT rewards and the BC term, evaluated on its training env."""
    common = ["suite=robotgym", "obs_type=features", "suite/robotgym_task=reach", "num_demos_per_task=1",
              f"data_dir={tmp_path}", *TINY]
    p = run_script("train_robot.py", "agent=bc", *common, "num_train_steps=300", "eval_every_steps=300",
                   "eval.num_episodes=4", f"hydra.run.dir={tmp_path / 'bc'}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "collected with the robotgym expert" in p.stderr + p.stdout
    bc = json.loads((tmp_path / "bc" / "results.json").read_text())
    assert bc["reach/success"] >= 0.5, bc
    p = run_script("train_robot.py", "agent=drqv2", *common, "load_bc=true", "bc_regularize=true",
                   "num_train_steps=120", "eval_every_steps=100", "update_after_steps=60", "eval.num_episodes=2",
                   "replay_capacity=2000", "log_every_steps=40", f"hydra.run.dir={tmp_path / 'rot'}")
    assert p.returncode == 0, p.stderr[-3000:]
    log = p.stderr + p.stdout
    assert "Starting from BC weights" in log and exported_weights(p).exists()
    rows = (tmp_path / "rot" / "eval.csv").read_text().splitlines()
    assert any(r.startswith("100,reach/success") for r in rows) and any(r.startswith("120,reach/success") for r in rows)
    train = (tmp_path / "rot" / "train.csv").read_text()
    assert "episode_reward" in train  # OT rewards at the end of each episode


def test_robot_distillation_runs_on_the_sim(tmp_path):
    p = run_script("train_robot_distill.py", "agent=distill", "suite=robotgym", "obs_type=features",
                   "num_envs_to_distil=2", "relabel.episodes_per_task=2", "num_train_steps=50", "eval_every_steps=50",
                   "eval.num_episodes=1", f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", *TINY)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {"boxopen/success", "drawerclose/success"} <= set(results)


def test_xarm_backend_without_address_or_demos_exits_with_what_to_do(tmp_path, monkeypatch):
    """No robot here: the run stops before touching one, saying how to give the address, then (with
    an address) that demos on the real arm come from teleoperation."""
    common = ["agent=bc", "suite=robotgym", "suite.backend=xarm", f"data_dir={tmp_path}",
              f"hydra.run.dir={tmp_path / 'run'}", DEVICE]
    monkeypatch.delenv("XARM_IP", raising=False)
    p = run_script("train_robot.py", *common)
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out and "XARM_IP" in out, out[-2000:]
    monkeypatch.setenv("XARM_IP", "192.0.2.1")  # a documentation address: never contacted
    p = run_script("train_robot.py", *common)
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out and "teleop=keyboard" in out, out[-2000:]


def test_published_pixel_lines_run_on_the_sim(tmp_path):
    """The README's robot lines as written (pixels, boxopen, one demo), shrunk: BC, then ROT from it
    with OT rewards on the encoder's features, evaluated on its training env with a video."""
    common = ["suite=robotgym", "obs_type=pixels", "suite/robotgym_task=boxopen", "num_demos_per_task=1",
              "agent.hidden_dim=32", "agent.feature_dim=32", "batch_size=8", "eval.num_episodes=1", DEVICE,
              f"data_dir={tmp_path}"]
    p = run_script("train_robot.py", "agent=bc", *common, "num_train_steps=20", "eval_every_steps=20",
                   "eval.video=off", f"hydra.run.dir={tmp_path / 'bc'}")
    assert p.returncode == 0, p.stderr[-3000:]
    p = run_script("train_robot.py", "agent=drqv2", *common, "load_bc=true", "bc_regularize=true",
                   "num_train_steps=60", "update_after_steps=40", "eval_every_steps=60", "log_every_steps=20",
                   f"hydra.run.dir={tmp_path / 'rot'}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "rot" / "videos" / "boxopen_60.mp4").exists()
    assert "episode_reward" in (tmp_path / "rot" / "train.csv").read_text()
