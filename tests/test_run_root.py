"""Runs land under ``exp_local/`` (PolyTask's run root), where ``gather`` and TensorBoard look."""

import yaml

from polytask.training.gather import RUN_ROOT, main
from polytask.training.logger import Logger
from tests.conftest import ROOT


def test_every_config_writes_runs_under_the_run_root():
    assert RUN_ROOT == "exp_local"
    checked = []
    for path in sorted((ROOT / "cfgs").glob("*.yaml")):  # every entry script's config
        hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra") or {}
        dirs = [d for d in (hydra.get("run", {}).get("dir"), hydra.get("sweep", {}).get("dir")) if d]
        assert all(d.startswith(f"{RUN_ROOT}/") for d in dirs), (path.name, dirs)
        checked += [path.name] if dirs else []
    assert {"config.yaml", "config_distill.yaml", "evaluate.yaml", "config_play.yaml"} <= set(checked)
    assert f"/{RUN_ROOT}/" in (ROOT / ".gitignore").read_text().split()


def test_gather_defaults_to_the_run_root(tmp_path, monkeypatch):
    run = tmp_path / RUN_ROOT / "default" / "bc-metaworld-features" / "reach" / "seed1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        "seed: 1\nobs_type: features\nagent: {name: bc, trainer: polytask.training.offline.OfflineTrainer}\n"
        "suite: {name: metaworld, task: [reach]}\n")
    logger = Logger(run)
    for step, success in ((100, 0.25), (200, 0.75)):
        logger.log("eval", {"reach/success": success, "reach/return": 10 * success, "success": success,
                            "return": 10 * success}, step, console=False)
    logger.close()
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    summary = (tmp_path / RUN_ROOT / "summary.md").read_text()
    assert "| bc | metaworld | features |  | reach | 1 | 200 | 0.75 ± 0.00 | 7.5 ± 0.0 | 0.50, 5.00 |" in summary
