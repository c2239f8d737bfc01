import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from polytask.suites import UnknownTaskError
from polytask.suites.dmc import CHEETAH_VARIANTS, TASKS, DMCEnv, TaskIdError, cheetah_variant_tasks, make
from tests.conftest import compose_cfg, random_episode


@pytest.mark.parametrize("obs_type", ["features", "pixels"])
def test_env_checker_passes(obs_type):
    env = DMCEnv("cheetah_run", obs_type=obs_type)
    check_env(env, skip_render_check=True)
    assert env.observation_space["state"].shape == (17,)
    assert env.action_space.shape == (6,) and env.action_space.dtype == np.float32
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    env.close()


def test_reset_seed_repeats_and_differs():
    env = DMCEnv("walker_walk")
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    assert a["state"].dtype == np.float32 and a["state"].shape == (24,)
    np.testing.assert_array_equal(a["state"], b["state"])
    assert not np.allclose(a["state"], c["state"]), "the initial state should change with the seed"
    env.close()


def test_wrapped_env_shapes_and_episode_length():
    env = make("cheetah_run", "pixels", seed=0)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (9, 84, 84) and obs["pixels"].dtype == np.uint8
    assert obs["state"].shape == (17,) and obs["state"].dtype == np.float32
    np.testing.assert_array_equal(obs["pixels"][:3], obs["pixels"][6:])  # first frame repeated
    assert obs["pixels"].std() > 0
    env.close()

    env = make("cheetah_run", "features", seed=0)
    steps, ret, terminated, info = random_episode(env)
    assert steps == 500  # 1000 physics control steps with action repeat 2
    assert not terminated and info["success"] == 0.0 and 0.0 <= ret <= 1000.0
    env.close()


def test_quadruped_rescales_actions_and_uses_camera_2():
    env = DMCEnv("quadruped_run", "pixels", img_size=32)
    assert env.camera_id == 2 and env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    env.reset(seed=0)
    env.step(np.ones(12, np.float32))
    spec = env._env.action_spec()
    np.testing.assert_allclose(env.physics.data.ctrl, spec.maximum)
    env.close()


def _torso_length(env) -> float:
    model = env.physics.model
    half = model.geom_size[model.name2id("torso", "geom"), 1]  # capsule half-length along its axis
    return 2.0 * float(half)


def test_cheetah_variants_change_torso_and_step():
    assert CHEETAH_VARIANTS == [f"cheetah_run_m{k}" for k in range(1, 11)]
    assert set(CHEETAH_VARIANTS) <= set(TASKS)
    assert _torso_length(DMCEnv("cheetah_run")) == pytest.approx(1.0)
    for k, length in [(1, 0.5), (3, 0.7), (6, 1.0), (10, 1.4)]:
        env = DMCEnv(f"cheetah_run_m{k}")
        assert _torso_length(env) == pytest.approx(length)
        model = env.physics.model
        thighs = model.body_pos[[model.name2id("bthigh", "body"), model.name2id("fthigh", "body")], 0]
        np.testing.assert_allclose(thighs, [-length / 2, length / 2])  # legs at the torso's ends
        obs, _ = env.reset(seed=0)
        for _ in range(20):
            obs, r, terminated, truncated, _ = env.step(env.action_space.sample())
        assert np.all(np.isfinite(obs["state"])) and not (terminated or truncated)
        env.close()
    env = make("cheetah_run_m2", "features", seed=0)
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        assert not terminated
    assert steps == 500
    env.close()


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownTaskError, match="Valid tasks:.*walker_walk") as e:
        DMCEnv("cheetah_rn")
    assert "Did you mean cheetah_run" in str(e.value)
    assert "cup_catch" in TASKS and "ball_in_cup_catch" not in TASKS


def test_bad_task_id():
    assert cheetah_variant_tasks([1, 10]) == ["cheetah_run_m1", "cheetah_run_m10"]
    for bad in ([0], [11], [1, 2.5], [], ["a"]):
        with pytest.raises(TaskIdError, match="1-10"):
            cheetah_variant_tasks(bad)
    with pytest.raises(ValueError, match="1-10"):
        _ = compose_cfg("suite=dmc", "suite.task_id=[0]").suite.task  # resolving the task list raises


def test_config_selects_variants():
    cfg = compose_cfg("suite=dmc", "suite.task_id=[1,3]")
    assert list(cfg.suite.task) == ["cheetah_run_m1", "cheetah_run_m3"]
    assert cfg.suite.env._target_ == "polytask.suites.dmc.make"
    assert cfg.suite.expert._target_ == "polytask.training.snapshot.SnapshotExpert"
    assert cfg.suite.expert.weights.endswith("weights/drqv2/dmc/{task}-features-seed1.pt")
    assert list(compose_cfg("suite=dmc", "suite.task=[walker_walk]").suite.task) == ["walker_walk"]
