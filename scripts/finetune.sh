#!/bin/sh
# One-click fine-tuning of a trained traffic model on new data in the same layouts (track1_train_data/...):
#
#   sh scripts/finetune.sh NEW_DATA_ROOT [CHECKPOINT] [extra tools/train.py arguments ...]
#   CONFIG=configs/traffic/tiny_cpu.yaml sh scripts/finetune.sh /data/b_board output/traffic_tiny/model_final.pdparams
#
# Starts from CHECKPOINT (default output/vitbase_joint_training/model_final.pdparams; loaded non-strictly, the key
# report is logged: heads whose class count changed start fresh) and trains CONFIG (default
# configs/traffic/vitbase_3tasks.yaml) on NEW_DATA_ROOT, writing to OUTPUT (default output/finetune). Any -o override
# may follow, e.g. -o Train.max_iter=5000 for a shorter schedule. GPUS / NPROC as for scripts/train.sh.
set -e
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
    echo "usage: sh scripts/finetune.sh NEW_DATA_ROOT [CHECKPOINT] [tools/train.py arguments ...]" >&2
    exit 2
fi
ROOT_DIR=$1
shift
CHECKPOINT=output/vitbase_joint_training/model_final.pdparams
case "$1" in
    ""|-*) ;;
    *) CHECKPOINT=$1; shift ;;
esac
if [ ! -d "$ROOT_DIR/track1_train_data" ]; then
    echo "finetune: $ROOT_DIR has no track1_train_data/ (layout: docs/traffic.md)" >&2
    exit 2
fi
if [ ! -f "$CHECKPOINT" ]; then
    echo "finetune: checkpoint $CHECKPOINT not found" >&2
    exit 2
fi
exec sh scripts/train.sh "${CONFIG:-configs/traffic/vitbase_3tasks.yaml}" \
    -o "Data.root=$ROOT_DIR" -o "Train.init_checkpoint=$CHECKPOINT" -o "Global.output_dir=${OUTPUT:-output/finetune}" "$@"
