"""Meta-World's own scripted policies (``metaworld.policies``) as PolyTask experts."""

from __future__ import annotations

import warnings

import numpy as np

from polytask.suites import check_task
from polytask.suites.metaworld import TASKS


class ScriptedExpert:
    """Meta-World's hand-written policy for one task.

    ``act(obs)`` takes a PolyTask observation dict (uses ``obs["state"]``, float32 (39,)) and returns
    a float32 (4,) action clipped to [-1, 1]. All 50 v3 tasks have one (80–100% success). ``env``
    is accepted for the common expert signature and not needed.
    """

    def __init__(self, task: str, env=None):
        check_task(task, TASKS, "metaworld")
        from metaworld.policies import ENV_POLICY_MAP

        self.policy = ENV_POLICY_MAP[f"{task}-v3"]()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The scripted policy's action for ``obs`` (float32 (4,), in [-1, 1])."""
        with warnings.catch_warnings():  # the policies warn when their gains saturate the action
            warnings.simplefilter("ignore", UserWarning)
            action = self.policy.get_action(obs["state"].astype(np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)
