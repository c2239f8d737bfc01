import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("gymnasium_robotics")

from polytask.data.demos import DatasetError, load_episodes, write_dataset
from polytask.experts.kitchen import KitchenController, KitchenExpert, play_episodes
from polytask.suites.kitchen import (
    POLYTASK6,
    SUBTASKS,
    KitchenEnv,
    UnknownSubtaskError,
    make,
    subtasks_of,
)
from tests.conftest import compose_cfg


@pytest.mark.parametrize("obs_type", ["features", "pixels"])
def test_env_checker_passes(obs_type):
    env = KitchenEnv("task1", obs_type=obs_type)
    check_env(env, skip_render_check=True)
    env.close()


def test_task_names():
    assert subtasks_of("task6") == ["microwave"] == subtasks_of("microwave")
    assert subtasks_of("bottom-burner") == ["bottom burner"]
    assert subtasks_of("microwave-kettle-burner-light") == ["microwave", "kettle", "bottom burner", "light switch"]
    assert [subtasks_of(t)[0] for t in POLYTASK6] == [s for s in SUBTASKS if s != "hinge cabinet"]


def test_unknown_subtask_lists_valid_names():
    valid = "'toaster'.*Valid tasks:.*task1.*microwave-kettle-light-slide.*kettle"
    with pytest.raises(UnknownSubtaskError, match=valid):
        make("microwave-toaster", "features")
    with pytest.raises(UnknownSubtaskError, match="repeats"):
        subtasks_of("light-light")
    with pytest.raises(UnknownSubtaskError, match="valid subtasks: bottom burner, top burner"):
        next(play_episodes(None, 1, seed=0, subtasks=["toaster"]))
    with pytest.raises(UnknownSubtaskError, match="toaster"):
        next(play_episodes(None, 1, seed=0, exclude=["light-toaster"]))


def test_play_never_draws_an_excluded_sequence():
    pool = ["light switch", "slide cabinet"]
    episodes = play_episodes(None, 6, seed=0, subtasks=pool, min_subtasks=2, max_subtasks=2, episode_len=2,
                             exclude=["light-slide"])
    assert [ep.extras["subtasks"] for ep in episodes] == [pool[::-1]] * 6


def test_shapes_noise_switch_and_truncation():
    env = make("task3", "pixels", seed=0, episode_len=5)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (3, 84, 84) and obs["pixels"].dtype == np.uint8
    assert obs["state"].shape == (59,) and obs["state"].dtype == np.float32
    assert info["success"] == 0.0 and info["subtask_success"].shape == (1,)
    truncated = False
    for _ in range(5):
        assert not truncated
        obs, _, terminated, truncated, info = env.step(np.zeros(9, np.float32))
    assert truncated and not terminated
    env.close()
    quiet = KitchenEnv("task3", obs_noise=False)
    a, _ = quiet.reset(seed=0)
    b, _ = quiet.reset(seed=1)
    np.testing.assert_array_equal(a["state"], b["state"])  # the initial state never changes
    noisy = KitchenEnv("task3")
    c, _ = noisy.reset(seed=0)
    d, _ = noisy.reset(seed=0)
    e, _ = noisy.reset(seed=1)
    np.testing.assert_array_equal(c["state"], d["state"])
    assert not np.allclose(c["state"], e["state"])
    quiet.close()
    noisy.close()


def test_expert_completes_two_subtasks_in_sequence():
    env = make("light-slide", "features", seed=0)
    expert = KitchenExpert("light-slide", env)
    obs, info = env.reset(seed=0)
    ret, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        ret += reward
    assert info["success"] == 1.0 and terminated and ret == 2.0
    assert info["completed"] == ["light switch", "slide cabinet"]
    env.close()


def test_expert_action_is_a_function_of_the_state():
    # No hidden integrated command: asked twice in the same state (same waypoint), the expert answers
    # the same, so a policy cloned from its demos can reproduce it.
    env = make("task6", "features", seed=0)
    expert = KitchenExpert("task6", env)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(expert.act(obs))
    controller = expert.controller
    phase = (controller.index, controller._k)
    first, second = expert.act(obs), expert.act(obs)
    assert (controller.index, controller._k) == phase  # still on the same waypoint
    assert np.abs(first).max() > 0.05  # moving, so an integrated command would have changed
    np.testing.assert_array_equal(first, second)
    env.close()


