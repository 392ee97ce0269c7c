"""Cost of evaluating one sub-network on the competition's 8 test sets: set on the supernet (the elastic layers slice
their weights at every forward; no copies) against the same sub-network extracted as a plain per-layer ViT
(goal: within 1.1x). Both go through the same evaluation suite (loading, transform, inference, metrics) on the
miniature tree; the two are alternated so that the load of other jobs hits both alike, best of --repeats each.

    python bench/nas_eval_cost.py            # a 192-wide ViT (12 heads of 16) at 64x64, 3 sub-networks
    python bench/nas_eval_cost.py --quick    # one sub-network, 2 repeats
"""
import argparse
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]

from allinone.utils.env import configure_threads  # noqa: E402

MODEL = ["Model.backbone.embed_dim=192", "Model.backbone.head_dim=16", "Model.backbone.choices.embed_dim=[192]",
         "Model.backbone.img_size=[64,64]", "Eval.batch_size=32"]


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4, help="size of the miniature tree (make_mini_datasets)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    import logging

    import paddle

    logging.getLogger("allinone").setLevel(logging.WARNING)
    import oneforall.chip_training  # noqa: F401
    from allinone.config import load_config
    from allinone.modeling import build_model
    from mini_datasets import make_mini_datasets
    from oneforall.evaluate_subnets import competition_suite, evaluate_code
    from oneforall.latency import extracted_model

    repeats = 2 if args.quick else args.repeats
    cfg = load_config(os.path.join(ROOT, "configs", "oneforall", "tiny_chip_supernet.yaml"), MODEL)
    for head in cfg.Model.heads.values():
        head.num_classes = 0
    paddle.seed(0)
    model = build_model(cfg).eval()
    space = model.backbone.search_space
    archs = [space.sample(1)] if args.quick else [space.largest(), space.sample(1), space.smallest()]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} thread(s); "
          f"model: 192-wide ViT, 12 blocks, 64x64, eval batch 32")
    with tempfile.TemporaryDirectory() as folder:
        root = make_mini_datasets(os.path.join(folder, "mini"), scale=args.scale)
        suite = competition_suite(cfg, root=root)
        images = sum(len(evaluator.images(test_set)) for test_set, evaluator in suite.prepared.values())
        print(f"{len(suite.entries)} test sets, {images} images per evaluation")
        print(f"{'sub-network':<40} {'supernet s':>10} {'plain s':>9} {'ratio':>7}")
        ratios = []
        for arch in archs:
            plain = extracted_model(cfg, model, arch)

            def through_supernet():
                model.backbone.set_subnet(arch)
                evaluate_code(model, suite)

            def through_plain():
                evaluate_code(plain, suite)

            through_supernet(), through_plain()  # warm-up
            best = {"supernet": float("inf"), "plain": float("inf")}
            for _ in range(repeats):
                best["supernet"] = min(best["supernet"], timed(through_supernet))
                best["plain"] = min(best["plain"], timed(through_plain))
            ratio = best["supernet"] / best["plain"]
            ratios.append(ratio)
            from oneforall.subnet_codes import subnet_code
            print(f"{subnet_code(arch):<40} {best['supernet']:>10.2f} {best['plain']:>9.2f} {ratio:>6.2f}x", flush=True)
    print(f"supernet / extracted plain ViT: {min(ratios):.2f}x .. {max(ratios):.2f}x (goal <= 1.10x)")


if __name__ == "__main__":
    main()
