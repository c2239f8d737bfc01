"""The ``hydra/launcher=slurm`` sweep path: its parameters as submitit's SLURM executor takes them, and
a sweep run with them through submitit's local executor (tests/plugins/hydra_plugins/
polytask_slurm_local), preempted and requeued, resuming from its checkpoints, and gathered."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from polytask.training.gather import main as gather
from tests.conftest import ROOT

PLUGINS = ROOT / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))
from hydra_plugins.polytask_slurm_local import check_slurm_parameters  # noqa: E402


def test_slurm_launcher_config_makes_a_requeueable_sbatch_script(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                           f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params.pop("_target_").endswith("SlurmLauncher") and params["max_num_timeout"] > 0
    script = check_slurm_parameters(params, tmp_path / ".submitit" / "check")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--time=720", "--mem=64GB",
                 f"--signal=USR2@{params['signal_delay_s']}"):
        assert f"#SBATCH {line}" in script, line
    with pytest.raises(NameError, match="partiton"):
        check_slurm_parameters({**params, "partiton": "gpu"}, tmp_path)  # a misspelt parameter fails here


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@pytest.mark.slow
def test_slurm_sweep_runs_is_requeued_after_preemption_resumes_and_gathers(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher._target_=hydra_plugins.polytask_slurm_local."
            "SlurmConfigLocalLauncher", f"hydra.sweep.dir={sweep}", f"data_dir={tmp_path / 'data'}", "agent=sac",
            "suite/metaworld_task=reach", "update_after_steps=100", "agent.num_expl_steps=100",
            "log_every_steps=50", "save_every_steps=100", "eval.num_episodes=1", "eval.video=off",
            "agent.hidden_dim=64", "batch_size=32", "replay_capacity=5000", "num_train_steps=800",
            "eval_every_steps=800", "device=cpu", "seed=1,2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while len(list(sweep.rglob("checkpoints/latest.pt"))) < 2:  # both jobs saved a checkpoint: preempt them
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
            time.sleep(0.1)
        jobs = [int(p.name) for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
        tasks = [t for job in jobs for t in _children(job)]  # submitit's controller runs the job's task
        assert len(tasks) == 2
        for t in tasks:
            os.kill(t, signal.SIGUSR2)  # what SLURM sends before preempting or timing out a job
        out = proc.communicate(timeout=600)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    runs = sorted(p.parent for p in sweep.rglob("results.json"))
    assert [r.name for r in runs] == ["seed1", "seed2"]
    for run in runs:
        log = (run / "train.log").read_text()
        resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "Resumed from" in line]
        assert len(resumed) == 1 and 100 <= resumed[0] < 800, log[-2000:]
        assert '"step": 800' in (run / "results.json").read_text()
    for job in jobs:  # submitit's per-job logs (stdout, stderr) tell of the preemption and requeue
        job_log = "".join(p.read_text() for p in (sweep / ".submitit" / str(job)).glob("*_log.*"))
        assert "this job is preempted" in job_log and f"Requeued job {job}" in job_log, job_log[-2000:]
    assert gather([str(sweep)]) == 0
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [(r["agent"], r["task"], r["runs"], r["step"]) for r in rows] == [("sac", "reach", "2", "800")]