def test_expert_action_noise_perturbs_the_arm_only():
    env = make("task3", "features", seed=0)
    expert = KitchenExpert("task3", env, action_noise=0.2)
    obs, _ = env.reset(seed=0)
    first, second = expert.act(obs), expert.act(obs)
    assert np.abs(first[:7] - second[:7]).max() > 0.05  # fresh noise on the arm each step
    np.testing.assert_array_equal(first[7:], second[7:])  # the fingers' targets are not perturbed
    env.close()


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_play_action_noise_correlation_is_an_ar1_process_of_the_asked_std(rho):
    """The executed minus the intended arm action is n_t = ρ·n_{t-1} + sqrt(1 − ρ²)·ε_t: lag-1
    autocorrelation ρ, stationary std ``action_noise`` whatever ρ."""
    (ep,) = play_episodes(None, 1, seed=5, action_noise=0.05, action_noise_correlation=rho, episode_len=200,
                          subtasks=["light switch", "slide cabinet"], min_subtasks=2, max_subtasks=2)
    noise = (ep.action[:, :7] - ep.infos["intended_action"][:, :7]).astype(np.float64)
    inside = (np.abs(ep.action[:, :7]) < 1) & (np.abs(ep.infos["intended_action"][:, :7]) < 1)  # not clipped
    inside &= (ep.infos["subtask"] >= 0)[:, None]  # a script acts (once all ran, the arm holds still, no noise)
    both = inside[1:] & inside[:-1]
    assert both.sum() > 400
    lag1 = np.corrcoef(noise[1:][both], noise[:-1][both])[0, 1]
    assert abs(lag1 - rho) < 0.12, lag1
    assert 0.04 < noise[inside].std() < 0.06
    with pytest.raises(ValueError, match=r"action_noise_correlation must lie in \[0, 1\)"):
        next(play_episodes(None, 1, seed=5, action_noise_correlation=1.0, episode_len=5))


def test_play_data_made_with_other_options_is_refused_with_both_ways_out(tmp_path):
    from omegaconf import OmegaConf

    from polytask.data.play import write_play_dataset
    from polytask.training.skills import load_or_make_play

    cfg = compose_cfg("agent=skill_prior", "suite=kitchen", f"data_dir={tmp_path}", "collect_missing_demos=false")
    episodes = list(play_episodes(None, 2, seed=3, episode_len=10))
    asked = OmegaConf.to_container(cfg.suite.play, resolve=True)
    env = make("light", "features")
    write_play_dataset(tmp_path, "kitchen", "features", episodes, {"play": {**asked, "num_episodes": 2}})
    assert len(load_or_make_play(cfg, env)) == 2  # same options (another episode count): taken
    write_play_dataset(tmp_path, "kitchen", "features", episodes,
                       {"play": {**asked, "action_noise": 0.3, "exclude": [], "num_episodes": 2}})
    with pytest.raises(DatasetError, match="made with other options") as error:
        load_or_make_play(cfg, env)
    message = str(error.value)
    for part in ("suite.play.action_noise: asked 0.1, made with 0.3", "suite.play.exclude: asked [",
                 "data_dir of their own", "python collect_play.py suite=kitchen", "'suite.play.action_noise=0.1'"):
        assert part in message
    assert "num_episodes" not in message
    env.close()


def test_missing_play_data_gives_the_command_with_the_runs_play_options(tmp_path):
    """The command that makes missing play data carries the run's suite.play options that differ from the
    suite's config file (and only those), so the data it makes passes the options check."""
    from polytask.training.skills import load_or_make_play

    cfg = compose_cfg("agent=skill_prior", "suite=kitchen", f"data_dir={tmp_path}", "collect_missing_demos=false",
                      "suite.play.action_noise=0.2", "suite.play.subtasks=[light switch,kettle]")
    env = make("light", "features")
    with pytest.raises(DatasetError, match="No play data") as error:
        load_or_make_play(cfg, env)
    env.close()
    command = str(error.value).splitlines()[1].strip()
    assert command.startswith("python collect_play.py suite=kitchen obs_type=features")
    assert "'suite.play.action_noise=0.2'" in command
    assert """'suite.play.subtasks=["light switch", "kettle"]'""" in command
    assert "waypoint_noise" not in command and "exclude" not in command  # the file's values: no override


def test_expert_holds_the_arm_still_against_gravity():
    env = make("task3", "features", seed=0, obs_noise=False)
    obs, _ = env.reset(seed=0)
    controller = KitchenController(env.unwrapped.model, env.unwrapped.data, [])  # nothing to do: hold
    start = controller.scene.hand[0]
    for _ in range(30):
        obs, *_ = env.step(controller.act(obs["state"][:9].astype(np.float64)))
    assert np.linalg.norm(controller.scene.hand[0] - start) < 0.005  # m (it sagged 0.2 m without compensation)
    env.close()


