import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from polytask.data.demos import load_episodes, read_metadata
from polytask.data.play import play_dataset_id, write_play_dataset
from polytask.experts.maze import (
    MazeExpert,
    WaypointController,
    plan_path,
    play_episodes,
)
from polytask.suites import UnknownTaskError, make_env
from polytask.suites.maze import (
    TASKS,
    MazeEnv,
    MazeLayout,
    UnreachableGoalError,
    distance_field,
    layout_of,
    make,
    random_layout,
)
from tests.conftest import compose_cfg, run_script

# A hand-made layout: the free cells form an S from (1, 1) to (5, 3); (1, 3) is walled off.
S_MAZE = np.array([
    [1, 1, 1, 1, 1],
    [1, 0, 1, 0, 1],
    [1, 0, 1, 1, 1],
    [1, 0, 0, 0, 1],
    [1, 1, 1, 0, 1],
    [1, 0, 0, 0, 1],
    [1, 1, 1, 1, 1],
], np.int8)


def _run(env, policy, seed=0):
    """Steps of ``policy`` from ``reset(seed)`` to the end; returns (steps, return, last info, terminated)."""
    obs, _ = env.reset(seed=seed)
    steps, ret = 0, 0.0
    while True:
        obs, r, terminated, truncated, info = env.step(policy(obs))
        steps, ret = steps + 1, ret + r
        if terminated or truncated:
            return steps, ret, info, terminated


@pytest.mark.parametrize("obs_type", ["features", "pixels"])
def test_env_checker_passes(obs_type):
    env = MazeEnv("umaze", obs_type=obs_type)
    check_env(env, skip_render_check=True)
    assert env.observation_space["state"].shape == (4,) and env.action_space.shape == (2,)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["state"], [*env.cell_xy((3, 1)), 0, 0])  # (x, y, vx, vy) at the start cell
    if obs_type == "pixels":
        assert obs["pixels"].shape == (3, 32, 32) and obs["pixels"].dtype == np.uint8 and obs["pixels"].std() > 0
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    env.close()


