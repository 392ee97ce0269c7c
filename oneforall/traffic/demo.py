"""The traffic model end to end on a miniature tree, in a few CPU minutes:

    python -m oneforall.traffic.demo [OUT] [--iters 300] [--scale 2]

writes the miniature tree under OUT/datasets, evaluates the untrained tiny model (configs/traffic/tiny_cpu.yaml) on
the val split, trains it, evaluates again, predicts the test split into OUT/pred_results.json, scores that
submission against the val labels (the miniature test images are the val images) and draws predicted boxes and
masks of a few test images into OUT/predictions.png. Prints the metrics before and after training.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs",
                      "traffic", "tiny_cpu.yaml")
PALETTE = {0: (128, 64, 128), 2: (70, 70, 70), 5: (153, 153, 153), 10: (70, 130, 180), 13: (0, 0, 142)}


def draw_predictions(root, predictions, path, count=3, min_score=0.3):
    """A PNG: per row, a detection test image with its boxes (score >= min_score) and a segmentation test image
    beside its predicted mask (Cityscapes colours)."""
    import cv2

    from .data import TEST_ROOT, DetectionDataset

    det = DetectionDataset(root, "test")
    rows = []
    seg_names = sorted(predictions["seg"])[:count]
    for index in range(min(count, len(det), len(seg_names))):
        path_d, image_id, _, _ = det.items[index]
        image = cv2.imread(path_d)
        for result in predictions["dec"]:
            if result["image_id"] == image_id and result["score"] >= min_score:
                x, y, w, h = (int(round(v)) for v in result["bbox"])
                cv2.rectangle(image, (x, y), (x + w, y + h), (0, 255, 0), 1)
                cv2.putText(image, str(result["category_id"]), (x, max(y - 2, 8)), cv2.FONT_HERSHEY_PLAIN, 0.7,
                            (0, 255, 0), 1)
        name = seg_names[index]
        street = cv2.imread(os.path.join(root, TEST_ROOT, "seg", "images", "test", name[:-4] + ".jpg"))
        mask = predictions["seg"][name]
        colour = np.zeros_like(street)
        for cls, rgb in PALETTE.items():
            colour[mask == cls] = rgb[::-1]
        panels = [image, street, colour]
        height = max(p.shape[0] for p in panels)
        rows.append(np.concatenate([cv2.copyMakeBorder(p, 0, height - p.shape[0], 0, 4, cv2.BORDER_CONSTANT,
                                                       value=(255, 255, 255)) for p in panels], 1))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([cv2.copyMakeBorder(r, 0, 4, 0, width - r.shape[1], cv2.BORDER_CONSTANT,
                                              value=(255, 255, 255)) for r in rows], 0)
    grid = cv2.resize(grid, (grid.shape[1] * 3, grid.shape[0] * 3), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(path, grid)


def run(out, iters, scale, seed=0):
    from allinone.config import load_config
    from allinone.utils.env import seed_everything

    from .mini import make_traffic_tree
    from .predict import predict_split
    from .score import score_submission
    from .submission import build_submission, write_submission
    from .train import build_traffic_trainer

    root = os.path.join(out, "datasets")
    make_traffic_tree(root, seed=seed, cls_per_class=(8 * scale, 3 * scale), dec_images=(16 * scale, 6 * scale),
                      seg_images=(8 * scale, 3 * scale))
    cfg = load_config(CONFIG, [f"Global.output_dir={os.path.join(out, 'train')}", f"Train.max_iter={iters}",
                               f"Train.checkpoint_period={iters}", "Train.log_period=50", "Train.eval_period=0"])
    seed_everything(cfg.Global.seed)
    trainer = build_traffic_trainer(cfg, root=root)
    model = trainer.module
    before = predict_split(model, root, "val", cfg.Data.eval)[1]
    print("untrained:", json.dumps(before), flush=True)
    start = time.time()
    trainer.train()
    print(f"trained {iters} iterations in {time.time() - start:.0f} s", flush=True)
    after = predict_split(model, root, "val", cfg.Data.eval)[1]
    print("trained:  ", json.dumps(after), flush=True)
    predictions, _ = predict_split(model, root, "test", cfg.Data.eval)
    submission = os.path.join(out, "pred_results.json")
    write_submission(submission, build_submission(predictions["cls"], predictions["dec"], predictions["seg"]))
    scores = score_submission(submission, root, "val")
    print(f"submission {submission} scored against the val labels: {json.dumps(scores)}", flush=True)
    draw_predictions(root, predictions, os.path.join(out, "predictions.png"))
    print(f"boxes and masks of test images: {os.path.join(out, 'predictions.png')}")
    return before, after, scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="output/traffic_demo")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--scale", type=int, default=2, help="multiplies the miniature tree's image counts")
    args = parser.parse_args(argv)
    from allinone.utils.env import configure_threads

    configure_threads()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    before, after, _ = run(args.out, args.iters, args.scale)
    improved = [key for key in ("fgvc.Acc@1", "trafficsign.AP50", "segmentation.mIoU") if after[key] > before[key]]
    print(f"improved over the untrained model: {improved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
