"""A Hydra launcher for the tests: the ``hydra/launcher=slurm`` config run on this machine. Its SLURM
parameters are first checked by submitit's SLURM executor as on a cluster (unknown or ill-typed
parameters fail; the sbatch script is rendered, not submitted), then the jobs run through submitit's
local executor with the settings it shares with SLURM (time limit, tasks, resources, requeues),
so preemption and requeueing work as on a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import submitit
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher
from omegaconf import OmegaConf


def check_slurm_parameters(params: dict[str, Any], folder: Path) -> str:
    """The sbatch script submitit would submit for the launcher parameters ``params`` (as
    ``SlurmLauncher.launch`` passes them to submitit), without a cluster.

    Raises:
        NameError: for a parameter submitit's SLURM executor does not know.
    """
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    init = {"slurm_max_num_timeout": params["max_num_timeout"]} if "max_num_timeout" in params else {}
    with mock.patch.object(submitit.SlurmExecutor, "affinity", return_value=1):  # no srun here
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm", **init)
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    return executor._executor._make_submission_file_text("python -m submitit.core._submit", "check")


class SlurmConfigLocalLauncher(LocalLauncher):
    """``hydra.launcher._target_`` for a ``hydra/launcher=slurm`` sweep run locally (see the module)."""

    def __init__(self, **params: Any) -> None:
        params = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
                  for k, v in params.items()}
        params.pop("_target_", None)
        folder = Path(str(params["submitit_folder"]).replace("%j", "check"))
        self.sbatch = check_slurm_parameters(params, folder)
        shared = set(OmegaConf.structured(BaseQueueConf).keys()) | {"max_num_timeout"}  # the rest are SLURM's alone
        super().__init__(**{k: v for k, v in params.items() if k in shared})
