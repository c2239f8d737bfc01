"""ROT (Haldar et al., 2022, "Watch and Match"): DrQ-v2 that learns from optimal-transport rewards to
the demonstrations, starts from a BC policy and keeps close to the demos with a BC term.

- Rewards (§3.1): :class:`polytask.rewards.ot.OTRewarder` between each training episode and the
  demos, on raw states for features and, for pixels, on the features of a frozen copy of the
  encoder and critic trunk (the target encoder) refreshed every ``ot.update_target_every`` steps.
- BC start: encoder and actor copied from the BC run's weights (``load_bc``).
- Actor loss (Eq. 5): ``−(1−λ)·Q(s, π(s)) + λ·α·BC``, BC being −log N(a_d; μ(s_d), σ_bc²) on a
  batch of demonstrations (s_d, a_d) with BC's fixed σ_bc = 0.1; λ is the soft Q-filter (the
  fraction of the replay batch where the frozen BC policy's action scores a higher Q than the
  current policy's) or a schedule; α is ``bc_alpha``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from polytask.agents.configs.imitation import OTConfig, ROTConfig
from polytask.agents.drqv2 import DrQV2Agent
from polytask.agents.qlearning import twin_q_reduce
from polytask.data.buffer import DemoBuffer, stack_frames
from polytask.data.demos import Episode
from polytask.nets.mlp import Actor
from polytask.rewards.ot import OTRewarder
from polytask.utils import schedule


class ROTAgent(DrQV2Agent):
    """DrQ-v2 with ROT's rewards, BC start and BC regularisation; with ``irl``, ``load_bc`` and
    ``bc_regularize`` all off it is plain DrQ-v2 from the env reward.

    Args:
        obs_shapes, action_dim, obs_type, device: as :class:`DrQV2Agent`.
        **options: :class:`polytask.agents.configs.imitation.ROTConfig` (``self.cfg``): DrQ-v2's options and
            ROT's switches ``irl`` (OT rewards to ``demo_episodes``, :meth:`episode_rewards`),
            ``load_bc`` (start from ``bc_state``: BC's encoder and actor, also kept frozen for the
            Q-filter), ``bc_regularize`` (the BC term on batches of ``demos``), its weight and the
            OT rewarder's options (``ot``: :class:`polytask.agents.configs.imitation.OTConfig`).
        demos: the run's demos as a :class:`DemoBuffer` over this agent's obs key (``bc_regularize``).
        demo_episodes: the task's demos (``irl``): raw frames (T+1, 3, H, W) are stacked as the
            agent's observations are.
        bc_state: a BC agent's ``state_dict()`` (``load_bc``).

    Raises:
        ConfigError: for options :class:`ROTConfig` refuses (the Q-filter without ``load_bc``, ...).
        ValueError: for an input that its switch needs but is missing, or BC networks that do not
            fit this agent's.
    """

    config_class = ROTConfig

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, obs_type: str,
                 device: torch.device | str = "cpu", demos: DemoBuffer | None = None,
                 demo_episodes: list[Episode] | None = None, bc_state: dict[str, Any] | None = None, **options):
        super().__init__(obs_shapes, action_dim, obs_type, device, **options)
        # the target encoder of OT rewards: a frozen copy of encoder + critic trunk, refreshed only by
        # refresh_reward_encoder(), so demo features stay valid between refreshes
        self.reward_encoder = nn.Sequential(copy.deepcopy(self.encoder), copy.deepcopy(self.critic.trunk))
        self.reward_encoder.requires_grad_(False).eval()
        self.actor_bc: Actor | None = None  # frozen BC policy for the Q-filter (load_bc)
        self.encoder_bc: nn.Module | None = None
        if bc_state is not None:
            self.start_from_bc(bc_state)
        self.demos = demos
        self.rewarder = None if demo_episodes is None else \
            self._make_rewarder(demo_episodes, OTConfig(**self.cfg.ot), obs_shapes[self.obs_key][0])

    @classmethod
    def inputs(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """``demo_episodes`` with ``irl``, ``demos`` with ``bc_regularize``, ``bc_state`` with ``load_bc``."""
        wanted = (("demo_episodes", options.get("irl")), ("demos", options.get("bc_regularize")),
                  ("bc_state", options.get("load_bc")))
        return tuple(name for name, on in wanted if on)

    def _make_rewarder(self, episodes: list[Episode], ot: OTConfig, channels: int) -> OTRewarder:
        """The OT rewarder against ``episodes``; pixel demos (raw frames (T+1, C, H, W)) are stacked
        into the agent's ``channels`` (k·C) as its observations are."""
        if self.obs_key == "pixels":
            k = channels // episodes[0].obs["pixels"].shape[1]
            obs = [stack_frames(ep.obs["pixels"], k) for ep in episodes]
            featurize, refresh = self.reward_features, self.refresh_reward_encoder
        else:
            obs, featurize, refresh = [ep.obs["state"] for ep in episodes], None, None
        return OTRewarder(obs, featurize, refresh, refresh_every=ot.update_target_every, eps=ot.eps,
                          num_iters=ot.num_iters, target_return=ot.target_return)

    @property
    def rewards_at_episode_end(self) -> bool:
        """With ``irl`` the rewards learnt from are the OT rewards of the whole episode."""
        return self.cfg.irl

    def episode_rewards(self, obs: dict[str, np.ndarray], step: int) -> np.ndarray:
        """OT rewards float32 (T,) of an episode with observations ``obs`` (per key (T+1, ...))."""
        if self.rewarder is None:
            raise ValueError("irl=true needs the demonstrations (the demo_episodes input)")
        return self.rewarder(obs[self.obs_key], step)

    @torch.no_grad()
    def reward_features(self, obs: np.ndarray, chunk: int = 256) -> torch.Tensor:
        """Features for optimal-transport rewards (ROT's target encoder): the frozen reward encoder
        (encoder + critic trunk as of the last :meth:`refresh_reward_encoder`), float32
        (T, feature_dim) for observations (T, ...) of the agent's obs key."""
        out = []
        for i in range(0, len(obs), chunk):
            out.append(self.reward_encoder(torch.as_tensor(np.asarray(obs[i:i + chunk]), device=self.device)))
        return torch.cat(out)

    def refresh_reward_encoder(self) -> None:
        """Copy the current encoder and critic trunk into the reward encoder (ROT refreshes its
        target encoder every ``update_target_every`` steps; the rewarder calls this)."""
        self.reward_encoder[0].load_state_dict(self.encoder.state_dict())
        self.reward_encoder[1].load_state_dict(self.critic.trunk.state_dict())

    def start_from_bc(self, bc_state: dict[str, Any]) -> None:
        """Start from a BC agent's weights (``BCAgent.state_dict()``): encoder and actor are copied,
        and a frozen copy of the BC actor is kept for the soft Q-filter.

        Raises:
            ValueError: if the BC networks do not match this agent's (obs type, sizes).
        """
        try:
            self.encoder.load_state_dict(bc_state["encoder"])
            self.actor.load_state_dict(bc_state["actor"])
        except (RuntimeError, KeyError) as e:
            raise ValueError(f"BC weights do not fit this DrQ-v2 agent (same obs_type, feature_dim, hidden_dim "
                             f"and hidden_depth are needed): {e}") from e
        self.actor_bc = copy.deepcopy(self.actor).requires_grad_(False)
        self.encoder_bc = copy.deepcopy(self.encoder).requires_grad_(False)

    def actor_loss(self, obs: torch.Tensor, h: torch.Tensor, q: torch.Tensor,
                   step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """DrQ-v2's loss, or with ``bc_regularize`` ROT's ``−(1−λ)·Q + λ·α·BC`` on a demo batch as
        large as the replay batch (metrics ``bc_weight`` λ and ``bc_loss``)."""
        if not self.cfg.bc_regularize:
            return super().actor_loss(obs, h, q, step)
        if self.demos is None:
            raise ValueError("bc_regularize=true needs the demonstrations (the demos input)")
        if self.cfg.bc_weight_type == "qfilter":
            if self.actor_bc is None:
                raise ValueError("bc_weight_type=qfilter needs the BC policy: start from BC weights (load_bc)")
            with torch.no_grad():
                q_bc = twin_q_reduce(*self.critic(h, self.actor_bc(self.encoder_bc(obs))), self.twin_q)
                lam = (q_bc > q).float().mean()  # a tensor: no host sync
        else:
            lam = schedule(self.cfg.bc_weight_schedule, step)
        demo_batch = self.demos.sample(len(q))
        demo_obs = self.aug(demo_batch[self.obs_key].to(self.device))
        with torch.no_grad():  # the encoder is trained by the critic only
            h_demo = self.encoder(demo_obs)
        dist = torch.distributions.Normal(self.actor(h_demo), self.cfg.bc_stddev, validate_args=False)
        bc = -dist.log_prob(demo_batch["action"].to(self.device)).sum(-1).mean()
        return -(1.0 - lam) * q.mean() + lam * self.cfg.bc_alpha * bc, {"bc_weight": lam, "bc_loss": bc.detach()}

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "reward_encoder": self.reward_encoder.state_dict()}
        if self.actor_bc is not None:
            state["actor_bc"] = self.actor_bc.state_dict()
            state["encoder_bc"] = self.encoder_bc.state_dict()
        if self.rewarder is not None:
            state["ot"] = self.rewarder.state_dict()
        if self.demos is not None:
            state["demos"] = self.demos.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "reward_encoder" in state:
            self.reward_encoder.load_state_dict(state["reward_encoder"])
        else:  # saved before the reward encoder existed: start it from the loaded networks
            self.refresh_reward_encoder()
        if "actor_bc" in state:
            self.actor_bc = copy.deepcopy(self.actor).requires_grad_(False)
            self.actor_bc.load_state_dict(state["actor_bc"])
            self.encoder_bc = copy.deepcopy(self.encoder).requires_grad_(False)
            self.encoder_bc.load_state_dict(state["encoder_bc"])
        if self.rewarder is not None and "ot" in state:
            self.rewarder.load_state_dict(state["ot"])
        if self.demos is not None and "demos" in state:
            self.demos.load_state_dict(state["demos"])
