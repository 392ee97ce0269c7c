"""CPU cost of the traffic model's training step at small sizes, and of its deformable attention.

1. Seconds per forward+backward of each task and per joint step (PerTaskStep's order: segmentation, fgvc,
   trafficsign, then one AdamW update), a reduced model (embed 192, 6 blocks, DINO 100 queries, 3+3 layers) on
   synthetic batches; peak resident memory of the process.
2. Multi-scale deformable attention as used (bilinear `grid_sample` per level) against a gather-based reference
   (four corner look-ups with `take_along_axis`, the textbook formulation), forward+backward at encoder sizes,
   reported as a ratio (goal: at least as fast, ratio >= 1). Both give the same numbers (checked here).

    python bench/traffic_step.py [--repeats 5] [--threads 1]
"""
import argparse
import os
import platform
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.utils.env import configure_threads  # noqa: E402


def small_config():
    return {
        "backbone": {"name": "WindowedViT", "img_size": 224, "patch_size": 16, "embed_dim": 192, "depth": 6,
                     "num_heads": 3, "mlp_ratio": 4.0, "window_size": 7, "drop_path_rate": 0.1},
        "heads": {
            "segmentation": {"name": "TrafficSegmentationHead", "num_classes": 19, "embed_dim": 192, "channels": 64,
                             "block_index": 5, "aux_indices": [1, 3, 5, 5]},
            "fgvc": {"name": "TrafficClassificationHead", "in_dim": 192, "hidden_dim": 96, "num_classes": 196},
            "trafficsign": {"name": "TrafficDetectionHead", "num_classes": 45, "hidden_dim": 128, "num_queries": 100,
                            "in_channels": [192] * 4, "num_heads": 8, "num_encoder_layers": 3,
                            "num_decoder_layers": 3, "dim_feedforward": 512, "num_denoising": 40},
        },
    }


def synthetic_batch(paddle, rng):
    det_boxes = [paddle.to_tensor(rng.uniform(0.2, 0.5, size=[n, 4]).astype("float32")) for n in (3, 5)]
    return {
        "segmentation": {"images": paddle.randn([2, 3, 160, 96]), "targets": paddle.randint(0, 19, [2, 160, 96])},
        "fgvc": {"images": paddle.randn([8, 3, 224, 224]), "targets": paddle.randint(0, 196, [8])},
        "trafficsign": {"images": paddle.randn([2, 3, 256, 256]), "pad_mask": paddle.ones([2, 256, 256]),
                        "gt_boxes": det_boxes, "gt_classes": [paddle.randint(0, 45, [len(b)]) for b in det_boxes]},
    }


def best_of(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def step_timings(paddle, repeats):
    import numpy as np

    from oneforall.traffic.model import build_traffic_model

    paddle.seed(0)
    model = build_traffic_model(small_config())
    model.train()
    optimizer = paddle.optimizer.AdamW(1e-4, parameters=model.parameters(), weight_decay=1e-4,
                                       grad_clip=paddle.nn.ClipGradByGlobalNorm(0.1))
    batch = synthetic_batch(paddle, np.random.default_rng(0))

    def task_pass(task):
        losses = model({task: batch[task]})[task]["losses"]
        paddle.add_n(list(losses.values())).backward()

    results = {}
    for task in batch:
        results[f"{task} forward+backward"] = best_of(lambda t=task: (task_pass(t), optimizer.clear_grad()), repeats)

    def joint():
        for task in batch:
            task_pass(task)
        optimizer.step()
        optimizer.clear_grad()

    results["joint step (3 tasks + AdamW)"] = best_of(joint, repeats)
    return results


def gather_sampling(paddle, value, shapes, locations, weights):
    """Reference: bilinear sampling by explicit corner gathers (zeros outside), same signature and result as
    oneforall.traffic.deformable.deformable_sampling."""
    batch, _, heads, dim = value.shape
    queries, levels, points = locations.shape[1], locations.shape[3], locations.shape[4]
    out = 0
    for level, (value_l, (height, width)) in enumerate(zip(value.split([h * w for h, w in shapes], 1), shapes)):
        value_l = value_l.transpose([0, 2, 1, 3]).reshape([batch * heads, height * width, dim])
        loc = locations[:, :, :, level].transpose([0, 2, 1, 3, 4]).reshape([batch * heads, queries * points, 2])
        x, y = loc[..., 0] * width - 0.5, loc[..., 1] * height - 0.5
        x0, y0 = paddle.floor(x), paddle.floor(y)
        sampled = 0
        for dx in (0, 1):
            for dy in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                valid = ((xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)).astype(value.dtype)
                corner = (1 - (x - xi).abs()) * (1 - (y - yi).abs()) * valid
                index = (yi.clip(0, height - 1) * width + xi.clip(0, width - 1)).astype("int64")
                gathered = paddle.take_along_axis(value_l, index.unsqueeze(-1).expand([-1, -1, dim]), axis=1)
                sampled = sampled + gathered * corner.unsqueeze(-1)
        w = weights[:, :, :, level].transpose([0, 2, 1, 3]).reshape([batch * heads, queries, points, 1])
        out = out + (sampled.reshape([batch * heads, queries, points, dim]) * w).sum(2)
    return out.reshape([batch, heads, queries, dim]).transpose([0, 2, 1, 3]).reshape([batch, queries, heads * dim])


def deformable_timings(paddle, repeats):
    import numpy as np

    from oneforall.traffic.deformable import deformable_sampling

    rng = np.random.default_rng(0)
    shapes = [(40, 40), (20, 20), (10, 10), (5, 5)]  # a 640-pixel image's P16..P128-like levels
    batch, heads, dim, points = 2, 8, 32, 4
    queries = sum(h * w for h, w in shapes)  # encoder self-attention: one query per position
    value = paddle.to_tensor(rng.normal(size=[batch, queries, heads, dim]).astype("float32"), stop_gradient=False)
    locations = paddle.to_tensor(rng.uniform(-0.05, 1.05, [batch, queries, heads, 4, points, 2]).astype("float32"),
                                 stop_gradient=False)
    weights = paddle.to_tensor(rng.uniform(size=[batch, queries, heads, 4, points]).astype("float32"),
                               stop_gradient=False)
    ours = deformable_sampling(value, shapes, locations, weights)
    reference = gather_sampling(paddle, value, shapes, locations, weights)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-4, atol=1e-4)

    def run(fn):
        def once():
            fn(value, shapes, locations, weights).sum().backward()
            for t in (value, locations, weights):
                t.clear_gradient()
        return once

    return {"gather reference": best_of(run(lambda *a: gather_sampling(paddle, *a)), repeats),
            "grid_sample (ours)": best_of(run(deformable_sampling), repeats)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    configure_threads(args.threads)
    import paddle

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, paddle {paddle.__version__}, "
          f"{args.threads} thread(s), best of {args.repeats}")
    for name, seconds in step_timings(paddle, args.repeats).items():
        print(f"  {name:36s} {seconds * 1000:8.0f} ms")
    print(f"  peak resident memory                 {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MB")
    deform = deformable_timings(paddle, args.repeats)
    base = deform["gather reference"]
    for name, seconds in deform.items():
        print(f"  deformable attention, {name:18s} {seconds * 1000:8.1f} ms  (x{base / seconds:.2f} vs gather)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
