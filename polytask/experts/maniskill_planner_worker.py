"""ManiSkill motion-planner worker: runs in the separate planner environment, not in PolyTask's.

ManiSkill 3.0.1's motion-planning solutions need ``mplib==0.1.1``, which is built for NumPy 1 and
crashes (segfault) under NumPy 2; every newer mplib (0.2.x) also requires ``numpy<2`` and has a
different API. So the planner runs in its own virtual environment (``numpy<2``, ``mani-skill==3.0.1``,
``torch``; made by ``scripts/setup_maniskill.sh``) and this script is its only code. It imports
nothing from PolyTask, so it runs by path:

    <planner python> polytask/experts/maniskill_planner_worker.py --env-id PickCube-v1

Protocol (one JSON object per line): the parent writes ``{"seed": <int>}`` on stdin; the worker runs
ManiSkill's solution for ``--env-id`` from ``reset(seed=<int>)`` in a ``pd_joint_pos`` env on the CPU
backend and answers on stdout with ``{"seed", "ok", "success", "actions", "error"}``: ``actions`` is the
list of the ``pd_joint_pos`` actions it executed (each 7 arm joint targets in radians, then the
gripper command in [-1, 1]), ``success`` whether ManiSkill's success test held at the end, ``ok``
false when the planner found no plan (``error`` says why). An empty line or end of input stops it.
Everything the planner prints goes to stderr, so stdout carries only answers. The first line the
worker writes is ``{"ready": true, "env_id": ...}`` once the env is built.
"""

import os
import sys

# Running by path puts this folder first on sys.path; drop it so that nothing here shadows a package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402


def _protocol_stdout():
    """A stream on the real stdout for answers; fd 1 then points at stderr, so that prints of the
    planner (Python or C++) cannot corrupt the protocol."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", required=True, help="ManiSkill env id, e.g. PickCube-v1")
    args = parser.parse_args()
    out = _protocol_stdout()

    import gymnasium as gym
    import mani_skill.envs  # noqa: F401  (registers the envs)
    import numpy as np
    from mani_skill.examples.motionplanning.panda.run import MP_SOLUTIONS

    if args.env_id not in MP_SOLUTIONS:
        out.write(json.dumps({"ready": False, "error": f"ManiSkill has no motion-planning solution for "
                              f"{args.env_id}; those with one: {sorted(MP_SOLUTIONS)}"}) + "\n")
        return

    class Recorder(gym.Wrapper):
        """Keeps the actions the solution executes since the last reset."""

        def reset(self, **kwargs):
            self.actions = []
            return self.env.reset(**kwargs)

        def step(self, action):
            self.actions.append(np.asarray(action, dtype=np.float64).reshape(-1).tolist())
            return self.env.step(action)

    env = Recorder(gym.make(args.env_id, obs_mode="none", control_mode="pd_joint_pos", num_envs=1,
                            sim_backend="physx_cpu", render_backend="cpu"))
    solve = MP_SOLUTIONS[args.env_id]
    out.write(json.dumps({"ready": True, "env_id": args.env_id}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            break
        seed = int(json.loads(line)["seed"])
        answer = {"seed": seed, "ok": True, "success": False, "actions": [], "error": None}
        try:
            res = solve(env, seed=seed, debug=False, vis=False)
        except Exception as e:  # the solutions raise on unreachable grasps and the like
            res, answer["error"] = -1, f"{type(e).__name__}: {e}"
        if isinstance(res, int) and res == -1:
            answer["ok"] = False
            answer["error"] = answer["error"] or "the motion planner found no plan"
        else:
            answer["success"] = bool(np.asarray(res[-1]["success"]).reshape(-1)[0])
        answer["actions"] = getattr(env, "actions", [])
        out.write(json.dumps(answer) + "\n")
    env.close()


if __name__ == "__main__":
    main()
