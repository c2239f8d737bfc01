"""Shared fixtures: configs composed like the entry scripts do, and small real demo datasets."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]
# The end-to-end runs take this device override: CPU by default, so results are deterministic;
# POLYTASK_TEST_DEVICE=cuda (or auto: CUDA when present) runs them on a GPU.
DEVICE = f"device={os.environ.get('POLYTASK_TEST_DEVICE', 'cpu')}"


def compose_cfg(*overrides: str):
    """The run config ``train.py`` would get for ``overrides``."""
    from hydra import compose, initialize_config_dir

    import polytask.config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run_script(script: str, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run an entry script from the project root; returns the finished process (stdout+stderr)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, script, *overrides], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def kill_after_first_checkpoint(args: list[str], run_dir: Path, timeout: float = 120.0) -> int:
    """Start ``args`` (an entry script's command line) from the project root, SIGKILL it as soon as
    ``run_dir/checkpoints/latest.pt`` exists, and return that checkpoint's step. Fails the test if the
    run ends first or no checkpoint comes within ``timeout`` seconds."""
    import time

    from polytask.training.checkpoint import load_checkpoint

    latest = Path(run_dir) / "checkpoints" / "latest.pt"
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while not latest.exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint in time"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    return load_checkpoint(latest)["step"]


def exported_weights(p: subprocess.CompletedProcess) -> Path:
    """The weights file a finished ``train.py`` run exported (its log's last ``Weights: <file>`` line)."""
    import re

    found = re.findall(r"Weights: (\S+\.pt)", p.stdout + p.stderr)
    assert found, "the run exported no weights:\n" + (p.stdout + p.stderr)[-2000:]
    return Path(found[-1])


def trained_and_restored(make_agent, buffer, updates: int, batch_size: int):
    """A window-policy agent (``make_agent()``: BeT, Diffusion Policy) fitted on ``buffer``'s states
    and actions and trained ``updates`` steps on its windows, and a fresh agent restored from its
    checkpointed ``state_dict``: ``(trained, restored)``."""
    trained = make_agent()
    trained.fit_dataset(buffer.obs["state"], buffer.action)
    for _ in range(updates):
        trained.update(buffer.sample_windows(batch_size, *trained.window))
    restored = make_agent()
    restored.load_state_dict(torch_round_trip(trained.state_dict()))
    return trained, restored


def torch_round_trip(obj):
    """``obj`` written with ``torch.save`` and read back as checkpoints are, with ``weights_only=True``
    (optimiser states and tensors are copied, not shared; anything but plain data fails)."""
    import torch

    f = io.BytesIO()
    torch.save(obj, f)
    f.seek(0)
    return torch.load(f, weights_only=True)


def state_batch(n: int, state_dim: int, action_dim: int, seed: int = 0) -> dict:
    """A random replay batch of ``n`` state-feature transitions, as ``ReplayBuffer.sample`` gives them:
    ``obs``/``next_obs`` ``{"state": float32 (n, state_dim)}`` ~ N(0, 1), ``action`` float32
    (n, action_dim) uniform in [-1, 1], ``reward`` float32 (n,) uniform in [0, 1], ``discount`` 0.99."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"obs": {"state": torch.randn(n, state_dim, generator=g)},
            "next_obs": {"state": torch.randn(n, state_dim, generator=g)},
            "action": torch.rand(n, action_dim, generator=g) * 2 - 1, "reward": torch.rand(n, generator=g),
            "discount": torch.full((n,), 0.99)}


def diag_normal(mean, log_std):
    """``torch.distributions`` diagonal Gaussian over the last dimension (the reference for analytic KLs)."""
    from torch.distributions import Independent, Normal

    return Independent(Normal(mean, log_std.exp()), 1)


def online_run_args(run_dir: Path, data_dir: Path, agent: str, task: str) -> list[str]:
    """Overrides of a tiny online run (``agent`` from the env reward on Meta-World ``task``, features,
    small nets and batches, checkpoints every 100 steps); add ``num_train_steps`` and the like."""
    return [f"hydra.run.dir={run_dir}", f"data_dir={data_dir}", f"agent={agent}", "irl=false",
            f"suite/metaworld_task={task}", "update_after_steps=100", "agent.num_expl_steps=100",
            "log_every_steps=50", "save_every_steps=100", "eval.num_episodes=2", "eval.video=off",
            "agent.hidden_dim=64", "replay_capacity=5000", "batch_size=32", DEVICE]


def random_episode(env) -> tuple[int, float, bool, dict]:
    """Run one episode of uniform random actions from ``reset(seed=0)``; returns (steps, return,
    whether any step terminated, last info)."""
    env.reset(seed=0)
    steps, ret, terminated_any, truncated, info = 0, 0.0, False, False, {}
    while not truncated:
        _, r, terminated, truncated, info = env.step(env.action_space.sample())
        steps, ret, terminated_any = steps + 1, ret + r, terminated_any or terminated
        assert isinstance(r, float) and "success" in info
    return steps, ret, terminated_any, info


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data_dir holding 3 drawer-close feature demos made by Meta-World's scripted policy."""
    from polytask.training.demos import collect_task_demos

    path = tmp_path_factory.mktemp("data")
    cfg = compose_cfg(f"data_dir={path}", "suite/metaworld_task=drawer-close", "obs_type=features")
    collect_task_demos(cfg, "drawer-close", 3)
    return path
