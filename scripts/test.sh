#!/bin/sh
# Single-card evaluation of a checkpoint on the test sets of a config (wraps evaluation_script.py).
#
#   MODEL_PATH=allinone_vitlarge.pdmodel sh scripts/test.sh --test_datasets Market1501 --output output/eval.json
#
# Environment: MODEL_PATH (default allinone_vitlarge.pdmodel), CONFIG (default configs/allinone/vitlarge_eval.yaml),
# FASTREID_DATASETS (data root, default datasets), CUDA_VISIBLE_DEVICES (default 0), PYTHON (default .venv/bin/python
# when present, else python3). Relative paths are taken from the folder you run it in. Extra arguments go to
# evaluation_script.py unchanged.
# A traffic config as first argument writes the three-task submission instead (docs/traffic.md):
#   sh scripts/test.sh configs/traffic/vitbase_3tasks.yaml --model_path model_final.pdparams [--split val] [--output F]
set -e
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$PYTHON" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
case "${1:-}" in
    *.yaml)
        if grep -q "^Data:" "$1"; then
            CONFIG_FILE=$1
            shift
            PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
            export PYTHONPATH
            exec "$PYTHON" -m oneforall.traffic.predict -c "$CONFIG_FILE" "$@"
        fi ;;
esac
CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
FASTREID_DATASETS=${FASTREID_DATASETS:-datasets}
export CUDA_VISIBLE_DEVICES FASTREID_DATASETS
exec "$PYTHON" "$REPO/evaluation_script.py" \
    --model_path "${MODEL_PATH:-allinone_vitlarge.pdmodel}" \
    --config "${CONFIG:-configs/allinone/vitlarge_eval.yaml}" \
    "$@"
