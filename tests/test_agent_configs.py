"""Each agent's options are declared once, in its config dataclass (polytask/agents/configs/): every
agent yaml extends its schema and sets no key the dataclass lacks, every field has a doc, the
constructor takes the same options, and checks run when the config is built."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from polytask.agents.configs import discover, make_config
from polytask.agents.configs.sac import SACConfig
from polytask.errors import ConfigError
from tests.agent_harness import AGENT_NAMES
from tests.conftest import ROOT, compose_cfg

HEADER = {"_target_", "name", "trainer"}


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_every_agent_yaml_extends_its_agents_config(name):
    """The composed agent node is typed by a subclass of its class's ``config_class`` (so overrides
    are type-checked at composition), holds exactly that dataclass's fields besides the header, and
    the yaml's own agent keys are among them."""
    cfg = compose_cfg(f"agent={name}")
    cls = get_class(cfg.agent._target_)
    config_class = cls.config_class
    assert config_class is not dataclasses.MISSING and config_class.__name__ != "AgentConfig", cls
    schema = OmegaConf.get_type(cfg.agent)
    assert dataclasses.is_dataclass(schema) and issubclass(schema, config_class), (name, schema, config_class)
    fields = {f.name for f in dataclasses.fields(config_class)}
    assert set(cfg.agent) - HEADER == fields
    own = OmegaConf.load(ROOT / "cfgs" / "agent" / f"{name}.yaml")
    own_agent = own.agent if "agent" in own else own  # a `# @package _global_` yaml, or bc.yaml
    assert set(own_agent) - HEADER - {"defaults"} <= fields


@pytest.mark.parametrize("config_class", sorted(set(discover().values()), key=lambda c: c.__name__))
def test_every_option_has_a_type_a_default_and_a_doc(config_class):
    for f in dataclasses.fields(config_class):
        assert f.metadata.get("help", "").strip(), f"{config_class.__name__}.{f.name} has no doc"
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
    config_class()  # the defaults pass the checks


def test_subclass_configs_inherit_their_parents_options():
    from polytask.agents.configs.imitation import DrQV2Config, ROTConfig
    from polytask.agents.configs.sac import ResidualConfig
    from polytask.agents.configs.skills import SkiLDConfig, SpirlConfig

    for child, parent in ((ROTConfig, DrQV2Config), (ResidualConfig, SACConfig), (SkiLDConfig, SpirlConfig)):
        assert {f.name for f in dataclasses.fields(parent)} < {f.name for f in dataclasses.fields(child)}


def test_make_config_checks_types_ranges_and_names():
    assert make_config(SACConfig, {"lr": 1}).lr == 1.0  # an int for a float option is converted
    with pytest.raises(ConfigError, match="has no option bogus; it takes: lr, hidden_dim"):
        make_config(SACConfig, {"bogus": 1})
    with pytest.raises(ConfigError, match="SACConfig: Value 'abc' of type 'str' could not be converted to Float"):
        make_config(SACConfig, {"lr": "abc"})
    with pytest.raises(ConfigError, match=r"agent.log_std_bounds must be \[low, high\]"):
        make_config(SACConfig, {"log_std_bounds": [2.0, -5.0]})


def test_constructors_take_the_config_options_and_check_them():
    """Agents built with keyword options get them as ``self.cfg`` (defaults from the dataclass); bad
    ones raise ConfigError before any network is built."""
    from polytask.agents.bc import BCAgent
    from polytask.agents.sac import SACAgent

    agent = SACAgent({"state": (5,)}, 2, "features", hidden_dim=16)
    assert isinstance(agent.cfg, SACConfig) and agent.cfg.hidden_dim == 16 and agent.cfg.lr == SACConfig().lr
    assert agent.actor_opt.param_groups[0]["lr"] == SACConfig().lr
    with pytest.raises(ConfigError, match="agent.lr must be > 0"):
        BCAgent({"state": (5,)}, 2, "features", lr=-1.0)
    with pytest.raises(ConfigError, match="BCConfig has no option twin_q"):
        BCAgent({"state": (5,)}, 2, "features", twin_q="min")


def test_rots_rule_on_options_that_need_each_other():
    from polytask.agents.configs.imitation import ROTConfig

    with pytest.raises(ConfigError, match="soft Q-filter needs the BC policy: add load_bc=true"):
        ROTConfig(bc_regularize=True)
    assert ROTConfig(bc_regularize=True, bc_weight_type="schedule").bc_regularize
    with pytest.raises(ConfigError, match="ot: .*unexpected keyword argument 'epsilon'; the keys are eps"):
        ROTConfig(ot={"epsilon": 0.1})


def test_a_switch_read_from_the_top_level_has_one_name():
    """``agent.res_scale`` set directly would leave run names reading the top-level ``res_scale``:
    refused, naming the key to set."""
    from polytask.training.inputs import check_agent_options

    cfg = compose_cfg("agent=residual", "res_scale=0.2")
    assert check_agent_options(cfg.agent).res_scale == 0.2
    with pytest.raises(ConfigError, match=r"agent.res_scale is the top-level switch res_scale: set res_scale="):
        check_agent_options(compose_cfg("agent=residual", "agent.res_scale=0.2").agent)


def test_registering_the_schemas_imports_no_torch():
    """The entry scripts register the schemas before composing: that must stay cheap."""
    code = ("import sys, time; t = time.perf_counter(); import polytask.config; "
            "print('torch' in sys.modules, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False", out.stdout
