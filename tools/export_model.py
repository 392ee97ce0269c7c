"""Export a single-task feature extractor for Paddle Inference or ONNX Runtime: `allinone.commands.export`
(installed as `ufo-export`), runnable from a checkout.

    python tools/export_model.py -c CONFIG --model_path model_final.pdparams --task task3 --output DIR
        [--format paddle|onnx] [--images a.jpg b.jpg ...] [-o Section.key=value ...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.commands.export import check_images, main, parse_args, run  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
