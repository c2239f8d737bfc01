#!/usr/bin/env bash
# Install the ManiSkill 3 suite (suite=maniskill): a Vulkan driver, the pip extra, and the separate
# environment its motion planner needs.
#
#   bash scripts/setup_maniskill.sh                    # uses .venv/bin/python if present, else python3
#   PYTHON=/path/to/python bash scripts/setup_maniskill.sh
#
# 1. Vulkan: sapien (ManiSkill's simulator) needs a Vulkan device even for state observations and
#    CPU physics. Without a GPU that is Mesa's lavapipe, and it must be Mesa >= 23: Debian 12's Mesa
#    22 is refused, the one from bookworm-backports (Mesa 25) works. As root (or with passwordless
#    sudo) with apt-get, this installs mesa-vulkan-drivers and libvulkan1 (from bookworm-backports on
#    Debian 12); otherwise it says what to install and goes on. SKIP_APT=1 skips this step.
# 2. The pip extra polytask[maniskill] (mani-skill==3.0.1, sapien 3.0.3) into $PYTHON's environment.
# 3. The planner environment: ManiSkill's motion planner (mplib 0.1.1) segfaults under NumPy 2 and
#    mplib 0.2.x also requires numpy<2, so it runs in its own virtualenv (numpy<2, torch, mani-skill)
#    at $POLYTASK_MANISKILL_PLANNER (default ~/.cache/polytask/maniskill-planner, about 2.1 GB);
#    polytask.experts.maniskill starts its worker there. SKIP_PLANNER=1 skips this step.
#    TORCH_SPEC (default torch==2.13.0) and PLANNER_PIP_ARGS (e.g. "--extra-index-url
#    https://download.pytorch.org/whl/cpu") choose the planner's torch; it only needs the CPU build.
# 4. A check: ManiSkill builds an env in $PYTHON's environment and the planner solves PickCube.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi
PLANNER="${POLYTASK_MANISKILL_PLANNER:-${XDG_CACHE_HOME:-$HOME/.cache}/polytask/maniskill-planner}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
MANISKILL_SPEC="mani-skill==3.0.1"
say() { printf '\n== %s\n' "$*"; }

# -- 1. Vulkan driver ------------------------------------------------------------------------------
if [[ "${SKIP_APT:-0}" != 1 ]]; then
    say "Vulkan driver (Mesa lavapipe >= 23)"
    SUDO=""
    if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
    if { [[ "$(id -u)" == 0 ]] || [[ -n "$SUDO" ]]; } && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        . /etc/os-release
        if [[ "${VERSION_CODENAME:-}" == bookworm ]]; then
            # Debian 12: Mesa 22 lavapipe is too old for sapien; take Mesa from bookworm-backports.
            if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
                echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
            fi
            $SUDO apt-get update -q
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers libvulkan1
        else
            $SUDO apt-get update -q
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mesa-vulkan-drivers libvulkan1
        fi
    else
        echo "Not root (nor passwordless sudo) or no apt-get: install a Vulkan driver yourself (a GPU driver, or Mesa >= 23's"
        echo "mesa-vulkan-drivers and libvulkan1; on Debian 12 from bookworm-backports). Continuing."
    fi
fi

# -- 2. The pip extra ------------------------------------------------------------------------------
say "pip install -e \"$ROOT[maniskill]\" with $PYTHON"
"$PYTHON" -m pip install -q -e "$ROOT[maniskill]"
"$PYTHON" -m pip check

# -- 3. The planner environment (numpy<2) ------------------------------------------------------------
if [[ "${SKIP_PLANNER:-0}" != 1 ]]; then
    say "Planner environment at $PLANNER (numpy<2, $TORCH_SPEC, $MANISKILL_SPEC)"
    BASE_PYTHON="$("$PYTHON" -c 'import os, sys; print(getattr(sys, "_base_executable", None) or os.path.join(sys.base_prefix, "bin", "python3"))')"
    if [[ ! -x "$PLANNER/bin/python" ]]; then
        mkdir -p "$(dirname "$PLANNER")"
        "$BASE_PYTHON" -m venv "$PLANNER"
    fi
    # shellcheck disable=SC2086
    "$PLANNER/bin/python" -m pip install -q ${PLANNER_PIP_ARGS:-} "numpy<2" "$TORCH_SPEC" "$MANISKILL_SPEC"
    "$PLANNER/bin/python" -m pip check
fi

# -- 4. Check -------------------------------------------------------------------------------------------
say "Check"
OMP_NUM_THREADS=1 "$PYTHON" - <<EOF
from polytask.suites.maniskill import availability
ok, why = availability()
if not ok:
    raise SystemExit("ManiSkill cannot build an env: " + why)
print("ManiSkill env: ok")
if "${SKIP_PLANNER:-0}" != "1":
    from polytask.experts.maniskill import PlannerWorker, find_planner_python
    worker = PlannerWorker("PickCube-v1", find_planner_python("$PLANNER"))
    plan = worker.plan(0)
    worker.close()
    if not plan["success"]:
        raise SystemExit(f"The motion planner did not solve PickCube seed 0: {plan['error']}")
    print(f"Motion planner: PickCube seed 0 solved in {len(plan['actions'])} steps")
EOF
say "Done. Try: $PYTHON collect_demos.py suite=maniskill 'suite.task=[PickCube]' num_demos_per_task=10"
