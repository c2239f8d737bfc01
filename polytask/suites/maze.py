"""PointMaze suite: gymnasium-robotics' force-driven ball in mazes given as grids.

Tasks (each a fixed layout, start cell and goal cell; see :data:`TASKS`):

- ``umaze``, ``medium``, ``large``: gymnasium-robotics' (D4RL's) ``U_MAZE``, ``MEDIUM_MAZE`` and
  ``LARGE_MAZE`` from one far corner to another; success within 0.45 (gymnasium-robotics' radius).
- ``spirl40``: a 40×40 random layout (:func:`random_layout`, seed 0) from cell (10, 24) to cell
  (18, 8) as in SPiRL's downstream maze, success within 2.0, 2000 steps. SkiLD's settings are suite
  options: ``start_noise=2`` (start jitter in cells), ``reward_scale=100``, ``terminate_on_success=true``
  (``suite/maze_task=skild`` sets them all).

Cells are ``(row, col)`` of the map (1 wall, 0 free); one cell is 1 m (``maze_size_scaling=1``). Observations
are dicts: ``state`` float32 (4,) = (x, y, vx, vy) in m and m/s, and for ``obs_type="pixels"``
``pixels`` uint8 (3, 32, 32): a top-down view centred on the ball (SPiRL's agent-centred images;
frame-stacked by :func:`make`). Actions are float32 (2,) in [-1, 1]: the force on the ball (×100 N
gear). One step is 0.01 s (``action_repeat`` steps per agent step). ``info["success"]`` is 1.0
while the ball is within ``success_radius`` of the goal; the reward is ``reward_scale`` times that
(``reward_type="sparse"``) or ``reward_scale·exp(-distance)`` (``"dense"``). Episodes end at the goal
only with ``terminate_on_success``; they are truncated after ``episode_len`` agent steps.

The goal is fixed per task and is not part of the state (it is the task). Start and goal are set
here, not by gymnasium-robotics' reset: its continuing-task goal switching (which needs
``reset_target=True`` and returns a stale ``desired_goal`` on the step the goal changes) is not
used; task-agnostic play data switches goals with :meth:`MazeEnv.set_goal`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

from polytask.errors import ConfigError, PolyTaskError
from polytask.suites import check_task, make_registered, stack_pixels
from polytask.suites.base import MujocoDictEnv

ENV_ID = "PolyTask/Maze-v0"
INSTALL_HINT = 'The maze suite needs gymnasium-robotics: pip install "polytask[robotics]"'
BALL_RADIUS = 0.1  # m, the point's collision sphere


class UnreachableGoalError(PolyTaskError, ValueError):
    """A maze whose goal cannot be reached from the start (or a start/goal on a wall or off the map)."""


Cell = tuple[int, int]


@dataclass(frozen=True)
class MazeLayout:
    """One maze task.

    Attributes:
        maze_map: int8 (H, W), 1 wall, 0 free; the outer rows and columns must be walls.
        start, goal: ``(row, col)`` cells.
        episode_len: agent steps before truncation.
        success_radius: m between ball and goal centre that count as success.
        start_noise: half-width in m of the uniform jitter added to the start position (positions
            whose ball would overlap a wall are redrawn).
    """

    maze_map: np.ndarray
    start: Cell
    goal: Cell
    episode_len: int
    success_radius: float = 0.45
    start_noise: float = 0.0
    name: str = field(default="custom", compare=False)


def neighbours(maze_map: np.ndarray, cell: Cell) -> list[Cell]:
    """Free 4-connected neighbours of ``cell`` in ``maze_map``."""
    i, j = cell
    h, w = maze_map.shape
    return [(a, b) for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))
            if 0 <= a < h and 0 <= b < w and maze_map[a, b] == 0]


def distance_field(maze_map: np.ndarray, goal: Cell) -> np.ndarray:
    """Breadth-first search from ``goal``: int (H, W) steps to the goal along free 4-connected
    cells, -1 where it cannot be reached (and on walls)."""
    dist = np.full(maze_map.shape, -1, dtype=np.int64)
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        cell = queue.popleft()
        for n in neighbours(maze_map, cell):
            if dist[n] < 0:
                dist[n] = dist[cell] + 1
                queue.append(n)
    return dist


def check_cell(maze_map: np.ndarray, cell: Sequence[int], what: str) -> Cell:
    """``cell`` as a tuple, checked to be a free cell of ``maze_map``.

    Raises:
        UnreachableGoalError: if it is off the map or on a wall.
    """
    i, j = (int(c) for c in cell)
    h, w = maze_map.shape
    if not (0 <= i < h and 0 <= j < w):
        raise UnreachableGoalError(f"The {what} cell {(i, j)} is off the {h}x{w} maze map")
    if maze_map[i, j] != 0:
        raise UnreachableGoalError(f"The {what} cell {(i, j)} is a wall; choose a free (0) cell")
    return i, j


def check_reachable(maze_map: np.ndarray, start: Sequence[int], goal: Sequence[int]) -> np.ndarray:
    """The :func:`distance_field` to ``goal``, after checking that ``start`` reaches it.

    Raises:
        UnreachableGoalError: if start or goal is a wall or off the map, or no free path joins them.
    """
    start, goal = check_cell(maze_map, start, "start"), check_cell(maze_map, goal, "goal")
    dist = distance_field(maze_map, goal)
    if dist[start] < 0:
        raise UnreachableGoalError(f"The goal cell {goal} cannot be reached from the start cell {start}: walls "
                                   "separate them. Open a path in the maze map or move the start or goal.")
    return dist


def random_layout(size: int = 20, seed: int = 0, coverage: float = 0.25, keep_free: Sequence[Cell] = ()) -> np.ndarray:
    """A random maze in the style of SPiRL's task-agnostic layouts: straight walls, each with one door.

    Recursive division: the largest room is split by a straight wall (on an even row or column)
    with one door (on an odd index, so later walls never block it) until walls cover ``coverage`` of
    the inner cells or no room can be split. Every free cell is therefore reachable from every other.
    Cells in ``keep_free`` are never walls (a wall that would cross one gets its door there, or is
    not built).

    Returns:
        int8 (size, size): 1 wall (including the border), 0 free.
    """
    if size < 5:
        raise ConfigError(f"random_layout needs size >= 5, got {size}")
    rng = np.random.default_rng(seed)
    m = np.zeros((size, size), np.int8)
    m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = 1
    keep = {tuple(int(v) for v in c) for c in keep_free}
    inner = (size - 2) ** 2
    rooms = [(1, size - 2, 1, size - 2)]  # inclusive (r0, r1, c0, c1) free rectangles
    while rooms and (m[1:-1, 1:-1].sum() / inner) < coverage:
        rooms.sort(key=lambda r: (r[1] - r[0] + 1) * (r[3] - r[2] + 1))
        r0, r1, c0, c1 = rooms.pop()
        options = []  # (axis, index): axis 0 a wall along a row, 1 along a column
        options += [(0, r) for r in range(r0 + 1, r1) if r % 2 == 0]
        options += [(1, c) for c in range(c0 + 1, c1) if c % 2 == 0]
        rng.shuffle(options)
        for axis, k in options:
            span = range(c0, c1 + 1) if axis == 0 else range(r0, r1 + 1)
            cells = [(k, s) if axis == 0 else (s, k) for s in span]
            kept = [c for c in cells if c in keep]
            doors = [c for c in cells if c[1 - axis] % 2 == 1]
            if len(kept) > 1 or (kept and kept[0] not in doors) or not doors:
                continue
            door = kept[0] if kept else doors[rng.integers(len(doors))]
            for c in cells:
                if c != door:
                    m[c] = 1
            if axis == 0:
                rooms += [(r0, k - 1, c0, c1), (k + 1, r1, c0, c1)]
            else:
                rooms += [(r0, r1, c0, k - 1), (r0, r1, k + 1, c1)]
            break
    return m


def _maze_module(name: str):
    """``gymnasium_robotics.envs.maze.<name>``, or an ImportError naming the pip extra."""
    import importlib

    try:
        with warnings.catch_warnings():  # gymnasium-robotics warns about Adroit rewards on import
            warnings.simplefilter("ignore")
            return importlib.import_module(f"gymnasium_robotics.envs.maze.{name}")
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e


def _standard(name: str) -> np.ndarray:
    return np.asarray(getattr(_maze_module("maps"), name), np.int8)


def _layouts() -> dict[str, Any]:
    return {
        "umaze": lambda: MazeLayout(_standard("U_MAZE"), (3, 1), (1, 1), 300, name="umaze"),
        "medium": lambda: MazeLayout(_standard("MEDIUM_MAZE"), (1, 1), (6, 6), 600, name="medium"),
        "large": lambda: MazeLayout(_standard("LARGE_MAZE"), (1, 1), (7, 10), 800, name="large"),
        "spirl40": lambda: MazeLayout(random_layout(40, seed=0, keep_free=[(10, 24), (18, 8)]), (10, 24), (18, 8),
                                      2000, success_radius=2.0, name="spirl40"),
    }


#: Task names (each a fixed layout, start and goal).
TASKS = list(_layouts())


def describe(task: str) -> str:
    """A sentence for ``task`` (language goals)."""
    return f"move the ball through the {task} maze to the goal"


def layout_of(task: str) -> MazeLayout:
    """The :class:`MazeLayout` of ``task``.

    Raises:
        UnknownTaskError: for a name not in :data:`TASKS`.
    """
    check_task(task, TASKS, "maze")
    return _layouts()[task]()


def _point_maze(maze_map: np.ndarray):
    env = _maze_module("point_maze").PointMazeEnv(maze_map=maze_map.tolist(), continuing_task=True, reset_target=False)
    os.remove(env.tmp_xml_file_path)  # gymnasium-robotics leaves the generated model file in /tmp
    return env


class MazeEnv(MujocoDictEnv):
    """A PointMaze task as a Gymnasium env with dict observations (no frame stacking).

    Args:
        task: a name of :data:`TASKS` (ignored when ``layout`` is given, except as a label).
        obs_type: ``"features"`` (state only) or ``"pixels"`` (state and one agent-centred frame).
        img_size: side of the pixel observation (32 as in SPiRL).
        render_size: side of :meth:`render` frames (videos; the whole maze from above).
        action_repeat: 0.01 s physics steps per agent step (rewards summed, success maxed).
        episode_len, success_radius, start_noise: override the layout's values when not None
            (``start_noise`` in m, i.e. cells).
        reward_type: ``"sparse"`` (1 within ``success_radius``) or ``"dense"`` (``exp(-distance)``).
        reward_scale: factor on the reward (SkiLD: 100).
        terminate_on_success: end the episode (``terminated``) at the first success (SkiLD).
        camera_distance: m from the ball to the pixel camera (a view about 0.8× that wide).
        layout: a :class:`MazeLayout` to use instead of the task's.

    Raises:
        UnknownTaskError: for an unknown task (the message lists them).
        UnreachableGoalError: if the layout's goal cannot be reached from its start.
        ConfigError: for a bad option value.
    """

    def __init__(self, task: str, obs_type: str = "features", img_size: int = 32, render_size: int = 256,
                 action_repeat: int = 1, episode_len: int | None = None, success_radius: float | None = None,
                 start_noise: float | None = None, reward_type: str = "sparse", reward_scale: float = 1.0,
                 terminate_on_success: bool = False, camera_distance: float = 6.0, layout: MazeLayout | None = None):
        layout = layout if layout is not None else layout_of(task)
        changes = {k: v for k, v in {"episode_len": episode_len, "success_radius": success_radius,
                                          "start_noise": start_noise}.items() if v is not None}
        layout = replace(layout, maze_map=np.asarray(layout.maze_map, np.int8), **changes)
        if reward_type not in ("sparse", "dense"):
            raise ConfigError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if layout.episode_len < 1 or layout.success_radius <= 0 or layout.start_noise < 0:
            raise ConfigError(f"Maze options need episode_len >= 1, success_radius > 0 and start_noise >= 0; got "
                              f"{layout.episode_len}, {layout.success_radius}, {layout.start_noise}")
        check_reachable(layout.maze_map, layout.start, layout.goal)
        self.task, self.layout = task, layout
        self.reward_type, self.reward_scale = reward_type, float(reward_scale)
        self.terminate_on_success = bool(terminate_on_success)
        self._pm = _point_maze(layout.maze_map)
        self._pe = self._pm.point_env
        self._setup(obs_type, 4, 2, img_size, render_size, action_repeat, self._pe.model)
        import mujoco

        self._follow = mujoco.MjvCamera()  # top-down, centred on the ball (pixels)
        self._follow.distance, self._follow.elevation, self._follow.azimuth = camera_distance, -90.0, 90.0
        h, w = layout.maze_map.shape
        self._overview = mujoco.MjvCamera()  # the whole maze (videos)
        self._overview.lookat[:] = (0.0, 0.0, 0.0)
        self._overview.distance, self._overview.elevation, self._overview.azimuth = 1.25 * max(h, w), -90.0, 90.0
        self._camera = self._follow
        self.goal = self.cell_xy(layout.goal)
        self._t = 0
        self._done = True

    # -- geometry ------------------------------------------------------------------------------
    @property
    def maze_map(self) -> np.ndarray:
        """int8 (H, W) map, 1 wall, 0 free."""
        return self.layout.maze_map

    def cell_xy(self, cell: Sequence[int]) -> np.ndarray:
        """Centre (x, y) in m of cell ``(row, col)``, float64 (2,)."""
        return self._pm.maze.cell_rowcol_to_xy(np.asarray(cell))

    def xy_cell(self, xy: Sequence[float]) -> Cell:
        """The ``(row, col)`` cell that holds position ``xy``."""
        i, j = self._pm.maze.cell_xy_to_rowcol(np.asarray(xy))
        return int(i), int(j)

    def _fits(self, xy: np.ndarray) -> bool:
        """Whether a ball at ``xy`` lies inside free cells only."""
        h, w = self.maze_map.shape
        for dx in (-BALL_RADIUS, BALL_RADIUS):
            for dy in (-BALL_RADIUS, BALL_RADIUS):
                i, j = self.xy_cell(xy + (dx, dy))
                if not (0 <= i < h and 0 <= j < w) or self.maze_map[i, j] != 0:
                    return False
        return True

    def set_goal(self, cell: Sequence[int]) -> None:
        """Move the goal to the centre of free cell ``cell`` (visible target moves too); the next
        step's reward and success use it.

        Raises:
            UnreachableGoalError: if the cell is a wall or off the map.
        """
        self.goal = self.cell_xy(check_cell(self.maze_map, cell, "goal"))
        self._pm.goal = self.goal
        self._pm.update_target_site_pos()

    def ball_xy(self) -> np.ndarray:
        """Current ball position (x, y) in m, float64 (2,)."""
        return self._pe.data.qpos[:2].copy()

    def ball_velocity(self) -> np.ndarray:
        """Current ball velocity (vx, vy) in m/s, float64 (2,)."""
        return self._pe.data.qvel[:2].copy()

    # -- rendering -----------------------------------------------------------------------------
    def _scene(self):
        self._follow.lookat[:] = (*self._pe.data.qpos[:2], 0.0)
        return self._pe.model, self._pe.data, self._camera

    def render(self) -> np.ndarray:
        """The whole maze from above, uint8 (render_size, render_size, 3)."""
        self._camera = self._overview
        try:
            return super().render()
        finally:
            self._camera = self._follow

    # -- gymnasium API -------------------------------------------------------------------------
    def _state(self) -> np.ndarray:
        return np.concatenate([self._pe.data.qpos, self._pe.data.qvel]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        start = self.cell_xy(self.layout.start)
        xy = start
        if self.layout.start_noise > 0:
            for _ in range(1000):
                xy = start + self.np_random.uniform(-self.layout.start_noise, self.layout.start_noise, 2)
                if self._fits(xy):
                    break
            else:
                xy = start
        self.set_goal(self.layout.goal)
        self._pe.set_state(np.asarray(xy, np.float64), np.zeros(2))
        self._t, self._done = 0, False
        return self._obs(self._state()), {"success": float(self._success())}

    def _distance(self) -> float:
        return float(np.linalg.norm(self._pe.data.qpos[:2] - self.goal))

    def _success(self) -> bool:
        return self._distance() <= self.layout.success_radius

    def step(self, action):
        if self._done:
            raise RuntimeError("The episode is over (or was never started): call reset() first")
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        reward, success = 0.0, False
        for _ in range(self.action_repeat):
            self._pe.step(action)
            self._t += 1
            hit = self._success()
            success |= hit
            reward += self.reward_scale * (float(hit) if self.reward_type == "sparse" else np.exp(-self._distance()))
            if (hit and self.terminate_on_success) or self._t >= self.layout.episode_len * self.action_repeat:
                break
        terminated = success and self.terminate_on_success
        truncated = not terminated and self._t >= self.layout.episode_len * self.action_repeat
        self._done = terminated or truncated
        return self._obs(self._state()), float(reward), terminated, truncated, {"success": float(success)}

    def close(self):
        self._close_renderers()
        self._pm.close()


def make_wrapped(task: str, obs_type: str = "features", action_repeat: int = 1, frame_stack: int = 3,
                 img_size: int = 32, render_size: int = 256, episode_len: int | None = None,
                 success_radius: float | None = None, start_noise: float | None = None, reward_type: str = "sparse",
                 reward_scale: float = 1.0, terminate_on_success: bool = False,
                 camera_distance: float = 6.0) -> gym.Env:
    """:class:`MazeEnv` with (pixels only) frame stacking; gym entry point."""
    env = MazeEnv(task, obs_type, img_size, render_size, action_repeat, episode_len, success_radius, start_noise,
                  reward_type, reward_scale, terminate_on_success, camera_distance)
    return stack_pixels(env, obs_type, frame_stack)


gym.register(ENV_ID, entry_point="polytask.suites.maze:make_wrapped", disable_env_checker=True)


def make(task: str, obs_type: str = "features", seed: int | None = None, **options: Any) -> gym.Env:
    """Make a maze env through ``gym.make`` so that its spec (and Minari datasets) record every
    option. ``options`` are those of :func:`make_wrapped` (the ``suite.env`` config)."""
    return make_registered(ENV_ID, task, obs_type, seed, **options)
