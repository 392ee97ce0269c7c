"""Export a single-task feature extractor of a trained AllInOne model for Paddle Inference, and check it.

    python tools/export_model.py -c CONFIG --model_path model_final.pdparams --task task3 --output DIR
        [--images a.jpg b.jpg ...] [-o Section.key=value ...]

Writes DIR/inference.json + DIR/inference.pdiparams (paddle.jit.save; input `images` [B, 3, H, W] normalised as the
test transform, output the head's post-BN features [B, D]), then runs the exported files through Paddle Inference
on the same images as the dygraph model (--images through the test transform, else a fixed random batch) and fails
if the features differ.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from allinone.config import ConfigError, load_config  # noqa: E402
from allinone.utils.cli import run_cli  # noqa: E402
from allinone.utils.env import configure_threads  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", required=True, help="the model's YAML config (Model section)")
    parser.add_argument("--model_path", required=True, help="a training checkpoint or a state dict")
    parser.add_argument("--task", required=True, help="task key whose head to export (task1 faces, task3 persons "
                                                      "and vehicles in the released routing, task4 products)")
    parser.add_argument("--output", required=True, help="folder for inference.json / inference.pdiparams")
    parser.add_argument("--images", nargs="*", default=None, help="images for the check (default: random batch)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE")
    return parser.parse_args(argv)


def check_images(paths, img_size):
    """float32 [B, 3, H, W]: `paths` through the test transform, or 4 fixed random images in [-1, 1]."""
    import numpy as np

    if not paths:
        return np.random.RandomState(0).uniform(-1, 1, [4, 3, *img_size]).astype("float32")
    from allinone.data import build_test_transform, read_image

    transform = build_test_transform(img_size)
    return np.stack([transform(read_image(path)) for path in paths]).astype("float32")


def run(args):
    cfg = load_config(args.config, args.override)
    configure_threads(cfg.get_path("Global.num_threads"))
    import paddle

    from allinone.engine.export import check_export, export_task
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint

    paddle.set_device("cpu")
    for head in cfg.Model.heads.values():
        head.num_classes = 0  # the extractor has no classifier; a training checkpoint's are skipped
    model = build_model(cfg)
    print(load_checkpoint(model, args.model_path))
    model.eval()
    try:
        model.head_for(args.task)
    except KeyError as err:
        raise ConfigError(f"--task: {err.args[0]}") from None
    extractor, prefix = export_task(model, args.task, args.output)
    difference = check_export(extractor, prefix, check_images(args.images, model.backbone.img_size))
    print(f"exported task {args.task} to {prefix}.* ; Paddle Inference matches the dygraph model "
          f"(max abs difference {difference:.2g})")


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
