"""The agent contract: everything a trainer, the evaluator or :func:`polytask.training.weights.load_policy`
calls on an agent, with the defaults of the optional hooks.

A new algorithm subclasses :class:`Agent` in its own module, declares its options once as a dataclass
in :mod:`polytask.agents.configs` (its :attr:`Agent.config_class`), names both in
``cfgs/agent/<name>.yaml`` (``_target_``, and ``- /agent_schema@agent: <name>`` in its defaults), and
touches nothing else: what a run must hand it (demonstrations, another run's
weights, a frozen base policy) it names in :meth:`Agent.inputs`, and the builder provides those as
constructor arguments; what it does per step or per episode beyond acting and updating it does
through the hooks below, which the trainers call on every agent.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from polytask.agents.configs import AgentConfig, make_config
from polytask.nets.mlp import compile_modules
from polytask.utils import Metric, metric_floats


class Agent(abc.ABC):
    """Base class of every PolyTask agent.

    Constructors take ``obs_shapes`` (per observation key its shape, e.g. ``{"state": (39,)}`` or
    ``{"pixels": (9, 84, 84), "state": (39,)}``), ``action_dim`` (A, actions in [-1, 1]), ``obs_type``
    (``"features"`` or ``"pixels"``), ``device`` and their options from the agent config as keyword
    arguments (turned into :attr:`config_class` by :meth:`configure`, read as ``self.cfg``), plus the
    inputs named by :meth:`inputs` (keyword arguments of the same names, None when not asked for).

    Required: :meth:`act`, :meth:`update`, :meth:`state_dict`, :meth:`load_state_dict`, :meth:`train`.
    Optional hooks (the defaults do nothing): :meth:`wrap_env`, :meth:`observe`, :meth:`episode_rewards`,
    :meth:`check_frozen`, :meth:`reset_networks`, :meth:`networks_to_compile`.
    """

    #: the dataclass of this agent's options (:mod:`polytask.agents.configs`): fields, defaults, docs, checks
    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    #: constructor arguments that :meth:`state_dict` holds under the same names, so that
    #: ``load_policy`` can rebuild the agent from its weights file alone (a student's ``goals``)
    state_init_args: ClassVar[tuple[str, ...]] = ()
    #: whether :meth:`episode_rewards` gives the rewards learnt from (the trainer then stores each
    #: episode at its end, with those rewards, instead of step by step with the env's)
    rewards_at_episode_end: bool = False
    #: whether :meth:`reset_networks` is implemented (``reset_every_steps`` needs it)
    can_reset_networks: ClassVar[bool] = False
    #: shapes (without the batch axis) of the keys :meth:`observe` adds; set per instance
    extra_obs_shapes: Mapping[str, tuple[int, ...]] = MappingProxyType({})
    #: whether :meth:`compile_once` has compiled the networks (set per instance)
    compiled: bool = False

    def configure(self, options: Mapping[str, Any]) -> AgentConfig:
        """Set and return ``self.cfg``, the agent's options ``options`` as its :attr:`config_class`.

        Raises:
            ConfigError: for an option the config lacks, a value of the wrong type, or a failed check
                (:func:`polytask.agents.configs.make_config`).
        """
        self.cfg = make_config(self.config_class, options)
        return self.cfg

    @classmethod
    def inputs(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The run inputs this agent needs with ``options`` (its config), passed to the constructor
        under these names by the builder (:mod:`polytask.training.inputs`):

        - ``"demos"``: a :class:`polytask.data.buffer.DemoBuffer` over the run's demos (its obs key);
        - ``"demo_episodes"``: the first task's demos, ``list[polytask.data.demos.Episode]``;
        - ``"bc_state"``: the agent state of the BC run of the same suite, tasks, obs_type, demo
          count and seed (``bc_weights=<file>`` names another weights file);
        - ``"base_policy"``: the frozen policy of the ``base_policy`` weights file;
        - ``"skill_model"``, ``"skill_posterior"``, ``"demo_discriminator"``: the weights of the
          earlier skill stages of SPiRL/SkiLD (:mod:`polytask.training.skill_inputs`), made first
          when missing;
        - ``"flat_prior"``: the flat prior's weights (``agent=flat_prior``), made first likewise;
        - ``"collective"``: the collective's weights as plain data (``train_collective.py``'s students).

        Default: none.
        """
        return ()

    @abc.abstractmethod
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Actions float32 (B, A) in [-1, 1] for a batch of observations ``obs`` (per key (B, ...);
        also ``task_id``, ``env_index`` int64 (B,) and ``is_first`` bool (B,)), exploring unless
        ``eval_mode``; ``step`` is the agent step (for schedules)."""

    @abc.abstractmethod
    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, Metric]:
        """One update on ``batch`` (what the agent's trainer samples: a replay batch, demo
        transitions or windows); returns finite metrics (losses, Q values, ...): Python floats or
        0-d tensors without gradient. Tensors need no host sync per update: the trainer converts them
        (:func:`polytask.utils.metric_floats`) and checks them for NaN/inf when it logs."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training (networks, optimisers, sampler states) as tensors,
        numbers, strings and containers only: checkpoints and weights files are read without
        unpickling code."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. Raises ValueError or RuntimeError if ``state`` does not fit."""

    @abc.abstractmethod
    def train(self, training: bool = True) -> None:
        """Switch the networks to training or evaluation mode (dropout, normalisation)."""

    # -- optional hooks ---------------------------------------------------------------------------
    def networks_to_compile(self) -> tuple[torch.nn.Module, ...]:
        """The networks that the ``compile`` option (where the agent's config has it) compiles in place
        with ``torch.compile`` before the first update (:meth:`compile_once`): those its update runs.
        Default: none."""
        return ()

    def compile_once(self) -> None:
        """Compile :meth:`networks_to_compile` in place, once, when ``self.cfg.compile`` is set; updates
        call it first (:func:`polytask.nets.mlp.compile_modules`: the state dict keys stay the same)."""
        if getattr(self.cfg, "compile", False) and not self.compiled:
            compile_modules(*self.networks_to_compile())
            self.compiled = True

    def wrap_env(self, env: gym.Env) -> gym.Env:
        """The env this agent acts in, made from the suite's ``env`` (with the run's training wrappers
        for the training env): the online trainer's env and every evaluation env go through it, and
        :meth:`act` returns actions of its action space. The agent itself is built for ``env``'s
        spaces. Skill-space agents return a wrapper whose action is a skill run for H env steps.
        Default: ``env`` itself."""
        return env

    def observe(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Extras computed once for every observation an online trainer receives (batch of 1, the
        keys :meth:`act` gets), stored with it as observation keys listed in ``extra_obs_shapes``
        (the residual agent's base action). Default: none."""
        return {}

    def episode_rewards(self, obs: dict[str, np.ndarray], step: int) -> np.ndarray:
        """With :attr:`rewards_at_episode_end`: the rewards float32 (T,) of an episode whose
        observations are ``obs`` (per key (T+1, ...), the reset one first), at agent ``step``
        (ROT's optimal-transport rewards)."""
        raise NotImplementedError(f"{type(self).__name__} computes no episode rewards")

    def check_frozen(self) -> None:
        """Raise if weights that must stay frozen changed (called before the final weights are
        exported). Default: nothing is frozen."""
        return None

    def reset_networks(self) -> None:
        """Re-initialise the networks, keeping the data (periodic resets, ``reset_every_steps``);
        agents that implement it set :attr:`can_reset_networks`."""
        raise NotImplementedError(f"{type(self).__name__} cannot reset its networks")


class LossAgent(Agent):
    """An agent whose network ``self.model`` is trained by one step of its optimiser ``self.opt`` on
    :meth:`losses` per update (offline models: skill VAEs and priors, BeT); its state is the two."""

    def train(self, training: bool = True) -> None:
        self.model.train(training)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore model and optimiser, then forget per-episode memory (:meth:`reset`)."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.reset()

    def reset(self) -> None:
        """Forget per-episode memory (skills or plans being executed). Default: none."""

    @abc.abstractmethod
    def losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise (a scalar tensor) and its parts as floats, on ``batch``."""

    def update(self, batch: dict[str, Any], step: int = 0) -> dict[str, Metric]:
        """One optimiser step on :meth:`losses`; returns ``loss`` (a 0-d tensor) and its parts."""
        loss, parts = self.losses(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.clip_gradients()
        self.opt.step()
        return {"loss": loss.detach(), **parts}

    def clip_gradients(self) -> None:
        """Called between the backward pass and the optimiser step (e.g. to clip gradient norms). Default: nothing."""

    @torch.no_grad()
    def score(self, batch: dict[str, Any]) -> dict[str, float]:
        """:meth:`losses` on held-out data, without learning (``loss`` and its parts, as floats)."""
        loss, parts = self.losses(batch)
        return metric_floats({"loss": loss, **parts})
