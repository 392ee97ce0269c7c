"""OneForAll supernet costs, each measured against a baseline in the same run:

1. the task-MoE model with T tasks in one process (rows grouped by task) against the plain ViT of the same active
   width on the same batch: eval forward, and training forward + backward (goal: within 1.2x at T = 4);
2. the smallest competition sub-network against the largest in the ViT-B chip supernet, eval forward (goal: time in
   proportion to FLOPs, at least 1.3x faster);
3. the cost of a sub-network switch (goal: no weight copies, under 1 ms).

    python bench/supernet.py          # tiny models and ViT-B/16 at 224 (a few minutes on 2 cores)
    python bench/supernet.py --quick  # tiny models only, and the ViT-B sub-network cases at batch 1
"""
import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.utils.env import configure_threads  # noqa: E402

TINY = dict(img_size=[32, 32], patch_size=16, stride_size=16, embed_dim=64, depth=4, num_heads=4, mlp_ratio=4.0,
            qkv_bias=True, qk_scale=None)
BASE = dict(preset="base", img_size=[224, 224], patch_size=16, stride_size=16)
SMALLEST, LARGEST = "j" + "331" * 10 + "000" * 2, "l" + "111" * 12


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_time(fn, repeats):
    """Best of `repeats` timed calls after one warm-up call."""
    fn()
    return min(timed(fn) for _ in range(repeats))


def moe_vs_plain(vit_args, tasks, batch, repeats):
    """(eval ratio, train ratio, plain eval s, plain train s) of the task-MoE model over the plain ViT."""
    import paddle

    from allinone.modeling.vision_transformer import VisionTransformer
    from oneforall.task_moe import TaskMoEVisionTransformer
    names = [f"task{i}" for i in range(tasks)]
    plain = VisionTransformer(**vit_args)
    moe = TaskMoEVisionTransformer(tasks=names, **vit_args)
    size = vit_args["img_size"]
    images = paddle.randn([batch, 3, size[0], size[1]])
    segments = tuple((name, batch // tasks + (1 if i < batch % tasks else 0)) for i, name in enumerate(names))

    def eval_step(model, *extra):
        model.eval()
        with paddle.no_grad():
            model(images, *extra)

    def train_step(model, *extra):
        model.train()
        model(images, *extra).mean().backward()
        model.clear_gradients()

    # alternate the two models so that the load of other jobs hits both alike; best of `repeats` each
    steps = {"plain eval": lambda: eval_step(plain), "moe eval": lambda: eval_step(moe, segments),
             "plain train": lambda: train_step(plain), "moe train": lambda: train_step(moe, segments)}
    for step in steps.values():
        step()  # warm-up
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            best[name] = min(best[name], timed(step))
    plain_eval, moe_eval, plain_train, moe_train = (best[name] for name in steps)
    return moe_eval / plain_eval, moe_train / plain_train, plain_eval, plain_train


def block_flops(tokens, dim, heads, head_dim, hidden):
    inner = heads * head_dim
    return 2 * tokens * (dim * 3 * inner + inner * dim + 2 * dim * hidden) + 4 * tokens * tokens * inner


def subnet_flops(model, arch):
    tokens = model.grid_size[0] * model.grid_size[1] + 1
    return sum(block_flops(tokens, model.embed_dim, h, model.head_dim, int(model.embed_dim * r))
               for h, r in zip(arch.num_heads, arch.mlp_ratios))


def smallest_vs_largest(batch, repeats):
    """(time ratio largest/smallest, FLOPs ratio, switch ms, copies?) on the ViT-B chip supernet."""
    import paddle

    from oneforall.elastic import ElasticVisionTransformer
    from oneforall.search_space import COMPETITION_SPACE
    model = ElasticVisionTransformer(**BASE, head_dim=64, choices=COMPETITION_SPACE.to_choices()).eval()
    images = paddle.randn([batch, 3, 224, 224])
    times = {}
    for code in (SMALLEST, LARGEST):
        model.set_subnet(code)
        with paddle.no_grad():
            times[code] = best_time(lambda: model(images), repeats)
    flops = {code: subnet_flops(model, model.as_architecture(code)) for code in (SMALLEST, LARGEST)}
    pointers = [p.data_ptr() for p in model.parameters()]
    switches = 200
    start = time.perf_counter()
    for step in range(switches):
        model.sample_subnet(step)
    switch_ms = (time.perf_counter() - start) / switches * 1e3
    copied = pointers != [p.data_ptr() for p in model.parameters()]
    return times[LARGEST] / times[SMALLEST], flops[LARGEST] / flops[SMALLEST], times[SMALLEST], switch_ms, copied


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny MoE cases only; ViT-B sub-networks at batch 1")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    import paddle
    paddle.seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} thread(s), "
          f"paddle {paddle.__version__}")
    print("1. task-MoE (T tasks, one process) / plain ViT, same batch and active width")
    print(f"   {'model':<16} {'T':>2} {'batch':>5} {'eval ratio':>10} {'train ratio':>11} {'plain eval s':>12} "
          f"{'plain train s':>13}")
    cases = [("tiny 32x32 d4", TINY, 4, 64, 10), ("tiny 32x32 d4", TINY, 1, 64, 10)]
    if not args.quick:
        cases.append(("base 224x224", BASE, 4, 8, 2))
    for name, vit_args, tasks, batch, repeats in cases:
        eval_ratio, train_ratio, plain_eval, plain_train = moe_vs_plain(vit_args, tasks, batch, repeats)
        print(f"   {name:<16} {tasks:>2} {batch:>5} {eval_ratio:>10.2f} {train_ratio:>11.2f} {plain_eval:>12.4f} "
              f"{plain_train:>13.4f}")
    batch = 1 if args.quick else 4
    speedup, flops_ratio, small_s, switch_ms, copied = smallest_vs_largest(batch, 2 if args.quick else 3)
    print(f"2. ViT-B chip supernet, batch {batch}: smallest sub-network {speedup:.2f}x faster than the largest "
          f"(FLOPs ratio {flops_ratio:.2f}; smallest {small_s:.3f} s)")
    print(f"3. sub-network switch: {switch_ms:.3f} ms (sample + set), weights copied: {copied}")


if __name__ == "__main__":
    main()
