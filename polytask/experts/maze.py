"""Maze expert: a breadth-first-search grid planner and D4RL's PD waypoint controller,
and the task-agnostic play data of SPiRL (random goals in random layouts).

The controller is the one D4RL and Minari made their PointMaze data with: the waypoints are the
centres of the planned cells (then the goal), a waypoint counts as reached within 0.1 m, and
``action = clip(10·(waypoint − xy) − 1·velocity, −1, 1)`` plus optional N(0, σ²) noise. Planning is a
BFS distance field to the goal, so paths of any length work (a 50-sweep value iteration, as D4RL's,
does not plan paths longer than ~50 cells), and an unreachable goal raises
:class:`~polytask.suites.maze.UnreachableGoalError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from polytask.data.demos import Episode
from polytask.errors import ConfigError
from polytask.suites.maze import (
    Cell,
    MazeEnv,
    MazeLayout,
    check_reachable,
    distance_field,
    neighbours,
    random_layout,
)


def plan_path(maze_map: np.ndarray, start: Sequence[int], goal: Sequence[int]) -> list[Cell]:
    """Shortest 4-connected path of free cells from ``start`` to ``goal`` (both included).

    Raises:
        UnreachableGoalError: if start or goal is a wall or off the map, or walls separate them.
    """
    return _descend(check_reachable(maze_map, start, goal), maze_map, tuple(int(c) for c in start))


def _descend(dist: np.ndarray, maze_map: np.ndarray, cell: Cell) -> list[Cell]:
    """Cells from ``cell`` to the goal of distance field ``dist`` (``dist[cell] >= 0``)."""
    path = [cell]
    while dist[path[-1]] > 0:
        path.append(min(neighbours(maze_map, path[-1]), key=lambda n: dist[n] if dist[n] >= 0 else np.inf))
    return path


class WaypointController:
    """D4RL's PD waypoint follower for PointMaze, replanning with BFS when the ball leaves its path.

    Args:
        env: the :class:`MazeEnv` (or a wrapper of one) whose ball, map and goal it reads.
        p_gain, d_gain: ``action = p_gain·(waypoint − xy) − d_gain·velocity`` (10 and 1 in D4RL).
        waypoint_tolerance: m within which a waypoint counts as reached (0.1).
        noise_std: std of the Gaussian noise added to the action before clipping (D4RL: 0.5).
        seed: seed of the noise.

    Raises:
        UnreachableGoalError: from :meth:`act` when the goal cannot be reached from the ball's cell.
    """

    def __init__(self, env: Any, p_gain: float = 10.0, d_gain: float = 1.0, waypoint_tolerance: float = 0.1,
                 noise_std: float = 0.0, seed: int = 0):
        maze = env.unwrapped
        if not isinstance(maze, MazeEnv):
            raise ConfigError(f"The maze expert needs a maze env, got {type(maze).__name__}")
        if noise_std < 0 or waypoint_tolerance <= 0:
            raise ConfigError(f"noise_std must be >= 0 and waypoint_tolerance > 0, got {noise_std}, "
                              f"{waypoint_tolerance}")
        self.env, self.p_gain, self.d_gain = maze, p_gain, d_gain
        self.tol, self.noise_std = waypoint_tolerance, noise_std
        self.rng = np.random.default_rng(seed)
        self._fields: dict[Cell, np.ndarray] = {}
        self._goal: np.ndarray | None = None
        self._waypoints: list[np.ndarray] = []
        self._cells: list[Cell] = []  # cells of the waypoints still ahead
        self._last: Cell | None = None  # the ball's cell at the previous call

    def _replan(self, cell: Cell, goal_cell: Cell) -> None:
        if goal_cell not in self._fields:
            self._fields[goal_cell] = distance_field(self.env.maze_map, goal_cell)
        dist = self._fields[goal_cell]
        if dist[cell] < 0:
            check_reachable(self.env.maze_map, cell, goal_cell)  # raises with the reason
        self._cells = _descend(dist, self.env.maze_map, cell)
        self._waypoints = [self.env.cell_xy(c) for c in self._cells[:-1]] + [self.env.goal.copy()]
        self._goal = self.env.goal.copy()

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The action for the env's current ball state (``obs`` is accepted for the expert
        signature; the state is read from the env): float32 (2,) in [-1, 1]."""
        xy, vel = self.env.ball_xy(), self.env.ball_velocity()
        cell = self.env.xy_cell(xy)
        # Replan for a new goal, and when the ball enters a cell off the plan (noise, a reset).
        if (self._goal is None or not np.array_equal(self._goal, self.env.goal)
                or (cell != self._last and cell not in self._cells)):
            self._replan(cell, self.env.xy_cell(self.env.goal))
        self._last = cell
        while len(self._waypoints) > 1 and np.linalg.norm(self._waypoints[0] - xy) <= self.tol:
            self._waypoints.pop(0)
            self._cells.pop(0)
        action = self.p_gain * (self._waypoints[0] - xy) - self.d_gain * vel
        if self.noise_std > 0:
            action = action + self.noise_std * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class MazeExpert(WaypointController):
    """The maze suite's demonstrator (``suite.expert``): :class:`WaypointController` on ``env``.

    ``task`` is accepted for the common expert signature (the env holds the layout and goal).
    """

    def __init__(self, task: str, env: Any, noise_std: float = 0.0, seed: int = 0, **controller: Any):
        super().__init__(env, noise_std=noise_std, seed=seed, **controller)
        self.task = task


