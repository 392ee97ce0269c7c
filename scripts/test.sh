#!/usr/bin/env bash
# Single-card evaluation of a checkpoint on the test sets of a config (wraps evaluation_script.py).
#   MODEL_PATH=allinone_vitlarge.pdmodel scripts/test.sh --test_datasets Market1501 --output output/eval.json
# Environment: MODEL_PATH (default allinone_vitlarge.pdmodel), CONFIG (default configs/allinone/vitlarge_eval.yaml),
# FASTREID_DATASETS (data root, default datasets), CUDA_VISIBLE_DEVICES (default 0), PYTHON (default python).
# Extra arguments go to evaluation_script.py unchanged.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
export FASTREID_DATASETS="${FASTREID_DATASETS:-datasets}"
exec "${PYTHON:-python}" "$REPO/evaluation_script.py" \
    --model_path "${MODEL_PATH:-allinone_vitlarge.pdmodel}" \
    --config "${CONFIG:-configs/allinone/vitlarge_eval.yaml}" \
    "$@"
