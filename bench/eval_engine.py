"""Evaluation images/s of the two engines of evaluation_script.py (`--engine dygraph|inference`), through the suite's
own embedders (allinone/evaluation/embedders.py) on the same batch, and of dygraph with and without
MKL_DEBUG_CPU_TYPE=5 (MKL's AVX2 kernels on AMD CPUs; allinone/utils/env.py sets it there).

    python bench/eval_engine.py              # tiny parity ViT (32x32) and ViT-B/16 at 224: ~2 min on 2 cores
    python bench/eval_engine.py --large      # adds ViT-L/16 at 384 (the released model's size): ~10 min more

Each variant runs in its own process (MKL reads the variable when it loads), variants alternate round by round so
the load of a shared machine hits all alike; per variant the best round is kept, as images per wall second and per
CPU second x threads (what the cores give when not shared). Random weights, BN statistics drawn away from 0/1.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from random_models import random_eval_model  # noqa: E402  (bench/random_models.py)

# name -> (backbone preset or None for the tiny parity ViT, image size, batch, timed batches)
CASES = {"tiny parity ViT, 32x32": (None, 32, 64, 20), "ViT-B/16, 224x224": ("base", 224, 4, 2)}
LARGE_CASES = {"ViT-L/16, 384x384": ("large", 384, 2, 1)}
# variant -> (engine, MKL_DEBUG_CPU_TYPE: "" keeps MKL's own choice, the generic path on AMD)
VARIANTS = {"dygraph, MKL default": ("dygraph", ""), "dygraph, MKL_DEBUG_CPU_TYPE=5": ("dygraph", "5"),
            "Paddle Inference (oneDNN)": ("inference", "5")}


def worker(case, engine, threads):
    """One timing in this process: JSON {img_per_s, img_per_cpu_s, seconds_to_prepare} on stdout."""
    from allinone.utils.env import configure_threads

    configure_threads(threads)
    import numpy as np
    import paddle

    from allinone.evaluation.embedders import build_embedder

    paddle.set_device("cpu")
    preset, size, batch, timed = {**CASES, **LARGE_CASES}[case]
    model = random_eval_model(preset, size)
    images = paddle.to_tensor(np.random.RandomState(1).uniform(-1, 1, [batch, 3, size, size]).astype("float32"))
    start = time.perf_counter()
    embedder = build_embedder(engine, model, ["task3"], batch_size=batch)
    prepare = time.perf_counter() - start
    with paddle.no_grad():
        embedder.embed("task3", images).numpy()  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(timed):
            embedder.embed("task3", images).numpy()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"img_per_s": batch * timed / wall, "img_per_cpu_s": batch * timed / cpu * threads,
                      "prepare_s": prepare, "mkl": os.environ.get("MKL_DEBUG_CPU_TYPE")}))


def measure(case, variant, threads):
    engine, mkl = VARIANTS[variant]
    env = dict(os.environ, MKL_DEBUG_CPU_TYPE=mkl, PYTHONPATH=ROOT, GLOG_minloglevel="2")
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", case, engine, "--threads",
                           str(threads)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{case} / {variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", action="store_true", help="also ViT-L/16 at 384x384")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker, args.threads)
    print(f"# {os.cpu_count()} cores, {args.threads} threads, best of {args.rounds} alternating rounds; "
          f"images/s wall / per CPU-second x threads")
    print("| model (batch) | " + " | ".join(VARIANTS) + " | inference / dygraph (MKL default, =5) | export + check s |")
    print("|---|" + "---|" * (len(VARIANTS) + 2))
    for case, (_, _, batch, _) in {**CASES, **(LARGE_CASES if args.large else {})}.items():
        best = {}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                result = measure(case, variant, args.threads)
                kept = best.setdefault(variant, result)
                for key in ("img_per_s", "img_per_cpu_s"):
                    kept[key] = max(kept[key], result[key])
        cells = [f"{best[v]['img_per_s']:.2f} / {best[v]['img_per_cpu_s']:.2f}" for v in VARIANTS]
        generic, avx2, inference = (best[v] for v in VARIANTS)
        ratios = (f"x{inference['img_per_cpu_s'] / generic['img_per_cpu_s']:.1f}, "
                  f"x{inference['img_per_cpu_s'] / avx2['img_per_cpu_s']:.1f}")
        print(f"| {case} ({batch}) | " + " | ".join(cells) + f" | {ratios} | "
              f"{best['Paddle Inference (oneDNN)']['prepare_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
