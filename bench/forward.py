"""Images/s of the ViT forward (eval, no grad) with paddle's fused scaled_dot_product_attention vs the explicit
softmax(q k^T) v attention, measured in the same run, with the largest output difference between the two.

    python bench/forward.py            # tiny (the parity model, 32x32) and ViT-B/16 at 224x224: a minute or two
    python bench/forward.py --full     # adds ViT-B and ViT-L at 384x384 (the evaluation size): ~10 min

On CPU paddle's scaled_dot_product_attention runs its "math" backend (the same ops as the plain path); on GPU it
picks a memory-efficient / flash kernel. The first line gives the machine's GEMM ceiling (2048^3 float32 matmul
GFLOP/s of Paddle dygraph, of Paddle Inference with oneDNN and of NumPy, from bench/eval_ranking.py): the ViT forward
is matmul-bound, so it shows how far the dygraph forward is from what the cores can do.
"""
import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.utils.env import configure_threads  # noqa: E402

TINY = dict(img_size=32, embed_dim=64, depth=2, num_heads=4, mlp_ratio=4.0, qkv_bias=True, qk_scale=None)
# name -> (ViT arguments, batch size, timed batches)
CASES = {
    "tiny 32x32": (TINY, 64, 20),
    "base 224x224": (dict(preset="base", img_size=224), 4, 1),
}
FULL_CASES = {
    "base 384x384": (dict(preset="base", img_size=384), 4, 1),
    "large 384x384": (dict(preset="large", img_size=384), 2, 1),
}


def time_forward(model, images, batches):
    """Seconds for `batches` forward passes of `images` (eval, no grad), and the last output."""
    import paddle

    with paddle.no_grad():
        start = time.perf_counter()
        for _ in range(batches):
            out = model(images)
        return time.perf_counter() - start, out.numpy()


def compare_attention(model, images, batches, repeats=3):
    """Images/s of (plain, fused) attention: warm-up, then alternating timings so machine load hits both alike;
    best of `repeats` each. Also the largest difference between their outputs."""
    best, outputs = {}, {}
    for fused in (False, True):
        set_fused(model, fused)
        time_forward(model, images, 1)
    for _ in range(repeats):
        for fused in (False, True):
            set_fused(model, fused)
            seconds, outputs[fused] = time_forward(model, images, batches)
            best[fused] = min(best.get(fused, float("inf")), seconds)
    per_second = {fused: batches * images.shape[0] / seconds for fused, seconds in best.items()}
    return per_second[False], per_second[True], float(abs(outputs[True] - outputs[False]).max())


def set_fused(model, fused):
    for block in model.blocks:
        block.attn.fused = fused


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also ViT-B and ViT-L at 384x384")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    args = parser.parse_args()
    threads = configure_threads(args.threads)

    import numpy as np
    import paddle

    from allinone.modeling.vision_transformer import VisionTransformer

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} thread(s), "
          f"paddle {paddle.__version__}, device {paddle.device.get_device()}")
    from eval_ranking import gemm_ceilings  # noqa: E402  (bench/ is on sys.path when run as a script)

    print("GEMM ceiling 2048^3 GFLOP/s (wall / per CPU-second x threads): " +
          ", ".join(f"{name} {wall:.0f} / {cpu:.0f}" for name, (wall, cpu) in gemm_ceilings().items()))
    print(f"{'model':<15} {'batch':>5} {'plain img/s':>12} {'fused img/s':>12} {'fused/plain':>12} {'max |diff|':>11}")
    cases = {**CASES, **(FULL_CASES if args.full else {})}
    for name, (vit_args, batch, batches) in cases.items():
        paddle.seed(0)
        model = VisionTransformer(**vit_args)
        model.eval()
        size = model.img_size
        images = paddle.to_tensor(np.random.RandomState(0).uniform(-1, 1, (batch, 3, *size)).astype("float32"))
        plain, fused, max_diff = compare_attention(model, images, batches)
        print(f"{name:<15} {batch:>5} {plain:>12.2f} {fused:>12.2f} {fused / plain:>11.2f}x {max_diff:>11.2e}")
        del model


if __name__ == "__main__":
    main()
