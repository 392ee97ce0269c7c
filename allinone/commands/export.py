"""Export one task's feature extractor of a trained AllInOne model for Paddle Inference or ONNX Runtime; check it.

    ufo-export -c CONFIG --model_path model_final.pdparams --task task3 --output DIR [--format paddle|onnx]
        [--images a.jpg b.jpg ...] [-o Section.key=value ...]
    (same as python tools/export_model.py ...)

Writes DIR/inference.json + DIR/inference.pdiparams (paddle.jit.save; input `images` [B, 3, H, W] normalised as the
test transform, output the head's post-BN features [B, D]); `--format onnx` also converts them to DIR/inference.onnx
(paddle2onnx). Then it runs each exported model (Paddle Inference; ONNX Runtime for onnx) on the same images as the
dygraph model (--images through the test transform, else a fixed random batch), prints the largest absolute
difference and fails if the features differ. How to load the files: docs/deploy.md.
"""
import argparse

from ..utils.cli import quiet_third_party

quiet_third_party()

from ..config import ConfigError, load_config  # noqa: E402  (after the quiet set-up)
from ..utils.cli import run_cli  # noqa: E402
from ..utils.env import configure_threads, import_paddle  # noqa: E402

FORMATS = ("paddle", "onnx")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="ufo-export", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", required=True,
                        help="the model's YAML config (a path, or a packaged name like allinone/tiny_eval)")
    parser.add_argument("--model_path", required=True, help="a training checkpoint or a state dict")
    parser.add_argument("--task", required=True, help="task key whose head to export (task1 faces, task3 persons "
                                                      "and vehicles in the released routing, task4 products)")
    parser.add_argument("--output", required=True, help="folder for inference.json / .pdiparams (/ .onnx)")
    parser.add_argument("--format", choices=FORMATS, default="paddle",
                        help="paddle: Paddle Inference files; onnx: those and inference.onnx (needs paddle2onnx "
                             "and onnxruntime)")
    parser.add_argument("--images", nargs="*", default=None, help="images for the check (default: random batch)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE")
    return parser.parse_args(argv)


def check_images(paths, img_size):
    """float32 [B, 3, H, W]: `paths` through the test transform, or 4 fixed random images in [-1, 1]."""
    import numpy as np

    if not paths:
        return np.random.RandomState(0).uniform(-1, 1, [4, 3, *img_size]).astype("float32")
    from ..data import build_test_transform, read_image

    transform = build_test_transform(img_size)
    return np.stack([transform(read_image(path)) for path in paths]).astype("float32")


def run(args):
    cfg = load_config(args.config, args.override)
    configure_threads(cfg.get_path("Global.num_threads"))
    paddle = import_paddle()

    from ..engine.export import check_export, export_onnx, export_task
    from ..modeling import build_model
    from ..modeling.checkpoint import load_checkpoint
    from ..plugins import load_config_plugins

    load_config_plugins(cfg)
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
    if args.format == "onnx":  # before the export: a missing converter is a one-line error, not a half export
        from ..engine.export import require_onnx_tools

        require_onnx_tools()
    images = check_images(args.images, model.backbone.img_size)  # a bad --images file: an error before any write
    extractor, prefix = export_task(model, args.task, args.output)
    difference = check_export(extractor, prefix, images)
    print(f"exported task {args.task} to {prefix}.* ; Paddle Inference matches the dygraph model "
          f"(max abs difference {difference:.2g})")
    if args.format == "onnx":
        onnx_path = export_onnx(prefix)
        difference = check_export(extractor, prefix, images, onnx_path=onnx_path)
        print(f"exported task {args.task} to {onnx_path} ; ONNX Runtime matches the dygraph model "
              f"(max abs difference {difference:.2g})")


def main(argv=None):
    return run_cli(run, parse_args(argv))
