"""evaluate.py: an exported policy scored on its own task reproduces the training run's final eval
(same eval seeds), and bad paths give clear errors."""

import json

from tests.conftest import DEVICE, exported_weights, run_script


def test_evaluate_reproduces_the_runs_final_eval(data_dir, tmp_path):
    common = [f"data_dir={data_dir}", "suite/metaworld_task=drawer-close", "num_demos_per_task=3", "seed=3",
              DEVICE]
    bc = run_script("train.py", f"hydra.run.dir={tmp_path / 'bc'}", "agent=bc", "agent.hidden_dim=64",
                    "num_train_steps=100", "eval.num_episodes=3", "eval.video=off", *common)
    assert bc.returncode == 0, bc.stderr[-2000:]
    trained = json.loads((tmp_path / "bc" / "results.json").read_text())
    name = "drawer-close-features-d3-seed3-agent.hidden_dim-64+num_train_steps-100.pt"
    weights = data_dir / "weights" / "bc" / "metaworld" / name
    assert exported_weights(bc) == weights  # the run's settings name its weights; eval settings do not
    p = run_script("evaluate.py", f"policy={weights}", "eval.num_episodes=3", DEVICE,
                   f"hydra.run.dir={tmp_path / 'ev'}")
    assert p.returncode == 0, p.stderr[-2000:]
    scored = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert scored["num_episodes"] == 3 and scored["policy"] == str(weights)
    for key in ("drawer-close/success", "drawer-close/return", "success", "return"):
        assert scored[key] == trained[key], key  # deterministic BC on the same eval seeds
    assert "drawer-close" in p.stdout + p.stderr


def test_evaluate_missing_or_foreign_file(tmp_path):
    p = run_script("evaluate.py", f"policy={tmp_path / 'nope.pt'}", f"hydra.run.dir={tmp_path / 'ev'}")
    assert p.returncode == 1 and f"No policy weights at {tmp_path / 'nope.pt'}" in p.stdout + p.stderr
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    p = run_script("evaluate.py", f"policy={junk}", f"hydra.run.dir={tmp_path / 'ev'}")
    assert p.returncode == 1 and str(junk) in p.stdout + p.stderr and "Traceback" not in p.stderr


def test_evaluate_refuses_a_crafted_file_without_running_it(tmp_path):
    from tests.test_checkpoint import _crafted

    crafted, marker = _crafted(tmp_path, "crafted")
    p = run_script("evaluate.py", f"policy={crafted}", f"hydra.run.dir={tmp_path / 'ev'}")
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "it is not read" in out and "Traceback" not in out, out[-2000:]
    assert not marker.exists()
