#!/bin/bash
# The throughput figures and checks that need a GPU, in one go (about 10 minutes), each also written
# to a file under the output folder:
#
#   bash benchmarks/gpu_checks.sh [out_dir]       # default: gpu_checks/
#
# - device.txt: the GPU and torch version;
# - drqv2_update.txt: DrQ-v2 update times on the GPU, plain and with agent.compile=true (state
#   features 256 and 1024 wide; pixels; pixel ROT);
# - num_envs.txt: SAC on Meta-World reach updating on the GPU, agent steps/s against num_envs
#   (1, 4, 16 envs in subprocesses), with and without overlap_updates;
# - replay_buffer.txt: pixel replay sampling on the host's cores;
# - tests.txt: the num_envs tests (overlap determinism, kill and resume with subprocess envs) with
#   their end-to-end runs on the GPU (POLYTASK_TEST_DEVICE=cuda).
# A step that fails is reported and the next one runs.
set -uo pipefail
out=${1:-gpu_checks}
mkdir -p "$out"
export MUJOCO_GL=${MUJOCO_GL:-egl} PYTHONUNBUFFERED=1
here=$(cd "$(dirname "$0")" && pwd)
status=0
step() {  # step <file> <command...>: run it, keep its output, note a failure
    local file=$1
    shift
    echo "== $*"
    "$@" 2>&1 | tee "$out/$file" || { echo "FAILED ($?): $*"; status=1; }
}
step device.txt python -c "import torch; print(torch.cuda.get_device_name(), torch.__version__)"
step drqv2_update.txt python "$here/drqv2_update.py" --device cuda --compile --updates 50
step num_envs.txt python "$here/num_envs.py" --device cuda --agents sac --num-envs 1 4 16 --overlap --steps 2000
step replay_buffer.txt python "$here/replay_buffer.py" --capacity 100000 --batches 100
POLYTASK_TEST_DEVICE=cuda step tests.txt python -m pytest -q -m "slow or not slow" "$here/../tests/test_num_envs.py"
exit $status
