"""A trained agent's weights as a demonstrator (DMC experts come from DrQ-v2 runs).

It lives with the training code, not with the scripted experts in :mod:`polytask.experts`, because it
loads a trained policy (:func:`polytask.training.weights.load_policy`): the experts package stays below
the training layer."""

from __future__ import annotations

import numpy as np

from polytask.errors import ConfigError, PolyTaskError
from polytask.training.weights import find_weights, load_policy


class ExpertWeightsError(PolyTaskError, FileNotFoundError):
    """Expert weights that are missing or unusable; the message gives the command that makes them."""


class SnapshotExpert:
    """Acts with the mean action of an agent saved by a finished run (``<data_dir>/weights/...``).

    Args:
        task: the task to act on (fills ``{task}`` in ``weights``).
        env: the env it will act in; its observation/action spaces must match the agent's.
        weights: path of the weights file, with an optional ``{task}`` placeholder.
        train_command: the command that makes missing weights, for the error message (``{task}``
            is filled in).

    Raises:
        ExpertWeightsError: if the file is missing or its agent does not fit ``env``.
    """

    def __init__(self, task: str, env, weights: str, train_command: str = ""):
        path = find_weights(weights.format(task=task), "set suite.expert.weights=<file>")
        if not path.exists():
            how = f"\nTrain them with:\n  {train_command.format(task=task)}" if train_command else ""
            raise ExpertWeightsError(f"No expert weights for {task} at {path}.{how}")
        try:
            self.agent = load_policy(path, env, "cpu")
        except ConfigError as e:
            raise ExpertWeightsError(f"Expert weights {path} do not fit the {task} env: {e}") from e
        self.agent.train(False)
        self.path = path

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Mean action float32 (A,) for one observation dict."""
        return self.agent.act({k: v[None] for k, v in obs.items()}, eval_mode=True)[0]