def test_play_dataset_round_trip(tmp_path):
    episodes = list(play_episodes(None, 2, seed=3, subtasks=["light switch", "slide cabinet", "top burner"],
                                  min_subtasks=2, max_subtasks=2, episode_len=40))
    for ep in episodes:
        labels = ep.infos["subtask"]
        assert len(ep) == 40 and labels.shape == (40,) and ep.infos["num_completed"].shape == (40,)
        assert {int(x) for x in labels} <= {SUBTASKS.index(s) for s in ep.extras["subtasks"]} | {-1}
        assert labels[0] == SUBTASKS.index(ep.extras["subtasks"][0])
    env = make("light", "features")
    path = write_dataset(tmp_path, "polytask/kitchen/play-features-v0", episodes, env, "test", "play")
    env.close()
    loaded = load_episodes(path)
    np.testing.assert_array_equal(loaded[1].action, episodes[1].action)
    from minari import MinariDataset

    stored = next(MinariDataset(path / "data").iterate_episodes([0]))
    labels = episodes[0].infos["subtask"]
    np.testing.assert_array_equal(stored.infos["subtask"], np.concatenate([labels[:1], labels]))  # reset's first
    np.testing.assert_array_equal(loaded[0].infos["subtask"], labels)


def test_config_builds_env_and_expert():
    cfg = compose_cfg("suite=kitchen", "suite.task=[task4]")
    from hydra.utils import instantiate

    from polytask.suites import make_env

    env = make_env(cfg.suite, "task4", "features")
    expert = instantiate(cfg.suite.expert, task="task4", env=env)
    obs, _ = env.reset(seed=0)
    assert expert.act(obs).shape == (9,)
    assert list(cfg.suite.distill_tasks) == POLYTASK6
    env.close()
    (episode,) = instantiate(cfg.suite.play, None, seed=0, num_episodes=1, episode_len=5)
    assert len(episode) == 5 and 3 <= len(episode.extras["subtasks"]) <= 4


def test_play_records_intended_actions_and_skill_stages_learn_from_them(tmp_path):
    """Play episodes keep each step's noise-free action next to the executed, noisy one; with
    suite.play_action_labels=intended (the kitchen default) the skill stages read those as the actions,
    and play data without them is refused with the command that remakes it."""
    from polytask.training.skills import load_or_make_play

    kwargs = {"subtasks": ["light switch", "slide cabinet", "top burner"], "min_subtasks": 2, "max_subtasks": 2,
              "episode_len": 30}
    episodes = list(play_episodes(None, 2, seed=3, **kwargs))
    for ep in episodes:
        intended = ep.infos["intended_action"]
        assert intended.shape == (30, 9) and intended.dtype == np.float32 and np.abs(intended).max() <= 1.0
        assert 0.02 < np.abs(ep.action[:, :7] - intended[:, :7]).mean() < 0.15  # the arm's action noise (std 0.1)
        np.testing.assert_array_equal(ep.action[:, 7:], intended[:, 7:])  # no noise on the fingers
    (clean,) = play_episodes(None, 1, seed=3, action_noise=0.0, **kwargs)
    np.testing.assert_array_equal(clean.action, clean.infos["intended_action"])
    env = make("light", "features")
    write_dataset(tmp_path, "polytask/kitchen/play-features-v0", episodes, env, "test", "play")
    cfg = compose_cfg("agent=skill_prior", "suite=kitchen", f"data_dir={tmp_path}", "collect_missing_demos=false")
    assert cfg.suite.play_action_labels == "intended"
    loaded = load_or_make_play(cfg, env)
    np.testing.assert_array_equal(loaded[1].action, episodes[1].infos["intended_action"])
    cfg.suite.play_action_labels = "executed"
    np.testing.assert_array_equal(load_or_make_play(cfg, env)[1].action, episodes[1].action)
    for ep in episodes:
        del ep.infos["intended_action"]
    write_dataset(tmp_path, "polytask/kitchen/play-features-v0", episodes, env, "test", "play")
    cfg.suite.play_action_labels = "intended"
    with pytest.raises(DatasetError, match=r"(?s)no intended actions.*python collect_play\.py suite=kitchen"):
        load_or_make_play(cfg, env)
    env.close()
