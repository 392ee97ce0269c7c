"""Write a miniature copy of every data-set layout (a few identities each, real image files) to smoke-test an install.

    python tools/make_mini_datasets.py OUT [--seed 0] [--scale N] [--hard]
    python tools/make_mini_datasets.py OUT --traffic [--seed 0] [--scale N]   # the traffic track's layouts instead
    python tools/make_mini_datasets.py OUT --oneforall [--seed 0] [--scale N] [--hard]   # + the OneForAll recipe's
                                                  # training sets (PersonAll, VeriAll, 20 classification sets)
    FASTREID_DATASETS=OUT python tools/...   # then any reader or tool runs on it

`--scale 6 --hard` writes the demo's tree: 6x the identities and face pairs, painted so that colour alone does not
match identities. The generator is `tools/mini_datasets.py`: `make_mini_datasets(out_dir, seed=0, scale=1, hard=False)`.
"""
import argparse
import os
import sys
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(TOOLS), TOOLS]  # the checkout's allinone, and mini_datasets next to this file

from allinone.utils.env import configure_threads  # noqa: E402

configure_threads()

from mini_datasets import MAX_SCALE, make_mini_datasets, make_oneforall_datasets  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write (created; existing files are overwritten)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image patterns and pair draws")
    parser.add_argument("--scale", type=int, default=1,
                        help=f"multiplies every identity count and the face pairs (1..{MAX_SCALE})")
    parser.add_argument("--hard", action="store_true", help="identities a model must learn (colour is not enough)")
    parser.add_argument("--traffic", action="store_true",
                        help="write the traffic track's cls/dec/seg tree (oneforall/traffic/mini.py) instead")
    parser.add_argument("--oneforall", action="store_true",
                        help="also write the OneForAll recipe's training sets (PersonAll, VeriAll, classification)")
    args = parser.parse_args(argv)
    if not 1 <= args.scale <= MAX_SCALE:
        parser.error(f"--scale must be in 1..{MAX_SCALE}, got {args.scale}")
    start = time.time()
    if args.traffic:
        from oneforall.traffic.mini import make_traffic_tree

        make_traffic_tree(args.out, seed=args.seed, cls_per_class=(8 * args.scale, 3 * args.scale),
                          dec_images=(16 * args.scale, 6 * args.scale), seg_images=(8 * args.scale, 3 * args.scale))
    else:
        make_mini_datasets(args.out, seed=args.seed, scale=args.scale, hard=args.hard)
        if args.oneforall:
            make_oneforall_datasets(args.out, seed=args.seed, scale=args.scale, hard=args.hard)
    count = sum(len(files) for _, _, files in os.walk(args.out))
    print(f"wrote {count} files under {args.out} in {time.time() - start:.1f} s; "
          f"use it with FASTREID_DATASETS={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
