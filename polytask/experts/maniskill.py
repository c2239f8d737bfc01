"""ManiSkill's motion-planning solutions as a PolyTask expert.

ManiSkill 3.0.1 plans with ``mplib==0.1.1``, which crashes under NumPy 2 (and mplib 0.2.x requires
``numpy<2`` as well), so the planner runs in a separate virtual environment with ``numpy<2``
(``scripts/setup_maniskill.sh`` makes it, by default in ``~/.cache/polytask/maniskill-planner``)
as a long-lived worker process (:mod:`polytask.experts.maniskill_planner_worker`). For each
episode the expert asks the worker to solve the task from the episode's reset seed; the worker
executes ManiSkill's solution in its own ``pd_joint_pos`` env and sends back the absolute joint
targets it used. The expert then drives PolyTask's env (``pd_joint_delta_pos``) towards those
targets step by step, so the demo's observations and actions are exactly what PolyTask's env
produces:

- the arm action is ``(target - qpos) / 0.1`` for the 7 arm joints (``qpos = obs["state"][:7]``),
  which sets the same PD target as the planner did when every joint is within 0.1 rad of it;
  otherwise the action is clipped and the same target is kept for up to ``max_substeps`` further
  steps (the episode then runs a little longer than the plan);
- the gripper action is the planner's own (-1 closed, 1 open);
- after the plan ends the expert holds the last target until the episode is truncated.

Episodes where the planner fails (no plan, or its own rollout failed) are rolled out with the
expert holding still, so they fail and are dropped by the collection like any failed demo.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import numpy as np

from polytask.errors import PolyTaskError
from polytask.suites import check_task
from polytask.suites.maniskill import TASKS, env_id

#: Where ``scripts/setup_maniskill.sh`` puts the planner environment unless told otherwise.
DEFAULT_PLANNER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "polytask" / "maniskill-planner"
PLANNER_ENV_VAR = "POLYTASK_MANISKILL_PLANNER"
WORKER = Path(__file__).with_name("maniskill_planner_worker.py")
#: ``pd_joint_delta_pos`` scales arm actions in [-1, 1] to joint deltas in [-0.1, 0.1] rad.
JOINT_DELTA_SCALE = 0.1


class PlannerUnavailableError(PolyTaskError, RuntimeError):
    """The planner environment is missing or its worker does not start; the message says how to
    make it."""


def _has_working_mplib() -> bool:
    """Whether this interpreter can run the planner itself (NumPy 1 and mplib importable)."""
    if int(np.__version__.split(".")[0]) >= 2:
        return False
    try:
        import mplib  # noqa: F401
    except ImportError:
        return False
    return True


def find_planner_python(planner: str | os.PathLike | None = None) -> str:
    """The Python interpreter that runs the motion planner.

    ``planner`` (a virtual environment folder or its python) when given, else the environment
    variable ``POLYTASK_MANISKILL_PLANNER`` (the same) when set, else :data:`DEFAULT_PLANNER_VENV`
    when it exists, else this interpreter when it has NumPy 1 and mplib.

    Raises:
        PlannerUnavailableError: the given or default environment does not exist; the message
            gives the setup command.
    """
    how = ("Make it with:\n  bash scripts/setup_maniskill.sh\n"
           f"or point {PLANNER_ENV_VAR} (or suite.expert.planner) at a virtual environment with numpy<2 "
           "and mani-skill==3.0.1 (the planner, mplib 0.1.1, crashes under NumPy 2).")

    def python_of(candidate) -> Path:
        path = Path(candidate).expanduser()
        return path / "bin" / "python" if path.is_dir() else path

    for given, source in ((planner, "suite.expert.planner"), (os.environ.get(PLANNER_ENV_VAR), PLANNER_ENV_VAR)):
        if given:
            if python_of(given).exists():
                return str(python_of(given))
            raise PlannerUnavailableError(f"No motion-planner environment at {given} (from {source}). {how}")
    if python_of(DEFAULT_PLANNER_VENV).exists():
        return str(python_of(DEFAULT_PLANNER_VENV))
    if _has_working_mplib():
        return sys.executable
    raise PlannerUnavailableError(
        f"The ManiSkill motion planner runs in its own Python environment, expected at {DEFAULT_PLANNER_VENV}, "
        f"which does not exist. {how}")


class PlannerWorker:
    """A running :mod:`polytask.experts.maniskill_planner_worker` for one ManiSkill env id.

    Args:
        env_id: ManiSkill env id, e.g. ``"PickCube-v1"``.
        python: the planner environment's interpreter (:func:`find_planner_python`).
        timeout_s: seconds to wait for the worker to start and for each plan.

    Raises:
        PlannerUnavailableError: the worker does not start (the message quotes its log).
    """

    def __init__(self, env_id: str, python: str, timeout_s: float = 300.0):
        self.env_id, self.python, self.timeout_s = env_id, python, timeout_s
        self._log = tempfile.NamedTemporaryFile("w+", prefix="maniskill-planner-", suffix=".log", delete=False)
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        env.pop("PYTHONPATH", None)  # the planner environment must not see this one's packages
        self._proc = subprocess.Popen([python, str(WORKER), "--env-id", env_id], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1, env=env)
        self._finalizer = weakref.finalize(self, PlannerWorker._stop, self._proc, self._log)
        ready = self._read("start")
        if not ready.get("ready"):
            self.close()
            raise PlannerUnavailableError(f"The motion-planner worker for {env_id} did not start: {ready.get('error')}")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "".join(Path(self._log.name).read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return ""

    def _read(self, what: str) -> dict:
        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout_s)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            if ready:  # end of output: the worker exited
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            code = self._proc.poll()
            why = f"gave no answer within {self.timeout_s:.0f} s" if code is None else f"exited with code {code}"
            tail = self._log_tail()
            self.close()
            raise PlannerUnavailableError(
                f"The motion-planner worker ({self.python}) {why} at {what} for {self.env_id}. "
                f"Its log ends with:\n{tail}\nIf the planner environment is broken, make it again "
                "with: bash scripts/setup_maniskill.sh")
        return json.loads(line)

    def plan(self, seed: int) -> dict:
        """Solve the task from ``reset(seed=seed)``: a dict with ``ok``, ``success`` (of the
        planner's own rollout), ``actions`` float64 (T, 8) (``pd_joint_pos``: 7 arm targets in rad,
        gripper in [-1, 1]) and ``error``."""
        try:
            self._proc.stdin.write(json.dumps({"seed": int(seed)}) + "\n")
            self._proc.stdin.flush()
        except OSError:  # the worker died; _read reports how, with its log
            pass
        answer = self._read(f"seed {seed}")
        answer["actions"] = np.asarray(answer["actions"], dtype=np.float64).reshape(-1, 8)
        return answer

    @staticmethod
    def _stop(proc: subprocess.Popen, log) -> None:
        if proc.poll() is None:
            try:
                proc.stdin.write("\n")
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                proc.kill()
                proc.wait()
        log.close()
        try:
            os.unlink(log.name)
        except OSError:
            pass

    def close(self) -> None:
        """Stop the worker."""
        self._finalizer()


class MotionPlannerExpert:
    """ManiSkill's motion-planning solution of a task, replayed in PolyTask's env (module docstring).

    ``act(obs)`` takes a PolyTask observation dict (uses ``obs["state"][:7]``, the arm's joint
    positions) and returns a float32 (8,) ``pd_joint_delta_pos`` action in [-1, 1]. The plan of an
    episode is fetched on its first step from the env's reset seed, so the env must be reset with
    ``reset(seed=...)``.

    Args:
        task: a :data:`polytask.suites.maniskill.TASKS` name.
        env: the env it acts in (a :class:`polytask.suites.maniskill.ManiSkillEnv`, possibly wrapped),
            with ``control_mode="pd_joint_delta_pos"``.
        planner: the planner's virtual environment or python (see :func:`find_planner_python`).
        max_substeps: extra steps allowed to reach a target more than 0.1 rad away.
        timeout_s: seconds to wait for the worker to start and for each plan.

    Raises:
        UnknownTaskError, ValueError: a task or controller the expert cannot demonstrate.
        PlannerUnavailableError: no planner environment (the message gives the setup command).
    """

    def __init__(self, task: str, env, planner: str | None = None, max_substeps: int = 10,
                 timeout_s: float = 300.0):
        check_task(task, TASKS, "maniskill")
        self.task, self.env, self.max_substeps = task, env, int(max_substeps)
        base = env.unwrapped
        if getattr(base, "control_mode", None) != "pd_joint_delta_pos":
            raise ValueError("The ManiSkill motion-planner expert acts with control_mode=pd_joint_delta_pos; "
                             f"the env uses {getattr(base, 'control_mode', None)!r}. Collect demos with "
                             "suite.env.control_mode=pd_joint_delta_pos.")
        self.python = find_planner_python(planner)
        self.timeout_s = timeout_s
        self._worker: PlannerWorker | None = None
        self._episode = None
        self.last_plan: dict | None = None

    def _new_episode(self) -> None:
        base = self.env.unwrapped
        if base.episode_seed is None:
            raise ValueError("The motion-planner expert needs episodes reset with a seed: env.reset(seed=...)")
        if self._worker is None:
            self._worker = PlannerWorker(env_id(self.task), self.python, self.timeout_s)
        self.last_plan = self._worker.plan(base.episode_seed)
        usable = self.last_plan["ok"] and self.last_plan["success"] and len(self.last_plan["actions"]) > 0
        self._targets = self.last_plan["actions"] if usable else None
        self._k, self._sub = 0, 0
        self._episode = base.episode_index

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``pd_joint_delta_pos`` action float32 (8,) towards the plan's current joint target."""
        if self._episode != self.env.unwrapped.episode_index:
            self._new_episode()
        qpos = np.asarray(obs["state"][:7], dtype=np.float64)
        if self._targets is None:  # no plan: hold still with the gripper open (the episode fails)
            return np.concatenate([np.zeros(7), [1.0]]).astype(np.float32)
        target = self._targets[min(self._k, len(self._targets) - 1)]
        delta = (target[:7] - qpos) / JOINT_DELTA_SCALE
        if self._k < len(self._targets):
            if np.abs(delta).max() <= 1.0 or self._sub >= self.max_substeps:
                self._k, self._sub = self._k + 1, 0
            else:
                self._sub += 1
        return np.concatenate([np.clip(delta, -1.0, 1.0), target[7:8]]).astype(np.float32)

    def close(self) -> None:
        """Stop the planner worker."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
