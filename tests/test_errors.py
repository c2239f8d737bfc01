"""User errors reach the clean-exit path with a message that says what is wrong: errors raised inside
Hydra's instantiate, diverging losses of every kind of agent, BC weights from another suite."""

from __future__ import annotations

import pytest

from polytask.errors import ConfigError
from polytask.suites import UnknownTaskError
from polytask.utils import instantiate
from tests.conftest import DEVICE, compose_cfg, online_run_args, run_script


def test_instantiate_lets_the_targets_own_error_through():
    from polytask.suites import make_env

    suite = compose_cfg("suite/metaworld_task=hammer").suite
    with pytest.raises(UnknownTaskError, match="Did you mean hammer"):
        make_env(suite, "hamer", "features")
    with pytest.raises(ConfigError, match="no_such_module"):  # Hydra's own failure becomes a ConfigError
        instantiate({"_target_": "no_such_module.make"})


def test_no_module_calls_hydras_instantiate_directly():
    """Every instantiation goes through polytask.utils.instantiate, so no user error is wrapped."""
    from pathlib import Path

    import polytask

    root = Path(polytask.__file__).parent
    direct = [str(p.relative_to(root)) for p in root.rglob("*.py")
              if p.name != "utils.py" and "from hydra.utils import" in p.read_text()
              and "instantiate" in p.read_text().split("from hydra.utils import", 1)[1].split("\n", 1)[0]]
    assert direct == []


def test_error_inside_an_agents_constructor_exits_cleanly(tmp_path):
    p = run_script("train.py", "agent=sac", "obs_type=pixels", "irl=false", f"data_dir={tmp_path}",
                   f"hydra.run.dir={tmp_path / 'run'}", DEVICE)
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out and "InstantiationException" not in out
    assert "ConfigError: agent=sac supports obs_type=features only" in out


@pytest.mark.parametrize("agent", ["bc", "sac"])
def test_diverging_loss_stops_the_run_cleanly(tmp_path, data_dir, agent):
    """``agent.lr=1e12`` blows the networks up within a few updates: the run stops with the trainer's
    message (no torch traceback), before any checkpoint, and says so."""
    args = (online_run_args(tmp_path / "run", data_dir, agent, "drawer-close") if agent != "bc" else
            [f"hydra.run.dir={tmp_path / 'run'}", f"data_dir={data_dir}", "suite/metaworld_task=drawer-close",
             "num_demos_per_task=3", "agent.hidden_dim=64", "eval.video=off", DEVICE])
    p = run_script("train.py", *args, "agent.lr=1e12", "num_train_steps=400", "save_every_steps=1000")
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out, out[-3000:]
    assert "NonFiniteLossError" in out and "training stopped" in out and "No checkpoint was written yet" in out


def test_bc_weights_of_another_suite_name_both_suites_and_shapes(tmp_path):
    """ROT offered Meta-World BC weights on a DMC task: the error names what differs (suites, tasks,
    obs shapes, action size), not identical network sizes."""
    from omegaconf import OmegaConf

    from polytask.agents.bc import BCAgent
    from polytask.training.online import OnlineTrainer
    from polytask.utils import atomic_torch_save

    bc_cfg = compose_cfg("agent=bc", "suite/metaworld_task=hammer", f"data_dir={tmp_path}")
    bc = BCAgent({"state": (39,)}, 4, "features")
    path = tmp_path / "bc.pt"
    atomic_torch_save({"agent": bc.state_dict(), "agent_name": "bc", "step": 1,
                       "config": OmegaConf.to_container(bc_cfg, resolve=True)}, path)
    cfg = compose_cfg("agent=drqv2", "suite=dmc", "suite.task_id=[1]", "irl=false", "load_bc=true",
                      f"bc_weights={path}", f"data_dir={tmp_path}", "device=cpu")
    with pytest.raises(ConfigError) as e:
        OnlineTrainer.from_config(cfg, tmp_path / "run")
    msg = str(e.value)
    assert "metaworld ['hammer']" in msg and "dmc ['cheetah_run_m1']" in msg and "6-d actions" in msg
    assert "python train.py agent=bc suite=dmc" in msg


@pytest.mark.parametrize("override, says", [
    ("agent.lr=abc", "ConfigError: agent.lr='abc' (str): BCConfig takes float there (Adam learning rate"),
    ("agent.hidden_dim=1.5", "ConfigError: agent.hidden_dim=1.5 (float): BCConfig takes int there"),
    ("+agent.no_such_option=1", "agent=bc (BCAgent): BCConfig has no option no_such_option; it takes: lr,"),
    ("agent=drqv2 irl=abc", "ConfigError: agent.irl='abc' (str): ROTConfig takes bool there"),
    ("agent=drqv2 agent.load_bc=true", "agent.load_bc is the top-level switch load_bc: set load_bc=..."),
])
def test_agent_options_are_checked_at_start_up(tmp_path, override, says):
    """Wrong types (at composition, or when a top-level switch is read), unknown options and a
    top-level switch set under a second name fail before any demo is collected, with the option's
    name (and, for a type, its doc)."""
    p = run_script("train.py", *override.split(), f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", DEVICE)
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out and says in out, out[-2000:]
    assert not (tmp_path / "datasets").exists()  # nothing collected


def test_options_that_need_each_other_fail_before_any_data_is_loaded(tmp_path):
    p = run_script("train.py", "agent=drqv2", "bc_regularize=true", f"data_dir={tmp_path}",
                   f"hydra.run.dir={tmp_path / 'run'}", DEVICE)
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out
    assert "bc_regularize=true with the soft Q-filter needs the BC policy: add load_bc=true" in out
    assert not (tmp_path / "datasets").exists()
