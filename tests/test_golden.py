"""Golden numbers: each agent's update metrics, eval actions and weight checksums after a few
updates from a fixed seed on fixed synthetic data (tests/agent_harness.py), on CPU, against
tests/golden/<agent>.json, so that any numerical change to an update is noticed.

When a change is intended (a fix, a new default, other sizes or data in tests/agent_harness.py),
regenerate the files and commit them with it:

    POLYTASK_UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden.py
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.agent_harness import AGENT_NAMES, act_obs, build, checksum, feeder, seeded_act

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("POLYTASK_UPDATE_GOLDEN") == "1"
REGENERATE = "POLYTASK_UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden.py"
SEED, UPDATES = 11, 5
RTOL, ATOL = 1e-5, 1e-7


@pytest.fixture
def one_thread():
    """torch on one thread while the test runs, so reductions add up in one fixed order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def golden_record(name: str, data_dir: Path) -> dict:
    """Agent ``name`` built with :data:`SEED`, after :data:`UPDATES` updates: every update's metrics,
    its eval actions on fixed observations (float32 (4, A)) and :func:`checksum` of its networks."""
    cfg, agent = build(name, SEED, data_dir)
    update = feeder(cfg, agent)
    metrics = [update(step) for step in range(UPDATES)]
    agent.train(False)
    return {"agent": name, "seed": SEED, "updates": UPDATES, "torch": torch.__version__, "metrics": metrics,
            "actions": seeded_act(agent, act_obs(cfg)).tolist(), "checksum": checksum(agent)}


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_updates_match_golden_numbers(name, tmp_path, one_thread):
    path = GOLDEN_DIR / f"{name}.json"
    record = golden_record(name, tmp_path)
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
        pytest.skip(f"wrote {path}")
    if not path.exists():
        pytest.fail(f"no golden numbers for agent={name} at {path}; make them with: {REGENERATE}")
    golden = json.loads(path.read_text())
    hint = (f"agent={name}: the numbers after {UPDATES} updates differ from {path} (recorded with torch "
            f"{golden['torch']}, this is torch {torch.__version__}). If the change is intended, regenerate "
            f"them with `{REGENERATE}` and commit the files with the change.")
    assert [sorted(m) for m in record["metrics"]] == [sorted(m) for m in golden["metrics"]], f"metric names: {hint}"
    assert sorted(record["checksum"]) == sorted(golden["checksum"]), f"networks: {hint}"
    for key, got, want in (
            *((f"update {i + 1} {k}", m[k], g[k]) for i, (m, g) in enumerate(zip(record["metrics"], golden["metrics"]))
              for k in g),
            ("eval actions", record["actions"], golden["actions"]),
            *((f"checksum of {k} (L2 norm, projection)", record["checksum"][k], v)
              for k, v in golden["checksum"].items())):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{key}: {hint}")
