"""DMC: DrQ-v2 expert from the env reward -> snapshot demos -> BC, and the errors along the way."""

import json

from polytask.data.demos import load_episodes
from tests.conftest import DEVICE, exported_weights, run_script


def test_dmc_expert_demos_then_bc(tmp_path):
    data = [f"data_dir={tmp_path}", "suite=dmc", "suite.task_id=[1]", "obs_type=features", DEVICE]
    # without an expert the BC command says how to make one
    p = run_script("train.py", "agent=bc", f"hydra.run.dir={tmp_path / 'bc0'}", *data, "num_demos_per_task=2")
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "No expert weights for cheetah_run_m1" in out
    assert "python train.py agent=drqv2 suite=dmc obs_type=features 'suite.task=[cheetah_run_m1]' irl=false" in out
    # a (tiny) DrQ-v2 expert trained on the env reward
    p = run_script("train.py", "agent=drqv2", "irl=false", f"hydra.run.dir={tmp_path / 'rl'}", *data,
                   "num_train_steps=200", "update_after_steps=100", "agent.num_expl_steps=100", "eval_every_steps=200",
                   "eval.num_episodes=1", "eval.video=off", "agent.hidden_dim=64", "batch_size=32",
                   "replay_capacity=2000")
    assert p.returncode == 0, p.stderr[-3000:]
    # named after its settings; the expert finds it as the one cheetah_run_m1-features-seed1-*.pt
    assert exported_weights(p).name.startswith("cheetah_run_m1-features-seed1-agent.hidden_dim-64+")
    # its rollouts become a demo dataset (every episode kept: threshold below any return)
    p = run_script("collect_demos.py", *data, "num_demos_per_task=2", "suite.demo_min_return=-1",
                   f"hydra.run.dir={tmp_path / 'collect'}")
    assert p.returncode == 0, p.stderr[-3000:]
    eps = load_episodes(tmp_path / "datasets" / "polytask" / "dmc" / "cheetah_run_m1-features-v0")
    assert len(eps) == 2 and all(len(e) == 500 for e in eps)
    # and the published BC command line works on them
    p = run_script("train.py", "agent=bc", f"hydra.run.dir={tmp_path / 'bc'}", *data, "num_demos_per_task=2",
                   "num_train_steps=20", "eval.num_episodes=1", "eval.video=off", "agent.hidden_dim=64")
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "bc" / "results.json").read_text())["cheetah_run_m1/return"] >= 0
