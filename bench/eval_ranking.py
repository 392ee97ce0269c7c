"""Time and peak memory of our ReID ranking and SOP Recall@K against a straightforward full-argsort NumPy version.

    python bench/eval_ranking.py            # Market1501, MSMT17 and SOP sizes (the MSMT17 baseline needs ~12 GB)
    python bench/eval_ranking.py --quick    # Market1501, MSMT17 / 4 and SOP / 4: a few minutes

Synthetic d=1024 features with the test sets' structure (ids, cameras, distractors). Every variant runs in its own
subprocess so its peak RSS is its own; the table prints ours beside the baseline as ratios. Targets: MSMT17 size under
2 GiB peak RSS and >= 3x faster than the full-argsort baseline.
"""
import argparse
import json
import os
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


def full_argsort_reid(q, g, q_pids, g_pids, q_cams, g_cams, timings):
    """The protocol the plain way: the whole distance matrix, a full argsort of it, one loop over the queries."""
    import numpy as np

    start = time.perf_counter()
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    dist = 1 - qn @ gn.T
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
    return {"Rank-1": float(cmc[0]) * 100, "mAP": float(np.mean(ap)) * 100, "mINP": float(np.mean(inp)) * 100}


def full_argsort_recall(feats, labels, timings, ks=(1, 10, 100, 1000), block=1024):
    """Leave-one-out Recall@K by dense similarities and a full argsort per row (in query blocks: the dense 60k x 60k
    matrix and its argsort would need 44 GB)."""
    import numpy as np

    feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    hits = {k: 0 for k in ks}
    timings["distance"] = 0.0
    for start in range(0, len(feats), block):
        rows = np.arange(start, min(start + block, len(feats)))
        tic = time.perf_counter()
        sim = feats[rows] @ feats.T
        timings["distance"] += time.perf_counter() - tic
        sim[np.arange(len(rows)), rows] = -np.inf  # the query itself goes last
        order = np.argsort(-sim, axis=1)[:, :max(ks)]
        same = labels[order] == labels[rows, None]
        for k in ks:
            hits[k] += int(same[:, :k].any(axis=1).sum())
    return {f"Recall@{k}": round(hits[k] / len(feats) * 100, 2) for k in ks}


def run_worker(task, variant, scale):
    """One measurement in this process: build the data, time the ranking, report peak RSS (JSON on stdout)."""
    import numpy as np

    if task == "sop":
        size = {"num_items": SOP_SIZE["num_items"] // scale, "num_classes": SOP_SIZE["num_classes"] // scale}
        data = sop_data(**size)
    else:
        size = {k: v if k == "num_cams" else v // scale for k, v in REID_SIZES[task].items()}
        data = reid_data(**size)
    data_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    timings = {"distance": None}  # time of the distance GEMM alone, where it can be told apart
    start = time.perf_counter()
    if task == "sop" and variant == "ours":
        from allinone.evaluation.retrieval import recall_at_ks
        from allinone.utils.env import configure_faiss_threads

        configure_faiss_threads()
        metrics = dict(recall_at_ks(*data))
    elif task == "sop":
        metrics = full_argsort_recall(*data, timings)
    elif variant == "ours":
        from allinone.evaluation.reid import cosine_distance_blocks, reid_metrics

        metrics = dict(reid_metrics(*data))
    else:
        metrics = full_argsort_reid(*data, timings)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    if task != "sop" and variant == "ours":  # a second pass computing only the distances
        tic = time.perf_counter()
        for _ in cosine_distance_blocks(data[0], data[1]):
            pass
        timings["distance"] = time.perf_counter() - tic
    print(json.dumps({"task": task, "variant": variant, "size": size, "seconds": seconds, "peak_gib": peak,
                      "data_gib": data_rss, "distance_seconds": timings["distance"],
                      "metrics": {k: float(np.round(v, 4)) for k, v in metrics.items()}}))


def measure(task, variant, scale):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", task, variant, "--scale", str(scale)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"task": task, "variant": variant, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio_line(task, ours, base):
    """Speed-up and memory ratio; for ReID also the ranking alone (total minus the distance GEMM both share)."""
    line = (f"{task:<11} speed-up x{base['seconds'] / ours['seconds']:.1f}, peak RSS {ours['peak_gib']:.2f} vs "
            f"{base['peak_gib']:.2f} GiB (x{base['peak_gib'] / ours['peak_gib']:.1f} less)")
    if ours["distance_seconds"] is not None and base["distance_seconds"] is not None:
        ours_rank = max(ours["seconds"] - ours["distance_seconds"], 1e-3)
        base_rank = base["seconds"] - base["distance_seconds"]
        line += (f"; ranking without the distance GEMM {ours_rank:.1f} vs {base_rank:.1f} s "
                 f"(x{base_rank / ours_rank:.1f})")
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="MSMT17 and SOP at 1/4 size")
    parser.add_argument("--tasks", default="market1501,msmt17,sop", help="comma-separated subset")
    parser.add_argument("--skip_baseline", action="store_true", help="time ours only")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: all cores)")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    if args.worker:
        return run_worker(*args.worker, args.scale)
    variants = ["ours"] if args.skip_baseline else ["ours", "full_argsort"]
    print(f"threads {threads}; {'quick' if args.quick else 'full'} sizes; d={DIM}")
    header = (f"{'task':<11} {'size':<30} {'variant':<13} {'seconds':>8} {'distance':>9} {'peak GiB':>9} "
              f"{'data GiB':>9}  metrics")
    print(header)
    rows = []
    for task in args.tasks.split(","):
        scale = QUICK_SCALE[task] if args.quick else 1
        results = {variant: measure(task, variant, scale) for variant in variants}
        for variant, res in results.items():
            if "error" in res:
                print(f"{task:<11} {'':<30} {variant:<13} failed: {res['error']}")
                continue
            size = ",".join(f"{v}" for v in res["size"].values())
            distance = "-" if res["distance_seconds"] is None else f"{res['distance_seconds']:.1f}"
            print(f"{task:<11} {size:<30} {variant:<13} {res['seconds']:>8.1f} {distance:>9} "
                  f"{res['peak_gib']:>9.2f} {res['data_gib']:>9.2f}  {res['metrics']}")
        if len(results) == 2 and all("error" not in r for r in results.values()):
            rows.append(ratio_line(task, results["ours"], results["full_argsort"]))
    print("\n".join(["", "ours vs full argsort:"] + rows) if rows else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
