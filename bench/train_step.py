"""Training-step throughput and peak memory on CPU: the batch-fused forward (one backbone pass over all tasks'
images, as the original's meta-architecture) beside one backbone pass per task, same model, batch and run; and the
task-MoE step (oneforall's TaskMoEVisionTransformer + TaskMoEStep: per-task embeddings, gates, hard-gated experts;
both FFNs run forward in training, the picked one also backward) beside the plain ViT's fused step at the same size
and batch, and the released formula (both FFNs forward and backward on every row, `MoE-both`) in the same run.

    python bench/train_step.py [--rounds 3] [--sizes tiny base] [--full] [--parts fusion moe] [--phases]

tiny = tiny_demo.yaml (ViT dim 64, depth 2, 32x32, 16 images per task); base = ViT-Base at 64x64, 8 images per
task (--full: 384x384 and the recipe's per-GPU batch 128/64/64/64 of 8 ranks, for GPU machines). Each step is the
real Trainer step (forward, CosFace + triplet losses, backward, Momentum step) on a fixed synthetic batch. The two
forwards alternate for `rounds` rounds (after one warm-up step each) and the best rate counts, so load from other
jobs hits both alike. Peak memory = paddle's host allocator peak during a step, above what was allocated before.
"""
import argparse
import itertools
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from allinone.utils.env import configure_threads  # noqa: E402

THREADS = configure_threads()

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle.base import core  # noqa: E402

from allinone.config import load_config  # noqa: E402
from allinone.engine.losses import MultiTaskLoss  # noqa: E402
from allinone.engine.solver import build_lr_scheduler, build_optimizer  # noqa: E402
from allinone.engine.trainer import Trainer  # noqa: E402
from allinone.modeling import build_model  # noqa: E402

TASKS = ("task1", "task2", "task3", "task4")
NUM_CLASSES = 100
INSTANCES = 4  # K of the P x K batches the triplet loss needs


def size_overrides(size, full):
    """(config overrides, images per task) of a benchmark size."""
    if size == "tiny":
        return [], [16] * 4
    side = 384 if full else 64
    model = ["Model.backbone.embed_dim=768", "Model.backbone.depth=12", "Model.backbone.num_heads=12",  # ViT-Base
             "Model.backbone.mlp_ratio=4.0", f"Model.backbone.img_size=[{side}, {side}]",
             "Model.backbone.patch_size=16", "Model.backbone.stride_size=16"]
    return model, ([128, 64, 64, 64] if full else [8] * 4)


def build_step(size, full):
    """A Trainer on the tiny_demo recipe at `size`, a fixed synthetic batch, and the batch's image count."""
    overrides, batches = size_overrides(size, full)
    cfg = load_config(os.path.join(ROOT, "configs/allinone/tiny_demo.yaml"), overrides)
    for task in TASKS:
        cfg.Model.heads[task].num_classes = NUM_CLASSES
    paddle.seed(0)
    model = build_model(cfg)
    height, width = model.backbone.img_size
    rng = np.random.RandomState(0)
    batch = {task: {"images": paddle.to_tensor(rng.uniform(-1, 1, [n, 3, height, width]).astype("float32")),
                    "targets": paddle.to_tensor(np.repeat(rng.choice(NUM_CLASSES, n // INSTANCES, replace=False),
                                                          INSTANCES))}
             for task, n in zip(TASKS, batches)}
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, 1000)
    trainer = Trainer(model, MultiTaskLoss(cfg.Loss, TASKS), build_optimizer(cfg.Optimizer, model, scheduler),
                      scheduler, itertools.repeat(batch), max_iter=1000)
    trainer.model.train()
    return trainer, sum(batches)


def build_moe_step(size, full):
    """The `build_step` trainer with the backbone made a task-MoE one (same width, depth, heads; the four tasks) and
    the TaskMoEStep (one process: no gradient exchange; no gate logging)."""
    import oneforall.moe_training  # noqa: F401  (registrations)
    from oneforall.moe_training import TaskMoEStep

    plain, images = build_step(size, full)
    overrides, _ = size_overrides(size, full)
    cfg = load_config(os.path.join(ROOT, "configs/allinone/tiny_demo.yaml"), overrides)
    cfg.Model.backbone["name"] = "TaskMoEVisionTransformer"
    cfg.Model.backbone["tasks"] = list(TASKS)
    backbone = cfg.Model.backbone
    if backbone.get("preset") is None:
        cfg.Model.backbone["head_dim"] = int(backbone.embed_dim) // int(backbone.num_heads)
    for task in TASKS:
        cfg.Model.heads[task].num_classes = NUM_CLASSES
    paddle.seed(0)
    model = build_model(cfg)
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, 1000)
    trainer = Trainer(model, MultiTaskLoss(cfg.Loss, TASKS), build_optimizer(cfg.Optimizer, model, scheduler),
                      scheduler, itertools.repeat(next(plain._batches)), max_iter=1000,
                      step=TaskMoEStep(gate_log_period=0))
    trainer.model.train()
    return plain, trainer, images


def measure(trainer, fused):
    """(images/s, peak MB) of one training step with the backbone fused over tasks or run once per task."""
    trainer.module.fuse_tasks = fused
    before = core.host_memory_stat_current_value("Allocated", 0)
    core.host_memory_stat_reset_peak_value("Allocated", 0)
    start = time.perf_counter()
    trainer.run_step()
    seconds = time.perf_counter() - start
    peak = core.host_memory_stat_peak_value("Allocated", 0) - before
    return trainer.storage.latest("images")[1] / seconds, peak / 2 ** 20


