"""Skill models of SPiRL (Pertsch et al. 2020, "Accelerating RL with Learned Skill Priors") and
SkiLD (Pertsch et al. 2021, "Demonstration-Guided RL with Learned Skills"), trained offline
on state features:

- :class:`SkillPriorAgent`: SPiRL's closed-loop skill VAE and learned skill prior, trained on
  task-agnostic play data. Over windows of H steps (s_1:H, a_1:H):

      L = Σ_t ½‖π(s_t, z) − a_t‖² + β·KL(q(z | s, a) ‖ N(0, I)) − log p(z̄ | s_1),   z ~ q,

  with z̄ the sample z detached, so the prior learns the posterior without shaping it (SPiRL's
  ``nll_prior_train``). The first term is the Gaussian NLL of a unit-variance decoder up to a constant.
- :class:`SkillPosteriorAgent`: SkiLD's skill posterior q_D(z | s_1), trained on the demos by the
  NLL of the frozen skill encoder's samples, the skill model frozen.
- :class:`DemoDiscriminatorAgent`: SkiLD's state discriminator D(s) (demos 1, play data 0), trained
  by binary cross-entropy.

The first two act in an env: at an episode start and every H steps they draw a skill z from their
skill distribution at the current state and then run the decoder π(a | s, z) closed-loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polytask.agents.base import Agent, LossAgent
from polytask.agents.configs.skills import DemoDiscriminatorConfig, SkillConfig, SkillPosteriorConfig, SkillPriorConfig
from polytask.agents.sequence import MinMaxNormalizer, env_slots
from polytask.errors import PolyTaskError, require_features
from polytask.nets.mlp import mlp
from polytask.nets.skills import (
    GaussianMLP,
    SkillDecoder,
    SkillEncoder,
    gaussian_kl,
    gaussian_nll,
    rsample,
)


class NotAPolicyError(PolyTaskError, TypeError):
    """An agent that scores states rather than acting (the demo discriminator) was asked for actions."""


class SkillModel(nn.Module):
    """The skill VAE and its prior: the state normaliser (buffers, fitted on the play data), the LSTM
    encoder q(z | s_1:H, a_1:H), the closed-loop decoder π(a_t | s_t, z) and the prior p(z | s_1).

    Args:
        obs_dim, action_dim: D and A.
        z_dim: Z, the skill size (SPiRL: 10).
        hidden_dim: LSTM and MLP width.
        hidden_depth: hidden layers of the decoder and prior MLPs.
    """

    def __init__(self, obs_dim: int, action_dim: int, z_dim: int, hidden_dim: int, hidden_depth: int):
        super().__init__()
        self.normalizer = MinMaxNormalizer(obs_dim)
        self.encoder = SkillEncoder(obs_dim, action_dim, z_dim, hidden_dim)
        self.decoder = SkillDecoder(obs_dim, z_dim, action_dim, hidden_dim, hidden_depth)
        self.prior = GaussianMLP(obs_dim, z_dim, hidden_dim, hidden_depth)


class SkillAgent(Agent):
    """What the skill agents share: the skill model, training windows, and acting with skills drawn
    from :meth:`skill_distribution` every ``horizon`` steps and decoded closed-loop.

    Args:
        obs_shapes: shape per observation key; uses ``obs_shapes["state"]`` (D,).
        action_dim: A; actions are clipped to [-1, 1] when acting.
        obs_type: must be ``"features"``.
        device: torch device.
        **options: :class:`polytask.agents.configs.skills.SkillConfig` (``self.cfg``; a subclass's config).
    """

    config_class = SkillConfig
    name = "skill"

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        require_features(self.name, obs_type)
        self.device = torch.device(device)
        self.obs_dim, self.action_dim = int(obs_shapes["state"][0]), action_dim
        self.z_dim, self.horizon = cfg.z_dim, cfg.horizon
        self.model = SkillModel(self.obs_dim, action_dim, cfg.z_dim, cfg.hidden_dim, cfg.hidden_depth).to(self.device)
        self._z = np.zeros((0, cfg.z_dim), np.float32)  # (N, Z) each env's current skill
        self._age = np.zeros(0, np.int64)  # (N,) steps each env has run its skill (horizon: draw a new one)

    @property
    def window(self) -> tuple[int, int, int]:
        """Training windows ``(obs_steps, action_steps, action_start)`` for
        :meth:`polytask.data.buffer.DemoBuffer.sample_windows`: H states and the actions taken from
        them (steps t−H+1..t)."""
        return self.horizon, self.horizon, 1 - self.horizon

    def fit_dataset(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Fit the state normaliser on the training states float32 (N, D) (``actions`` unused)."""
        self.model.normalizer.fit(states)

    def skill_distribution(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The distribution skills are drawn from when acting, at normalised states float32 (B, D):
        ``(mean, log_std)`` float32 (B, Z)."""
        raise NotImplementedError

    def _windows(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised states float32 (B, H, D) and actions float32 (B, H, A) of a window batch."""
        states = self.model.normalizer(batch["state"].to(self.device, torch.float32))
        return states, batch["action"].to(self.device, torch.float32)

    @torch.no_grad()
    def decode(self, obs: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
        """The decoder's action for skills ``z`` float32 (B, Z) or (Z,) at ``obs["state"]`` float32 (B, D)
        or (D,): float32 (B, A) or (A,), clipped to [-1, 1]. The callable a
        :class:`polytask.suites.skills.SkillWrapper` runs for H steps."""
        state = torch.as_tensor(np.asarray(obs["state"], np.float32), device=self.device)
        z = torch.as_tensor(np.asarray(z, np.float32), device=self.device)
        action = self.model.decoder(self.model.normalizer(state), z).clamp(-1.0, 1.0)
        return action.cpu().numpy()

    @torch.no_grad()
    def encode_skill(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The encoder's mean skill of windows of raw states float32 (B, H, D) and actions (B, H, A):
        float32 (B, Z) (DAgger play, :mod:`polytask.experts.kitchen_dagger`)."""
        batch = {"state": torch.as_tensor(np.asarray(states, np.float32)),
                 "action": torch.as_tensor(np.asarray(actions, np.float32))}
        return self.model.encoder(*self._windows(batch))[0].cpu().numpy()

    @torch.no_grad()
    def sample_skill(self, state: np.ndarray, mean: bool = False) -> np.ndarray:
        """Skills drawn from :meth:`skill_distribution` at raw states float32 (B, D): float32 (B, Z)
        (the mean when ``mean``)."""
        m, log_std = self.skill_distribution(self.model.normalizer(
            torch.as_tensor(np.asarray(state, np.float32), device=self.device)))
        return (m if mean else rsample(m, log_std)).cpu().numpy()

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Closed-loop skill execution per env: a new skill at an episode start and after every H
        steps, then the decoder's action at the current state.

        Args:
            obs: ``state`` float32 (B, D); optionally ``env_index`` int64 (B,) and ``is_first`` bool (B,).
            eval_mode: with ``eval_mean_skill``, take the mean skill.
            step: unused.

        Returns:
            float32 (B, A) in [-1, 1].
        """
        state = np.asarray(obs["state"], np.float32)
        idx, first = env_slots(obs, len(state))
        if int(idx.max()) >= len(self._age):
            grow = int(idx.max()) + 1 - len(self._age)
            self._z = np.concatenate([self._z, np.zeros((grow, self.z_dim), np.float32)])
            self._age = np.concatenate([self._age, np.full(grow, self.horizon, np.int64)])
        need = first | (self._age[idx] >= self.horizon)
        if need.any():
            self._z[idx[need]] = self.sample_skill(state[need], mean=eval_mode and self.cfg.eval_mean_skill)
            self._age[idx[need]] = 0
        self._age[idx] += 1
        return self.decode({"state": state}, self._z[idx]).astype(np.float32)

    def reset(self) -> None:
        """Forget every env's current skill."""
        self._z, self._age = np.zeros((0, self.z_dim), np.float32), np.zeros(0, np.int64)


class SkillPriorAgent(SkillAgent, LossAgent):
    """SPiRL's closed-loop skill VAE with a learned skill prior (see the module docstring), trained
    with RAdam on windows of the play data.

    Options: :class:`polytask.agents.configs.skills.SkillPriorConfig` (β: SPiRL kitchen 5e-4, maze 1e-2;
    SkiLD maze 1e-3).
    """

    config_class = SkillPriorConfig
    name = "skill_prior"

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        super().__init__(obs_shapes, action_dim, obs_type, device, **options)
        self.opt = torch.optim.RAdam(self.model.parameters(), lr=self.cfg.lr)

    def skill_distribution(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned prior p(z | s)."""
        return self.model.prior(state)

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """SPiRL's loss on windows ``state`` float32 (B, H, D), ``action`` float32 (B, H, A).

        Returns:
            the scalar loss and its parts: ``rec`` (½ squared error summed over action dimensions,
            mean over steps), ``rec_mse`` (mean squared error per action entry), ``kl`` (nats, to
            N(0, I)), ``prior_nll`` (nats, of the detached posterior sample under the prior) and, for
            comparison, ``standard_nll`` (nats, of that sample under N(0, I): what the prior improves on).
        """
        states, actions = self._windows(batch)
        mean_q, log_std_q = self.model.encoder(states, actions)
        z = rsample(mean_q, log_std_q)
        recon = self.model.decoder(states, z[:, None].expand(-1, states.shape[1], -1))
        sq = (recon - actions).pow(2)
        rec = 0.5 * sq.sum(-1).mean()
        kl = gaussian_kl(mean_q, log_std_q, torch.zeros_like(mean_q), torch.zeros_like(log_std_q)).mean()
        prior_nll = gaussian_nll(z.detach(), *self.model.prior(states[:, 0])).mean()
        loss = rec + self.cfg.beta * kl + prior_nll
        standard_nll = gaussian_nll(z.detach(), torch.zeros_like(z), torch.zeros_like(z)).mean()
        return loss, {"rec": rec.item(), "rec_mse": sq.mean().item(), "kl": kl.item(), "prior_nll": prior_nll.item(),
                      "standard_nll": standard_nll.item()}



class SkillPosteriorAgent(SkillAgent):
    """SkiLD's skill posterior q_D(z | s): a Gaussian MLP trained on demo windows by the NLL of the
    frozen skill encoder's samples z ~ q(z | s_1:H, a_1:H) at the window's first state. The skill
    model (normaliser, encoder, decoder, prior) comes from a skill-prior run
    (:meth:`load_skill_model`) and is never trained; it travels in this agent's state, so an exported
    posterior acts on its own. Acting draws skills from the posterior.

    Options: :class:`polytask.agents.configs.skills.SkillPosteriorConfig` (the sizes must match the
    skill-prior run's).
    """

    config_class = SkillPosteriorConfig
    name = "skill_posterior"

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        super().__init__(obs_shapes, action_dim, obs_type, device, **options)
        self.model.requires_grad_(False)
        self.model.eval()
        self.posterior = GaussianMLP(self.obs_dim, self.z_dim, self.cfg.hidden_dim,
                                     self.cfg.hidden_depth).to(self.device)
        self.opt = torch.optim.Adam(self.posterior.parameters(), lr=self.cfg.lr)

    def fit_dataset(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Nothing to fit: states are normalised as the skill model was trained (on the play data)."""

    def load_skill_model(self, state: dict[str, Any]) -> None:
        """Take the frozen skill model from a skill-prior agent's ``state_dict``.

        Raises:
            ValueError: if its networks do not fit this agent's sizes (the message names them).
        """
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as e:
            raise ValueError(f"the skill model does not fit z_dim={self.z_dim}, hidden_dim and hidden_depth of this "
                             f"agent: {e}") from e

    def skill_distribution(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The demo skill posterior q_D(z | s)."""
        return self.posterior(state)

    def update(self, batch: dict[str, torch.Tensor], step: int = 0) -> dict[str, float]:
        """One Adam step on windows ``state`` float32 (B, H, D), ``action`` float32 (B, H, A).

        Returns:
            ``posterior_nll`` (nats, of the frozen encoder's skill samples), ``kl_to_encoder``
            (KL(q ‖ q_D), nats) and ``posterior_std`` (mean std of q_D).
        """
        states, actions = self._windows(batch)
        with torch.no_grad():
            mean_q, log_std_q = self.model.encoder(states, actions)
            z = rsample(mean_q, log_std_q)
        mean, log_std = self.posterior(states[:, 0])
        nll = gaussian_nll(z, mean, log_std).mean()
        self.opt.zero_grad(set_to_none=True)
        nll.backward()
        self.opt.step()
        kl = gaussian_kl(mean_q, log_std_q, mean.detach(), log_std.detach()).mean()
        return {"posterior_nll": nll.item(), "kl_to_encoder": kl.item(),
                "posterior_std": log_std.detach().exp().mean().item()}

    def train(self, training: bool = True) -> None:
        self.posterior.train(training)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "posterior": self.posterior.state_dict(),
                "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.posterior.load_state_dict(state["posterior"])
        self.opt.load_state_dict(state["opt"])
        self.reset()


class DemoDiscriminatorAgent(Agent):
    """SkiLD's demo discriminator D(s) = σ(f(s)): a small MLP on normalised states, trained by binary
    cross-entropy with demo states labelled 1 and play-data states 0. SkiLD weights its skill-space
    SAC with it (reward 0.9·r + 0.1·(log D − log(1 − D)), KL weight (1 − D)·KL(π‖p) + D·KL(π‖q_D)).
    It scores states and does not act (:meth:`act` raises :class:`NotAPolicyError`).

    Args:
        obs_shapes: shape per observation key; uses ``obs_shapes["state"]`` (D,).
        action_dim: unused (the discriminator sees states only).
        obs_type: must be ``"features"``.
        device: torch device.
        **options: :class:`polytask.agents.configs.skills.DemoDiscriminatorConfig` (``self.cfg``).
    """

    config_class = DemoDiscriminatorConfig
    #: scores states, takes no actions
    is_policy = False

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", **options):
        cfg = self.configure(options)
        require_features("demo_discriminator", obs_type)
        self.device = torch.device(device)
        obs_dim = int(obs_shapes["state"][0])
        self.normalizer = MinMaxNormalizer(obs_dim).to(self.device)
        self.net = mlp(obs_dim, cfg.hidden_dim, 1, cfg.hidden_depth).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)

    def fit_dataset(self, states: np.ndarray) -> None:
        """Fit the state normaliser on the demo and play states together, float32 (N, D)."""
        self.normalizer.fit(states)

    def logits(self, state: torch.Tensor) -> torch.Tensor:
        """f(s): float32 (B,) logits of D for raw states float32 (B, D)."""
        return self.net(self.normalizer(state.to(self.device, torch.float32))).squeeze(-1)

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """BCE on ``state`` float32 (B, D) with ``label`` float32 (B,) (1 demo, 0 play). Returns the
        loss and ``bce``, ``accuracy`` (balanced: the mean of the demo and play accuracies), ``d_demo``
        and ``d_play`` (mean D on each)."""
        logits = self.logits(batch["state"])
        label = batch["label"].to(self.device, torch.float32)
        bce = F.binary_cross_entropy_with_logits(logits, label)
        with torch.no_grad():
            d, demo = torch.sigmoid(logits), label > 0.5
            right = (d > 0.5) == demo
            acc = 0.5 * (right[demo].float().mean() + right[~demo].float().mean())
        return bce, {"bce": bce.item(), "accuracy": acc.item(), "d_demo": d[demo].mean().item(),
                     "d_play": d[~demo].mean().item()}

    def update(self, batch: dict[str, torch.Tensor], step: int = 0) -> dict[str, float]:
        """One Adam step on :meth:`losses` (see there for the batch and the metrics)."""
        loss, parts = self.losses(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return parts

    @torch.no_grad()
    def score(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """:meth:`losses`' metrics on held-out states, without learning."""
        return self.losses(batch)[1]

    @torch.no_grad()
    def predict(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """D(s) for ``obs["state"]`` float32 (B, D): float32 (B,) in (0, 1), the probability that s is a demo state."""
        state = torch.as_tensor(np.asarray(obs["state"], np.float32), device=self.device)
        return torch.sigmoid(self.logits(state)).cpu().numpy()

    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Raises :class:`NotAPolicyError`: the discriminator scores states (:meth:`predict`)."""
        raise NotAPolicyError("agent=demo_discriminator scores states (D(s)) and does not act; evaluate a policy "
                              "instead (agent=skill_prior or agent=skill_posterior)")

    def train(self, training: bool = True) -> None:
        self.net.train(training)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "normalizer": self.normalizer.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.opt.load_state_dict(state["opt"])