def test_pixels_follow_the_ball_and_stack():
    env = make("medium", "pixels", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (9, 32, 32)
    first = obs["pixels"][-3:].copy()
    for _ in range(40):
        obs, *_ = env.step(np.array([1.0, 0.0], np.float32))
    assert not np.array_equal(obs["pixels"][-3:], first), "the agent-centred view should change as the ball moves"
    env.close()


def test_unknown_task_and_unreachable_goal_errors():
    with pytest.raises(UnknownTaskError, match="Did you mean umaze.*Valid tasks: umaze, medium, large, spirl40"):
        MazeEnv("umase")
    walled = MazeLayout(S_MAZE, start=(1, 1), goal=(1, 3), episode_len=100)
    unreachable = r"goal cell \(1, 3\) cannot be reached from the start cell \(1, 1\)"
    with pytest.raises(UnreachableGoalError, match=unreachable):
        MazeEnv("custom", layout=walled)
    with pytest.raises(UnreachableGoalError, match=r"start cell \(0, 0\) is a wall"):
        MazeEnv("custom", layout=MazeLayout(S_MAZE, start=(0, 0), goal=(5, 3), episode_len=100))


def test_planner_on_a_hand_made_layout():
    path = plan_path(S_MAZE, (1, 1), (5, 3))
    assert path == [(1, 1), (2, 1), (3, 1), (3, 2), (3, 3), (4, 3), (5, 3)]
    assert plan_path(S_MAZE, (5, 1), (5, 1)) == [(5, 1)]
    dist = distance_field(S_MAZE, (5, 3))
    assert dist[1, 1] == 6 and dist[1, 3] == -1 and dist[0, 0] == -1
    with pytest.raises(UnreachableGoalError, match="cannot be reached"):
        plan_path(S_MAZE, (1, 1), (1, 3))
    with pytest.raises(UnreachableGoalError, match="off the 7x5 maze map"):
        plan_path(S_MAZE, (1, 1), (9, 9))


def test_random_layouts_are_seeded_connected_and_keep_cells_free():
    a, b, c = random_layout(20, seed=3), random_layout(20, seed=3), random_layout(20, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for m in (a, c, random_layout(40, seed=0, keep_free=[(10, 24), (18, 8)])):
        assert m[0].all() and m[-1].all() and m[:, 0].all() and m[:, -1].all()
        assert 0.2 <= m[1:-1, 1:-1].mean() <= 0.35  # ~25% of the inner cells are walls
        free = np.argwhere(m == 0)
        dist = distance_field(m, tuple(free[0]))
        assert (dist[m == 0] >= 0).all(), "every free cell must be reachable"
    spirl = layout_of("spirl40")
    assert spirl.maze_map.shape == (40, 40) and spirl.maze_map[10, 24] == 0 and spirl.maze_map[18, 8] == 0


@pytest.mark.parametrize("task", TASKS)
def test_expert_reaches_the_goal(task):
    env = MazeEnv(task, terminate_on_success=True)
    expert = MazeExpert(task, env, noise_std=0.1)
    for seed in range(2):  # the second episode checks that the expert replans after a reset
        steps, ret, info, terminated = _run(env, expert.act, seed)
        assert terminated and info["success"] == 1.0 and ret == 1.0 and steps < env.layout.episode_len
        assert np.linalg.norm(env.ball_xy() - env.goal) <= env.layout.success_radius
    env.close()


def test_skild_settings():
    cfg = compose_cfg("suite=maze", "suite/maze_task=skild")
    assert list(cfg.suite.task) == ["spirl40"]
    env = make_env(cfg.suite, "spirl40", "features")
    maze = env.unwrapped
    assert maze.layout.success_radius == 2.0 and maze.layout.episode_len == 2000
    starts = np.array([env.reset(seed=s)[0]["state"][:2] for s in range(20)])
    start = maze.cell_xy((10, 24))
    assert np.abs(starts - start).max() <= 2.0 and np.ptp(starts, axis=0).min() > 1.0  # jittered by up to 2 cells
    assert all(maze._fits(xy) for xy in starts)  # never inside a wall
    steps, ret, info, terminated = _run(env, MazeExpert("spirl40", env).act, seed=5)
    assert terminated and ret == 100.0 and info["success"] == 1.0  # sparse reward x 100, ends at the goal
    env.close()
    plain = make_env(compose_cfg("suite=maze", "suite/maze_task=spirl40").suite, "spirl40", "features")
    steps, ret, info, terminated = _run(plain, lambda obs: np.zeros(2, np.float32))
    assert steps == 2000 and not terminated and ret == 0.0
    plain.close()


def test_waypoint_controller_needs_a_maze_env():
    from polytask.errors import ConfigError

    class NotMaze:
        unwrapped = object()

    with pytest.raises(ConfigError, match="needs a maze env"):
        WaypointController(NotMaze())


def test_play_episodes_chain_goals_and_round_trip(tmp_path):
    episodes = list(play_episodes(None, num_episodes=5, seed=0, size=12, episodes_per_layout=3, noise_std=0.5))
    assert len(episodes) == 5 and [e.seed for e in episodes] == [0, 0, 0, 1, 1]
    for i, ep in enumerate(episodes):
        T = len(ep)
        assert ep.obs["state"].shape == (T + 1, 4) and ep.infos["goal"].shape == (T, 2)
        assert ep.success[-1] == 1.0 and ep.success[:-1].sum() == 0 and not ep.truncated.any()
        assert np.linalg.norm(ep.obs["state"][-1, :2] - ep.infos["goal"][-1]) <= 0.45
        if i in (1, 2, 4):  # the same layout: the next goal is driven to from where the last one was reached
            np.testing.assert_array_equal(ep.obs["state"][0], episodes[i - 1].obs["state"][-1])
            assert not np.array_equal(ep.infos["goal"][0], episodes[i - 1].infos["goal"][0])
    path = write_play_dataset(tmp_path, "maze", "features", episodes, {"seed": 0})
    assert path == tmp_path / "datasets" / play_dataset_id("maze", "features")
    back = load_episodes(path)
    for a, b in zip(episodes, back):
        np.testing.assert_array_equal(a.obs["state"], b.obs["state"])
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.infos["goal"], b.infos["goal"])
        np.testing.assert_array_equal(a.infos["layout"], b.infos["layout"])
    assert read_metadata(path)["polytask"]["steps"] == sum(len(e) for e in episodes)


def test_collect_play_entry(tmp_path):
    p = run_script("collect_play.py", "suite=maze", "play.num_episodes=4", "suite.play.size=10",
                   f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 0, p.stderr[-2000:]
    path = tmp_path / "datasets" / "polytask" / "maze" / "play-features-v0"
    episodes = load_episodes(path)
    assert len(episodes) == 4 and all(e.success[-1] == 1.0 for e in episodes)
    meta = read_metadata(path)["polytask"]
    assert meta["play"]["size"] == 10 and meta["play"]["num_episodes"] == 4 and meta["seed"] == 1


def test_demos_round_trip(tmp_path):
    from polytask.training.demos import collect_task_demos, demo_path

    cfg = compose_cfg("suite=maze", "suite/maze_task=umaze", f"data_dir={tmp_path}", "num_demos_per_task=2")
    path = collect_task_demos(cfg, "umaze", 2)
    assert path == demo_path(cfg, "umaze")
    episodes = load_episodes(path)
    assert len(episodes) == 2 and all(e.success.max() == 1.0 for e in episodes)
    assert episodes[0].obs["state"].shape == (301, 4) and episodes[0].action.shape == (300, 2)
    spec = json.loads(read_metadata(path)["env_spec"])
    assert spec["id"] == "PolyTask/Maze-v0" and spec["kwargs"]["task"] == "umaze"
    env = make_env(cfg.suite, "umaze", "features")  # the recorded actions replay to the recorded states
    obs, _ = env.reset(seed=episodes[0].seed)
    for a in episodes[0].action[:50]:
        obs, *_ = env.step(a)
    np.testing.assert_allclose(obs["state"], episodes[0].obs["state"][50], atol=1e-6)
    env.close()


def test_bc_learns_umaze_from_collected_demos(tmp_path):
    p = run_script("train.py", "agent=bc", "suite=maze", "obs_type=features", "suite/maze_task=umaze",
                   "num_demos_per_task=5", "num_train_steps=300", "eval_every_steps=300", "eval.num_episodes=4",
                   "eval.num_envs=4", "eval.video=off", "agent.hidden_dim=64", "batch_size=64", "device=cpu",
                   f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "datasets" / "polytask" / "maze" / "umaze-features-v0").exists()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["step"] == 300 and results["umaze/success"] >= 0.75  # the demos teach the path around the wall
