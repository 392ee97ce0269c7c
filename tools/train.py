"""Train an AllInOne model or evaluate a checkpoint: `allinone.commands.train` (installed as `ufo-train`), runnable
from a checkout.

    python tools/train.py -c configs/allinone/tiny_demo.yaml [-o Section.key=value ...] [--resume [PATH]]
    python tools/train.py -c CONFIG --eval-only [--resume PATH]     # the Eval table on a checkpoint
    sh scripts/train.sh CONFIG [args]                               # several processes (GPUs or CPU)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.commands.train import main, make_evaluate_fn, parse_args, run  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main(prog="tools/train.py"))
