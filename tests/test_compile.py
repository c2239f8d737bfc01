"""``compile=true``: the compiled networks give the plain update's numbers (CPU, a few updates), for SAC,
DrQ-v2 and skill-space SAC (SkiLD: its prior, posterior and discriminator compiled too)."""

import numpy as np
import pytest
import torch

from polytask.agents.drqv2 import DrQV2Agent
from polytask.agents.sac import SACAgent
from polytask.agents.skill_rl import SkiLDAgent
from polytask.utils import metric_floats
from tests.conftest import state_batch
from tests.test_skill_rl import D as SKILL_D
from tests.test_skill_rl import _skild_inputs

B, D, A = 32, 5, 2


def _run(make, compile):
    torch.manual_seed(0)
    agent = make(compile)
    dim = SKILL_D if isinstance(agent, SkiLDAgent) else D
    metrics = []
    for step in range(3):
        torch.manual_seed(100 + step)  # the same policy noise for both
        metrics.append(metric_floats(agent.update(state_batch(B, dim, agent.action_dim, step), step)))
    return agent, metrics


@pytest.mark.slow  # torch.compile takes over 30 s on a busy 2-core CPU
@pytest.mark.parametrize("make", [
    lambda c: SACAgent({"state": (D,)}, A, "features", hidden_dim=32, num_expl_steps=0, compile=c),
    lambda c: DrQV2Agent({"state": (D,)}, A, "features", hidden_dim=32, feature_dim=16, hidden_depth=2,
                         critic_layer_norm=True, compile=c),
    lambda c: SkiLDAgent({"state": (SKILL_D,)}, A, "features", hidden_dim=32, actor_update_after=0, compile=c,
                         **_skild_inputs()),
], ids=["sac", "drqv2", "skild"])
def test_compiled_update_gives_the_plain_numbers(make):
    plain, plain_metrics = _run(make, False)
    compiled, compiled_metrics = _run(make, True)
    assert compiled.compiled and not plain.compiled
    assert all(net._compiled_call_impl is not None for net in compiled.networks_to_compile())  # really compiled
    for p, c in zip(plain_metrics, compiled_metrics):
        assert p.keys() == c.keys()
        np.testing.assert_allclose([c[k] for k in p], [p[k] for k in p], rtol=1e-4, atol=1e-6)
    ps, cs = plain.state_dict(), compiled.state_dict()
    assert ps["critic"].keys() == cs["critic"].keys()  # weights files are unchanged
    for net in ("actor", "critic", "critic_target"):
        for k, v in ps[net].items():
            torch.testing.assert_close(cs[net][k], v, rtol=1e-4, atol=1e-6)
