"""EXTRACT's skill model (Zhang et al. 2024, "EXTRACT: Efficient Policy Learning by Extracting
Transferable Robot Skills from Offline Data", §3.2), trained on the skill segments that
:mod:`polytask.skills.extract` finds in play data. A skill is a discrete id k (K clusters) with a
continuous argument z (5-d, bounded to ±bound by z = bound·tanh(u)); the decoder turns (z, k) into a
plan of actions with the progress through the skill (open-loop, as EXTRACT's). Per segment
(s_1, a_1:L, k, progress_1:L):

    L = Σ_t ½‖π_a(z, k)_t − a_t‖² + Σ_t (π_p(z, k)_t − progress_t)² + β·KL(q(u | a, k) ‖ N(0, I))
        − log p(k | s_1) − log p(ū | s_1, k),      u ~ q, z = bound·tanh(u),

with means over the segment's steps, β = 1e-3 and ū = u detached, so the priors follow the
posterior without shaping it. The KL is taken over u: a KL is unchanged by the same bijection
(tanh) applied to both distributions, so it equals the KL over the bounded z. The action term is a
unit-variance Gaussian NLL up to a constant (as SPiRL's).

Acting: at an episode start and whenever the current plan is used up, a new skill k ~ p(k | s),
z ~ p(z | s, k) is drawn and decoded into a plan of ``max_skill_len`` actions, cut after the first
step whose progress reaches ``progress_done`` (EXTRACT's termination); the plan is then executed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polytask.agents.base import LossAgent
from polytask.agents.configs.extract import ExtractSkillConfig
from polytask.agents.sequence import MinMaxNormalizer, env_slots
from polytask.errors import require_features
from polytask.nets.extract import ArgumentEncoder, SkillDecoder
from polytask.nets.mlp import mlp
from polytask.nets.skills import GaussianMLP, gaussian_kl, gaussian_nll, rsample
from polytask.suites.skills import plan_length


class ExtractModel(nn.Module):
    """The state normaliser (buffers, fitted on the play data), q(u | a, k), π(a_1:L, progress_1:L | z, k),
    p(k | s) (logits MLP) and p(u | s, k)."""

    def __init__(self, obs_dim: int, action_dim: int, num_skills: int, z_dim: int, hidden_dim: int,
                 hidden_depth: int):
        super().__init__()
        self.normalizer = MinMaxNormalizer(obs_dim)
        self.encoder = ArgumentEncoder(action_dim, num_skills, z_dim, hidden_dim)
        self.decoder = SkillDecoder(z_dim, num_skills, action_dim, hidden_dim)
        self.skill_prior = mlp(obs_dim, hidden_dim, num_skills, hidden_depth)
        self.argument_prior = GaussianMLP(obs_dim + num_skills, z_dim, hidden_dim, hidden_depth)


class ExtractSkillAgent(LossAgent):
    """EXTRACT's skill model (see the module docstring), trained with Adam on segment batches of
    :class:`polytask.skills.segments.SegmentBuffer`.

    Args:
        obs_shapes: uses ``obs_shapes["state"]`` (D,).
        action_dim: A; actions are clipped to [-1, 1] when acting.
        obs_type: must be ``"features"``.
        device: torch device.
        extract_model: with ``finetune_on=demos``, the play-trained model to start from (the run input
            ``extract_model``: :func:`polytask.training.skill_inputs.extract_spec`); its weights and state
            normaliser are copied.
        **options: :class:`polytask.agents.configs.extract.ExtractSkillConfig` (``self.cfg``).

    Raises:
        ValueError: if ``extract_model`` does not fit this agent's sizes.
    """

    config_class = ExtractSkillConfig
    name = "extract_skill"

    @classmethod
    def inputs(cls, options) -> tuple[str, ...]:
        """With ``finetune_on=demos`` the play-trained ``extract_model`` (made first when missing)."""
        return ("extract_model",) if options.get("finetune_on") == "demos" else ()

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", extract_model: dict | None = None, **options):
        cfg = self.configure(options)
        require_features(self.name, obs_type)
        self.device = torch.device(device)
        self.obs_dim, self.action_dim = int(obs_shapes["state"][0]), action_dim
        self.num_skills, self.z_dim, self.z_bound = cfg.num_skills, cfg.z_dim, float(cfg.z_bound)
        self.model = ExtractModel(self.obs_dim, action_dim, cfg.num_skills, cfg.z_dim, cfg.hidden_dim,
                                  cfg.hidden_depth).to(self.device)
        if extract_model is not None:
            try:
                self.model.load_state_dict(extract_model["model"])
            except RuntimeError as e:
                raise ValueError(f"the play-trained skill model does not fit this agent's sizes (num_skills, z_dim, "
                                 f"hidden_dim, hidden_depth): {e}") from e
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.reset()

    def fit_dataset(self, states: np.ndarray) -> None:
        """Fit the state normaliser on the training states float32 (N, D)."""
        self.model.normalizer.fit(states)

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """z = z_bound·tanh(u)."""
        return self.z_bound * torch.tanh(u)

    def _onehot(self, skill: torch.Tensor) -> torch.Tensor:
        return F.one_hot(skill.to(self.device, torch.int64), self.num_skills).float()

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of the module docstring on a segment batch (``state`` float32 (B, L, D), ``action``
        float32 (B, L, A), ``progress`` float32 (B, L), ``mask`` bool (B, L), ``length`` int64 (B,),
        ``skill`` int64 (B,)).

        Returns:
            the scalar loss and its parts: ``action_nll`` (½ squared error summed over action dims),
            ``action_mse`` (per entry), ``progress_mse``, ``kl`` (nats), ``skill_ce`` (nats, of p(k | s_1)),
            ``skill_accuracy`` (of its argmax) and ``argument_nll`` (nats, of ū under p(u | s_1, k)).
        """
        states = self.model.normalizer(batch["state"].to(self.device, torch.float32))
        actions = batch["action"].to(self.device, torch.float32)
        mask = batch["mask"].to(self.device, torch.float32)
        skill = batch["skill"].to(self.device, torch.int64)
        onehot = self._onehot(skill)
        mean_u, log_std_u = self.model.encoder(actions, onehot, batch["length"])
        u = rsample(mean_u, log_std_u)
        pred, progress = self.model.decoder(self.squash(u), onehot, actions.shape[1])
        n = mask.sum()
        sq = (pred - actions).pow(2)
        action_nll = (0.5 * sq.sum(-1) * mask).sum() / n
        progress_mse = ((progress - batch["progress"].to(self.device, torch.float32)).pow(2) * mask).sum() / n
        kl = gaussian_kl(mean_u, log_std_u, torch.zeros_like(mean_u), torch.zeros_like(log_std_u)).mean()
        logits = self.model.skill_prior(states[:, 0])
        skill_ce = F.cross_entropy(logits, skill)
        prior = self.model.argument_prior(torch.cat([states[:, 0], onehot], -1))
        argument_nll = gaussian_nll(u.detach(), *prior).mean()
        loss = action_nll + progress_mse + self.cfg.beta * kl + skill_ce + argument_nll
        return loss, {"action_nll": action_nll.item(), "action_mse": ((sq.mean(-1) * mask).sum() / n).item(),
                      "progress_mse": progress_mse.item(), "kl": kl.item(), "skill_ce": skill_ce.item(),
                      "skill_accuracy": (logits.argmax(-1) == skill).float().mean().item(),
                      "argument_nll": argument_nll.item()}

    @torch.no_grad()
    def sample_skill(self, state: np.ndarray, mean: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Skills from the priors at raw states float32 (B, D): k int64 (B,) ~ p(k | s) and z float32
        (B, Z) = bound·tanh(u), u ~ p(u | s, k) (with ``mean``: the most likely k and the mean u)."""
        s = self.model.normalizer(torch.as_tensor(np.asarray(state, np.float32), device=self.device))
        logits = self.model.skill_prior(s)
        k = logits.argmax(-1) if mean else torch.distributions.Categorical(logits=logits).sample()
        m, log_std = self.model.argument_prior(torch.cat([s, self._onehot(k)], -1))
        return k.cpu().numpy(), self.squash(m if mean else rsample(m, log_std)).cpu().numpy()

    @torch.no_grad()
    def decode(self, skill: np.ndarray, z: np.ndarray, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's plans for skills int64 (B,) and arguments float32 (B, Z): actions float32
        (B, L, A) clipped to [-1, 1] and progress float32 (B, L), L = ``steps`` (default ``max_skill_len``)."""
        z = torch.as_tensor(np.asarray(z, np.float32), device=self.device)
        action, progress = self.model.decoder(z, self._onehot(torch.as_tensor(np.asarray(skill))),
                                              steps or self.cfg.max_skill_len)
        return action.clamp(-1.0, 1.0).cpu().numpy(), progress.cpu().numpy()

    def plan_length(self, progress: np.ndarray) -> np.ndarray:
        """Steps of each plan run: up to and including the first whose progress float32 (B, L) reaches
        ``progress_done``, else all L. int64 (B,) (:func:`polytask.suites.skills.plan_length`)."""
        return plan_length(progress, self.cfg.progress_done)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], eval_mode: bool = True, step: int = 0) -> np.ndarray:
        """Per env, the next action of its current plan; a new skill and plan at an episode start and
        when the plan is used up (see the module docstring).

        Args:
            obs: ``state`` float32 (B, D); optionally ``env_index`` int64 (B,) and ``is_first`` bool (B,).
            eval_mode: with ``eval_mean_skill``, the most likely skill and mean argument.
            step: unused.

        Returns:
            float32 (B, A) in [-1, 1].
        """
        state = np.asarray(obs["state"], np.float32)
        idx, first = env_slots(obs, len(state))
        if int(idx.max()) >= len(self._pos):
            grow = int(idx.max()) + 1 - len(self._pos)
            self._skill = np.concatenate([self._skill, np.zeros(grow, np.int64)])
            self._z = np.concatenate([self._z, np.zeros((grow, self.z_dim), np.float32)])
            plan = np.zeros((grow, self.cfg.max_skill_len, self.action_dim), np.float32)
            self._plan = np.concatenate([self._plan, plan])
            self._plan_len = np.concatenate([self._plan_len, np.zeros(grow, np.int64)])
            self._pos = np.concatenate([self._pos, np.zeros(grow, np.int64)])
        need = first | (self._pos[idx] >= self._plan_len[idx])
        if need.any():
            k, z = self.sample_skill(state[need], mean=eval_mode and self.cfg.eval_mean_skill)
            plan, progress = self.decode(k, z)
            slots = idx[need]
            self._skill[slots], self._z[slots], self._plan[slots] = k, z, plan
            self._plan_len[slots], self._pos[slots] = self.plan_length(progress), 0
        action = self._plan[idx, self._pos[idx]]
        self._pos[idx] += 1
        return action.astype(np.float32)

    def reset(self) -> None:
        """Forget every env's current skill."""
        self._skill, self._z = np.zeros(0, np.int64), np.zeros((0, self.z_dim), np.float32)
        self._plan = np.zeros((0, self.cfg.max_skill_len, self.action_dim), np.float32)  # (N, L, A) each env's plan
        self._plan_len, self._pos = np.zeros(0, np.int64), np.zeros(0, np.int64)  # its length, the next step

