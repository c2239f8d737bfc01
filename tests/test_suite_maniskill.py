"""ManiSkill 3 suite: spaces, seeding, rollouts, and demos from ManiSkill's motion planner.

Tests that build envs skip (with the reason) where ManiSkill or a Vulkan driver is missing, and the
demo test where the planner environment is missing: ``bash scripts/setup_maniskill.sh`` installs all.
"""

import numpy as np
import pytest

from polytask.suites import UnknownTaskError, describe_task
from polytask.suites.maniskill import EPISODE_LEN, TASKS, availability
from tests.conftest import compose_cfg, random_episode

_ok, _why = availability()
needs_maniskill = pytest.mark.skipif(not _ok, reason=_why)


def _planner_or_skip() -> str:
    from polytask.experts.maniskill import PlannerUnavailableError, find_planner_python

    try:
        return find_planner_python()
    except PlannerUnavailableError as e:
        pytest.skip(f"no motion-planner environment: {e}")


# -- without ManiSkill ---------------------------------------------------------------------------------
def test_config_and_task_names():
    cfg = compose_cfg("suite=maniskill")
    assert list(cfg.suite.task) == ["PickCube"]
    assert cfg.suite.env._target_ == "polytask.suites.maniskill.make"
    assert cfg.suite.env.control_mode == "pd_joint_delta_pos"
    assert cfg.suite.expert._target_ == "polytask.experts.maniskill.MotionPlannerExpert"
    assert list(compose_cfg("suite=maniskill", "suite.task=[StackCube,PegInsertionSide]").suite.task) == \
        ["StackCube", "PegInsertionSide"]
    assert TASKS == ["PickCube", "StackCube", "PegInsertionSide"]
    assert describe_task(cfg.suite, "StackCube") == "stack the red cube on top of the green cube"


def test_bad_options_say_what_to_do():
    from polytask.suites.maniskill import ManiSkillEnv

    with pytest.raises(UnknownTaskError, match="Did you mean PickCube") as e:
        ManiSkillEnv("PickCub")
    assert "PegInsertionSide" in str(e.value)
    with pytest.raises(ValueError, match="state observations only.*obs_type=features"):
        ManiSkillEnv("PickCube", obs_type="pixels")
    with pytest.raises(ValueError, match="control_mode must be one of"):
        ManiSkillEnv("PickCube", control_mode="pd_joint_pos")


def test_missing_planner_environment_gives_the_setup_command(tmp_path, monkeypatch):
    from polytask.experts.maniskill import PlannerUnavailableError, find_planner_python

    with pytest.raises(PlannerUnavailableError, match="scripts/setup_maniskill.sh"):
        find_planner_python(tmp_path / "nowhere")
    monkeypatch.setenv("POLYTASK_MANISKILL_PLANNER", str(tmp_path / "nowhere"))
    with pytest.raises(PlannerUnavailableError, match="POLYTASK_MANISKILL_PLANNER"):
        find_planner_python()


def test_broken_planner_environment_error_quotes_its_log(tmp_path):
    from polytask.experts.maniskill import PlannerUnavailableError, PlannerWorker

    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho 'Segmentation fault in mplib' >&2\nexit 139\n")
    python.chmod(0o755)
    with pytest.raises(PlannerUnavailableError, match="(?s)exited with code 139.*Segmentation fault in mplib"
                                                      ".*setup_maniskill.sh"):
        PlannerWorker("PickCube-v1", str(python), timeout_s=30)


# -- with ManiSkill ------------------------------------------------------------------------------------
@needs_maniskill
def test_spaces_dtypes_and_env_checker():
    from gymnasium.utils.env_checker import check_env

    from polytask.suites.maniskill import ManiSkillEnv

    env = ManiSkillEnv("PickCube")
    check_env(env, skip_render_check=True)
    assert env.observation_space["state"].shape == (42,)
    assert env.action_space.shape == (8,) and env.action_space.dtype == np.float32
    assert env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    obs, info = env.reset(seed=0)
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (42,)
    np.testing.assert_allclose(obs["state"][:9], env.robot_qpos(), atol=1e-6)  # state starts with qpos
    obs, reward, terminated, truncated, info = env.step(np.zeros(8, np.float32))
    assert isinstance(reward, float) and 0.0 <= reward <= 1.0 and info["success"] in (0.0, 1.0)
    assert not terminated and not truncated
    env.close()


@needs_maniskill
def test_seeded_reset_repeats_and_differs():
    from polytask.suites.maniskill import ManiSkillEnv

    env = ManiSkillEnv("StackCube")
    a, _ = env.reset(seed=3)
    env.step(env.action_space.sample())
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    assert a["state"].shape == (48,)
    np.testing.assert_array_equal(a["state"], b["state"])
    assert not np.allclose(a["state"], c["state"]), "the initial state should change with the seed"
    env.close()
    other = ManiSkillEnv("StackCube")
    np.testing.assert_array_equal(other.reset(seed=3)[0]["state"], a["state"])  # another env, same seed
    other.close()


@needs_maniskill
def test_random_rollout_is_truncated_at_the_episode_length():
    from polytask.suites.maniskill import make

    env = make("PickCube", "features", seed=0, episode_len=30)
    steps, ret, terminated, info = random_episode(env)
    assert steps == 30 and not terminated and 0.0 <= ret <= 30.0 and info["success"] in (0.0, 1.0)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(env.action_space.sample())
    env.close()
    assert EPISODE_LEN == {"PickCube": 100, "StackCube": 200, "PegInsertionSide": 300}


@needs_maniskill
def test_motion_planner_demos_round_trip(tmp_path):
    """Collect 2 PickCube demos with the planner, write and load them, and replay their actions."""
    _planner_or_skip()
    from polytask.data.demos import load_episodes, read_metadata
    from polytask.suites.maniskill import make
    from polytask.training.demos import collect_task_demos

    cfg = compose_cfg("suite=maniskill", f"data_dir={tmp_path}")
    path = collect_task_demos(cfg, "PickCube", 2)
    meta = read_metadata(path)["polytask"]
    assert meta["expert"] == "polytask.experts.maniskill.MotionPlannerExpert" and len(meta["seeds"]) == 2
    episodes = load_episodes(path)
    assert len(episodes) == 2
    env = make("PickCube", "features", seed=0)
    for ep in episodes:
        assert len(ep) == 100 and ep.obs["state"].shape == (101, 42) and ep.action.shape == (100, 8)
        assert ep.action.dtype == np.float32 and np.abs(ep.action).max() <= 1.0
        assert ep.success.max() == 1.0 and ep.truncated[-1]
        obs, _ = env.reset(seed=ep.seed)
        np.testing.assert_array_equal(obs["state"], ep.obs["state"][0])
        success = 0.0
        for action in ep.action:
            obs, _, _, _, info = env.step(action)
            success = max(success, info["success"])
        assert success == 1.0, f"replaying the demo of seed {ep.seed} did not succeed"
    env.close()
