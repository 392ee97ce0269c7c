#!/bin/sh
# Data-parallel training with Paddle's launcher: one process per GPU, or NPROC CPU processes without a GPU.
#
#   sh scripts/train.sh [CONFIG] [tools/train.py arguments ...]
#   GPUS=0,1,2,3 sh scripts/train.sh configs/allinone/vitlarge_4tasks.yaml --resume
#   NPROC=2 sh scripts/train.sh configs/allinone/tiny_demo.yaml -o Train.max_iter=100     # CPU only
#   LAUNCH_ARGS="--nnodes 2 --master 10.0.0.1:8090 --rank 0" sh scripts/train.sh ...     # multi-machine
#
# GPUS (default 0,1,2,3,4,5,6,7, the original's 8-card set-up), NPROC (default 2), PYTHON (default .venv/bin/python
# when present, else python3), LOG_DIR (the launcher's per-worker logs, default log/train). The configured batch
# sizes are global: every process gets batch_size / number of processes.
set -e
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/allinone/vitlarge_4tasks.yaml}
[ $# -gt 0 ] && shift
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
LOG_DIR=${LOG_DIR:-log/train}

HAS_GPU=$("$PYTHON" -c "import paddle; print(int(paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0))" 2>/dev/null | tail -n 1)
if [ "$HAS_GPU" = "1" ]; then
    DEVICES="--gpus ${GPUS:-0,1,2,3,4,5,6,7}"
else
    DEVICES="--nproc_per_node ${NPROC:-2}"
fi
# shellcheck disable=SC2086  # DEVICES and LAUNCH_ARGS are word lists
exec "$PYTHON" -m paddle.distributed.launch $DEVICES --log_dir "$LOG_DIR" $LAUNCH_ARGS tools/train.py -c "$CONFIG" "$@"
