"""Run by test_distributed_eval.py under `paddle.distributed.launch`: every rank calls the suite with
distributed=True; rank 0 writes the metrics as JSON to argv[2]. argv[1]: the tiny model's weights."""
import json
import os
import sys

from allinone.utils.cli import quiet_third_party

quiet_third_party()

from allinone.utils.env import configure_threads  # noqa: E402

configure_threads(1)
import paddle  # noqa: E402,F401

from allinone import build_model, load_checkpoint, load_config  # noqa: E402
from allinone.engine.distributed import init_distributed  # noqa: E402
from allinone.evaluation.suite import EvaluationSuite  # noqa: E402

rank, world_size = init_distributed()
paddle.set_device("cpu")
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
cfg = load_config(os.path.join(root, "configs", "allinone", "tiny_eval.yaml"))
suite = EvaluationSuite(cfg, "LFW,Market1501,SOP", batch_size=7, print_table=False, distributed=True)
model = build_model(cfg)
load_checkpoint(model, sys.argv[1])
metrics = suite(model)
if rank == 0:
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump({"world_size": world_size, "metrics": metrics}, f)