def play_episodes(env_factory: Callable[[str], Any] | None, num_episodes: int, seed: int, obs_type: str = "features",
                  size: int = 20, coverage: float = 0.25, episodes_per_layout: int = 10, noise_std: float = 0.5,
                  success_radius: float = 0.45, max_episode_len: int = 2000, img_size: int = 32,
                  camera_distance: float = 6.0) -> Iterator[Episode]:
    """Task-agnostic maze data as in SPiRL: random goals in random layouts, one episode per goal.

    Layout ``k`` is :func:`~polytask.suites.maze.random_layout` (``size``, seed ``seed·100003 + k``);
    in it the ball starts in a random free cell and the noisy expert (``noise_std``) drives it to a
    random goal cell; when it is within ``success_radius`` the episode ends and the next one starts
    from there towards a new goal (a continuing run split at each reached goal, as D4RL/Minari did).
    After ``episodes_per_layout`` episodes a new layout starts. An episode that does not reach its
    goal within ``max_episode_len`` steps is kept, truncated, and the next starts from a fresh reset.

    ``env_factory`` is not used: the layouts are not the suite's tasks. Episodes hold ``state``
    float32 (T+1, 4) = (x, y, vx, vy) (and ``pixels`` uint8 (T+1, 3, img_size, img_size) for
    ``obs_type="pixels"``), sparse rewards (1 at the goal), ``success`` 1.0 on the step the goal is
    reached, and per-step ``infos``: ``goal`` float32 (T, 2) (goal xy in m) and ``layout`` int64 (T,);
    ``seed`` is the layout index.

    Raises:
        ConfigError: for ``num_episodes`` or ``episodes_per_layout`` below 1.
    """
    if num_episodes < 1 or episodes_per_layout < 1:
        raise ConfigError(f"num_episodes and episodes_per_layout must be >= 1, got {num_episodes}, "
                          f"{episodes_per_layout}")
    done = k = 0
    while done < num_episodes:
        rng = np.random.default_rng(seed * 100003 + k)
        maze_map = random_layout(size, seed=seed * 100003 + k, coverage=coverage)
        free = [tuple(int(v) for v in c) for c in np.argwhere(maze_map == 0)]
        start = free[rng.integers(len(free))]
        # The run never ends on its own: episodes are cut at each goal (or after max_episode_len).
        layout = MazeLayout(maze_map, start, start, episode_len=2**62, success_radius=success_radius)
        env = MazeEnv(f"play{size}", obs_type, img_size=img_size, camera_distance=camera_distance, layout=layout)
        try:
            expert = WaypointController(env, noise_std=noise_std, seed=int(rng.integers(2**31)))
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            for _ in range(min(episodes_per_layout, num_episodes - done)):
                here = env.xy_cell(env.ball_xy())
                env.set_goal(free[rng.choice([i for i, c in enumerate(free) if c != here])])
                episode, obs = _to_goal(env, expert, obs, max_episode_len, k)
                if episode.truncated[-1]:
                    obs, _ = env.reset(seed=int(rng.integers(2**31)))
                done += 1
                yield episode
        finally:
            env.close()
        k += 1


def _to_goal(env: MazeEnv, expert: WaypointController, obs: dict, max_len: int, layout: int) -> tuple[Episode, dict]:
    """Drive the ball towards ``env.goal`` from ``obs`` until success or ``max_len`` steps; returns
    the episode and its last observation."""
    traj = {key: [v] for key, v in obs.items()}
    actions, rewards, success = [], [], []
    for _ in range(max_len):
        action = expert.act(obs)
        obs, reward, _, _, info = env.step(action)
        for key, v in obs.items():
            traj[key].append(v)
        actions.append(action)
        rewards.append(reward)
        success.append(info["success"])
        if info["success"]:
            break
    T = len(actions)
    truncated = np.zeros(T, bool)
    truncated[-1] = not success[-1]
    return Episode(obs={key: np.stack(v) for key, v in traj.items()}, action=np.asarray(actions, np.float32),
                   reward=np.asarray(rewards, np.float32), terminated=np.zeros(T, bool), truncated=truncated,
                   success=np.asarray(success, np.float32), seed=layout,
                   infos={"goal": np.tile(env.goal.astype(np.float32), (T, 1)),
                          "layout": np.full(T, layout, np.int64)}), obs
