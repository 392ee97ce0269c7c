"""Time and peak memory of the ReID ranking and SOP Recall@K: the original pipeline against ours, in one run.

    python bench/eval_ranking.py            # Market1501, MSMT17 and SOP sizes (the original's MSMT17 needs ~12 GB)
    python bench/eval_ranking.py --quick    # Market1501, MSMT17 / 4 and SOP / 4: a few minutes

Synthetic d=1024 features with the test sets' structure (ids, cameras, distractors). Every variant runs in its own
subprocess, so its peak RSS is its own; variants alternate when repeated, so the machine's load hits all alike.
Variants:
  ReID  original         Paddle distance of the whole matrix (dygraph matmul), a full argsort, a loop over queries
        ours-inference   reid_metrics, distance GEMM as a Paddle Inference program with oneDNN (the CPU default)
        ours-dygraph     reid_metrics, distance GEMM with dygraph paddle.matmul (the GPU default)
  SOP   faiss-1thread    recall_at_ks(backend="faiss") with one faiss thread (the original's setting)
        faiss            the same with all threads
        ours-inference   recall_at_ks(backend="paddle"), oneDNN GEMM
Also printed: each machine GEMM ceiling (2048^3 float32 matmul GFLOP/s: Paddle dygraph, Paddle Inference oneDNN,
NumPy), the GFLOP/s of our distance GEMM alone, and ours again with NumPy's OpenBLAS forced to generic kernels
(OPENBLAS_CORETYPE=Prescott) to show that our speed does not depend on the host BLAS.
Targets: MSMT17 >= 6x faster than the original and <= 1.3 GiB peak; SOP >= 3x faster than faiss-1thread.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.utils.env import configure_threads  # noqa: E402

DIM = 1024
# query, gallery, ids, cameras, distractor images in the gallery (pid 0), as the evaluator builds them
# (the published test-set sizes, docs/data.md)
REID_SIZES = {
    "market1501": dict(num_query=3368, num_gallery=15913, num_ids=750, num_cams=6, num_distractors=2798),
    "msmt17": dict(num_query=11659, num_gallery=82161, num_ids=3060, num_cams=15, num_distractors=0),
}
SOP_SIZE = dict(num_items=60502, num_classes=11316)
QUICK_SCALE = {"market1501": 1, "msmt17": 4, "sop": 4}
CHUNK = 8192
VARIANTS = {"market1501": ("original", "ours-inference", "ours-dygraph"),
            "msmt17": ("original", "ours-inference", "ours-dygraph"),
            "sop": ("faiss-1thread", "faiss", "ours-inference")}
GENERIC_BLAS = {"OPENBLAS_CORETYPE": "Prescott"}  # NumPy's (and faiss's) OpenBLAS on its generic SSE3 kernels


def reid_data(num_query, num_gallery, num_ids, num_cams, num_distractors, seed=0):
    """Features = id centre + camera offset + noise (same-camera negatives are the hard ones), float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = np.arange(1, num_ids + 1)
    q_pids = ids[np.arange(num_query) % num_ids]
    g_pids = np.concatenate([ids[np.arange(num_gallery - num_distractors) % num_ids], np.zeros(num_distractors, int)])
    q_cams = rng.integers(0, num_cams, num_query)
    g_cams = rng.integers(0, num_cams, num_gallery)
    id_centres = rng.standard_normal((num_ids + 1, DIM), dtype=np.float32)
    cam_offsets = 0.8 * rng.standard_normal((num_cams, DIM), dtype=np.float32)

    def features(pids, cams):
        out = rng.standard_normal((len(pids), DIM), dtype=np.float32)
        for start in range(0, len(pids), CHUNK):  # in chunks: no full-size temporaries in the measured peak
            rows = slice(start, start + CHUNK)
            out[rows] *= 1.6
            out[rows] += id_centres[pids[rows]] + cam_offsets[cams[rows]]
            distractors = np.flatnonzero(pids[rows] == 0) + start  # each distractor is its own person
            out[distractors] += rng.standard_normal((len(distractors), DIM), dtype=np.float32)
        return out

    return features(q_pids, q_cams), features(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def sop_data(num_items, num_classes, seed=0):
    """Classes of 2 or more images (SOP: 2-12, 5.3 on average), string labels as SOP's test.txt gives them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    classes = np.sort(np.concatenate([np.repeat(np.arange(num_classes), 2),
                                      rng.integers(0, num_classes, num_items - 2 * num_classes)]))
    centres = rng.standard_normal((num_classes, DIM), dtype=np.float32)
    feats = rng.standard_normal((num_items, DIM), dtype=np.float32)
    for start in range(0, num_items, CHUNK):
        feats[start:start + CHUNK] *= 3.0
        feats[start:start + CHUNK] += centres[classes[start:start + CHUNK]]
    return feats, np.array([str(11318 + c) for c in classes])


def original_reid(q, g, q_pids, g_pids, q_cams, g_cams, timings):
    """The original's evaluator: Paddle normalises and multiplies the whole matrices (dygraph), the distance matrix
    goes to NumPy, a full argsort of it, then a loop over the queries."""
    import numpy as np
    import paddle
    import paddle.nn.functional as F

    start = time.perf_counter()
    qn = F.normalize(paddle.to_tensor(q), axis=1)
    gn = F.normalize(paddle.to_tensor(g), axis=1)
    dist = (1 - paddle.matmul(qn, gn, transpose_y=True)).numpy()
    del qn, gn
    timings["distance"] = time.perf_counter() - start
    indices = np.argsort(dist, axis=1)
    cmc, ap, inp = [], [], []
    for i in range(len(q)):
        order = indices[i]
        keep = ~((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        matches = (g_pids[order] == q_pids[i])[keep]
        if not matches.any():
            continue
        positions = np.flatnonzero(matches)
        cmc.append(np.minimum(np.cumsum(matches[:50]), 1))
        ap.append(np.mean(np.arange(1, len(positions) + 1) / (positions + 1.0)))
        inp.append(len(positions) / (positions[-1] + 1.0))
    cmc = np.mean(np.asarray(cmc, dtype=np.float32), axis=0)
    return {"Rank-1": float(cmc[0]) * 100, "Rank-5": float(cmc[4]) * 100, "Rank-10": float(cmc[9]) * 100,
            "mAP": float(np.mean(ap)) * 100, "mINP": float(np.mean(inp)) * 100}


def cpu_time():
    times = os.times()
    return times.user + times.system


def gemm_ceilings(size=2048, repeats=3):
    """GFLOP/s of a size^3 float32 matmul (best of `repeats`): Paddle dygraph, Paddle Inference (oneDNN), NumPy.
    Each as (wall-clock GFLOP/s, GFLOP per CPU-second x threads): the second is what an unloaded machine would give
    (other jobs on the cores stretch the wall clock, not this process's CPU time)."""
    import numpy as np
    import paddle

    from allinone.evaluation.distance import InnerProducts

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    pa, pb = paddle.to_tensor(a), paddle.to_tensor(b)
    oned = InnerProducts(b, engine="inference")
    runs = {"paddle-dygraph": lambda: paddle.matmul(pa, pb, transpose_y=True).numpy(),
            "paddle-onednn": lambda: oned(a),
            "numpy": lambda: a @ b.T}
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    best = {}
    for name, run in runs.items():
        run()
        wall, cpu = [], []
        for _ in range(repeats):
            tic, cpu_tic = time.perf_counter(), cpu_time()
            run()
            wall.append(time.perf_counter() - tic)
            cpu.append(cpu_time() - cpu_tic)
        best[name] = (2 * size ** 3 / min(wall) / 1e9, 2 * size ** 3 / min(cpu) / 1e9 * threads)
    return best


def run_worker(task, variant, scale):
    """One measurement in this process: build the data, time the ranking, report peak RSS (JSON on stdout)."""
    import numpy as np

    if task == "gemm":
        print(json.dumps({"task": task, "variant": variant, "gflops": gemm_ceilings()}))
        return
    if task == "sop":
        size = {"num_items": SOP_SIZE["num_items"] // scale, "num_classes": SOP_SIZE["num_classes"] // scale}
        data = sop_data(**size)
    else:
        size = {k: v if k == "num_cams" else v // scale for k, v in REID_SIZES[task].items()}
        data = reid_data(**size)
    import paddle  # noqa: F401  (imported before the clock and the data RSS: every variant pays it)

    data_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    engine = variant.split("-")[1] if variant.startswith("ours") else None
    timings = {"distance": None}  # time of the distance GEMM alone, where it can be told apart
    cpu_start = cpu_time()
    start = time.perf_counter()
    if task == "sop":
        from allinone.evaluation.retrieval import recall_at_ks
        from allinone.utils.env import configure_faiss_threads

        if variant.startswith("faiss"):
            configure_faiss_threads(1 if variant == "faiss-1thread" else None)
            metrics = dict(recall_at_ks(*data, backend="faiss"))
        else:
            metrics = dict(recall_at_ks(*data, backend="paddle", engine=engine))
    elif variant == "original":
        metrics = original_reid(*data, timings)
    else:
        from allinone.evaluation.reid import reid_metrics

        metrics = dict(reid_metrics(*data, engine=engine))
    seconds = time.perf_counter() - start
    cpu_seconds = cpu_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    flops = None
    if variant.startswith("ours"):  # a second pass computing only the distances (SOP: the upper half, as ours)
        from allinone.evaluation.distance import InnerProducts
        from allinone.evaluation.features import l2_normalize

        q, g = (data[0], data[1]) if task != "sop" else (l2_normalize(data[0]),) * 2
        products = InnerProducts(g, engine)
        rows = max(1, (64 if task != "sop" else 128) * 2 ** 20 // (4 * len(g)))
        products(l2_normalize(q[:rows]))  # warm-up
        flops = 0.0
        tic, cpu_tic = time.perf_counter(), cpu_time()
        for begin in range(0, len(q), rows):
            first_column = begin if task == "sop" else 0
            products(l2_normalize(q[begin:begin + rows]), first_column)
            flops += 2.0 * len(q[begin:begin + rows]) * (len(g) - first_column) * q.shape[1]
        timings["distance"] = time.perf_counter() - tic
        timings["distance_cpu"] = cpu_time() - cpu_tic
    print(json.dumps({"task": task, "variant": variant, "size": size, "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "peak_gib": peak, "data_gib": data_rss, "distance_seconds": timings["distance"],
                      "distance_gflops": None if flops is None else (
                          flops / timings["distance"] / 1e9,
                          flops / timings["distance_cpu"] / 1e9 * int(os.environ.get("OMP_NUM_THREADS", "1"))),
                      "metrics": {k: float(np.round(v, 4)) for k, v in metrics.items()}}))


def measure(task, variant, scale, env=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", task, variant, "--scale", str(scale)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        return {"task": task, "variant": variant, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="MSMT17 and SOP at 1/4 size")
    parser.add_argument("--tasks", default="market1501,msmt17,sop", help="comma-separated subset")
    parser.add_argument("--variants", default=None, help="comma-separated subset of each task's variants")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the variants (alternating)")
    parser.add_argument("--no_generic_blas", action="store_true", help="skip ours under a generic NumPy BLAS")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: all cores)")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    if args.worker:
        return run_worker(*args.worker, args.scale)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} thread(s), "
          f"load average {load:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{'quick' if args.quick else 'full'} sizes; d={DIM}")
    for env in ({}, GENERIC_BLAS):
        ceiling = measure("gemm", "-", 1, env)
        print(f"GEMM ceiling 2048^3 GFLOP/s (wall / per CPU-second x threads)"
              f"{' with ' + str(env) if env else ''}: " +
              ", ".join(f"{name} {wall:.0f} / {cpu:.0f}" for name, (wall, cpu) in ceiling.get("gflops", {}).items()))
    header = (f"{'task':<11} {'size':<24} {'variant':<22} {'seconds':>8} {'cpu s':>7} {'GEMM s':>7} {'GFLOP/s':>9} "
              f"{'peak GiB':>9} {'data GiB':>9}  metrics")
    print(header)
    summary = []
    for task in args.tasks.split(","):
        scale = QUICK_SCALE[task] if args.quick else 1
        variants = [v for v in VARIANTS[task] if not args.variants or v in args.variants.split(",")]
        runs = [(variant, {}) for variant in variants]
        if not args.no_generic_blas:
            runs.append(("ours-inference", GENERIC_BLAS))
        best = {}
        for _ in range(args.repeats):
            for variant, env in runs:
                label = variant + (" generic-BLAS" if env else "")
                res = measure(task, variant, scale, env)
                if "error" in res:
                    print(f"{task:<11} {'':<24} {label:<22} failed: {res['error']}")
                    continue
                size = ",".join(f"{v}" for v in res["size"].values())
                gemm = "-" if res["distance_seconds"] is None else f"{res['distance_seconds']:.1f}"
                gflops = "-" if res["distance_gflops"] is None else "{:.0f}/{:.0f}".format(*res["distance_gflops"])
                print(f"{task:<11} {size:<24} {label:<22} {res['seconds']:>8.1f} {res['cpu_seconds']:>7.1f} "
                      f"{gemm:>7} {gflops:>9} {res['peak_gib']:>9.2f} {res['data_gib']:>9.2f}  {res['metrics']}",
                      flush=True)
                if label not in best or res["seconds"] < best[label]["seconds"]:
                    best[label] = res
        baseline = best.get(VARIANTS[task][0])
        for label, res in best.items():
            if baseline is not None and res is not baseline:
                summary.append(f"{task:<11} {label:<22} x{baseline['seconds'] / res['seconds']:.1f} faster than "
                               f"{VARIANTS[task][0]} (cpu time x{baseline['cpu_seconds'] / res['cpu_seconds']:.1f}), "
                               f"peak {res['peak_gib']:.2f} vs {baseline['peak_gib']:.2f} GiB")
    print("\n".join(["", "ratios (best of the rounds):"] + summary) if summary else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
