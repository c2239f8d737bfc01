"""``bash .ci/run`` (the README's test command) installs ManiSkill's system parts only when asked."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

STUB = "#!/bin/sh\n{}\n"


@pytest.fixture
def ci_copy(tmp_path):
    """A copy of ``.ci/run`` in a bare tree whose python, pip, apt-get and setup script are stubs that
    record their calls; ``id -u`` says root. Returns ``run(env) -> (stdout, calls)``."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text("")
    (tmp_path / "scripts").mkdir()
    calls = tmp_path / "calls"
    (tmp_path / "scripts" / "setup_maniskill.sh").write_text(f"echo setup_maniskill >> {calls}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {"python3": f'echo "python3 $*" >> {calls}', "python": f'echo "python $*" >> {calls}',
             "apt-get": f"echo apt-get >> {calls}", "id": "echo 0", "sudo": "exit 1"}
    for name, body in stubs.items():
        (bin_dir / name).write_text(STUB.format(body))
        (bin_dir / name).chmod(0o755)

    def run(**env):
        base = {k: v for k, v in os.environ.items() if k not in ("CI", "POLYTASK_SYSTEM_INSTALL")}
        p = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True,
                           env={**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env})
        assert p.returncode == 0, p.stderr
        out = calls.read_text()
        calls.unlink()
        return p.stdout, out

    return run


def test_ci_run_skips_system_installs_unless_asked(ci_copy):
    out, calls = ci_copy()
    assert "setup_maniskill" not in calls and "POLYTASK_SYSTEM_INSTALL=1 bash .ci/run" in out
    assert "python -m pytest -q" in calls  # the tests still run
    assert "setup_maniskill" not in ci_copy(CI="true", POLYTASK_SYSTEM_INSTALL="0")[1]
    assert "setup_maniskill" not in ci_copy(CI="false")[1]


@pytest.mark.parametrize("env", [{"POLYTASK_SYSTEM_INSTALL": "1"}, {"CI": "true"}, {"CI": "1"}])
def test_ci_run_installs_maniskill_when_asked(ci_copy, env):
    out, calls = ci_copy(**env)
    assert "setup_maniskill" in calls and "skipped" not in out
    assert calls.index("setup_maniskill") < calls.index("python -m pytest -q")