def compare(trainer, rounds):
    """{True (fused): (best images/s, peak MB), False (per task): ...}, alternating the two each round."""
    for fused in (True, False):
        measure(trainer, fused)  # warm-up: first-call allocations and kernel selection
    runs = {True: [], False: []}
    for _ in range(rounds):
        for fused in (True, False):
            runs[fused].append(measure(trainer, fused))
    return {fused: (max(rate for rate, _ in results), max(peak for _, peak in results))
            for fused, results in runs.items()}


MOE_ROWS = (("plain", None), ("task-MoE", "picked"), ("MoE-both", "both"))  # (row name, expert runner)


def compare_moe(plain, moe, rounds):
    """{row name: (best images/s, peak MB)} of MOE_ROWS: the plain ViT, the task-MoE step with the default expert
    runner (the unpicked expert of a row runs without autograd) and with the released formula (both experts with
    autograd on every row), alternating the three each round (fused forwards)."""
    runs = alternate_rows(plain, moe, lambda trainer: measure(trainer, True), rounds)
    return {name: (max(rate for rate, _ in results), max(peak for _, peak in results))
            for name, results in runs.items()}


def alternate_rows(plain, moe, timed, rounds):
    """{row name: [timed(trainer) per round]} of MOE_ROWS (the plain trainer, or the task-MoE one with the row's
    expert runner): one warm-up call each, then the rows alternate every round, so load on a shared machine hits
    them alike."""
    def run(runner):
        if runner is None:
            return timed(plain)
        for block in moe.module.backbone.blocks:
            block.mlp.expert_runner = runner
        return timed(moe)

    for _, runner in MOE_ROWS:
        run(runner)
    runs = {name: [] for name, _ in MOE_ROWS}
    for _ in range(rounds):
        for name, runner in MOE_ROWS:
            runs[name].append(run(runner))
    return runs


def phase_times(trainer):
    """(forward, backward, update) seconds of one step of `trainer` (a plain SimpleStep or a one-process
    TaskMoEStep, whose step is the same three phases plus zero gradients for unused parameters)."""
    from oneforall.moe_training import TaskMoEStep, give_zero_gradients

    step = trainer.step
    if isinstance(step, TaskMoEStep) and not step.ready:
        step.setup(trainer)
    batch = trainer.next_batch()
    start = time.perf_counter()
    losses = trainer.forward_losses(batch)
    forward = time.perf_counter()
    trainer.backward(losses)
    backward = time.perf_counter()
    if isinstance(step, TaskMoEStep):
        give_zero_gradients(step.params)
    trainer.update()
    return forward - start, backward - forward, time.perf_counter() - backward


def compare_moe_phases(plain, moe, rounds):
    """{row name: best (forward, backward, update) seconds} of MOE_ROWS, alternating like `compare_moe`."""
    runs = alternate_rows(plain, moe, phase_times, rounds)
    return {name: tuple(min(times[i] for times in results) for i in range(3)) for name, results in runs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per forward, alternating")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    parser.add_argument("--full", action="store_true", help="base at 384x384 with the recipe's per-GPU batch")
    parser.add_argument("--parts", nargs="+", default=["fusion", "moe"], choices=["fusion", "moe"],
                        help="fusion: fused vs per-task forward; moe: task-MoE step vs the plain ViT step")
    parser.add_argument("--phases", action="store_true",
                        help="with moe: also each step's forward / backward / update times (best of the rounds)")
    args = parser.parse_args(argv)
    paddle.set_device("cpu")
    print(f"CPU, {THREADS} thread(s), paddle {paddle.__version__}, best of {args.rounds} alternating step(s) per row")
    if "fusion" in args.parts:
        print(f"{'size':<6} {'images':>6} {'forward':<9} {'images/s':>9} {'peak MB':>8} {'vs fused':>9}")
    for size in (args.sizes if "fusion" in args.parts else []):
        trainer, images = build_step(size, args.full)
        results = compare(trainer, args.rounds)
        for name, fused in (("fused", True), ("per-task", False)):
            rate, peak = results[fused]
            print(f"{size:<6} {images:>6} {name:<9} {rate:>9.1f} {peak:>8.1f} {rate / results[True][0]:>8.2f}x",
                  flush=True)
    if "moe" in args.parts:
        print(f"{'size':<6} {'images':>6} {'model':<9} {'s/step':>9} {'peak MB':>8} {'vs plain':>9}  (4 tasks)")
    for size in (args.sizes if "moe" in args.parts else []):
        plain, moe, images = build_moe_step(size, args.full)
        results = compare_moe(plain, moe, args.rounds)
        for name, _ in MOE_ROWS:
            rate, peak = results[name]
            print(f"{size:<6} {images:>6} {name:<9} {images / rate:>9.4f} {peak:>8.1f} "
                  f"{results['plain'][0] / rate:>8.2f}x", flush=True)
        if args.phases:
            for name, times in compare_moe_phases(plain, moe, args.rounds).items():
                print(f"{size:<6} {name:<9} forward {times[0]:.4f} s, backward {times[1]:.4f} s, update "
                      f"{times[2]:.4f} s, sum {sum(times):.4f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
