"""`make nas-demo`: the whole NAS loop on the miniature data tree, from a supernet to a chosen architecture.

    python tools/nas_demo.py [--workdir demo_output/nas] [--max_iter 400] [--sample 120] [--budget-ms X]

1. writes the demo's miniature data tree (as `make demo`) to WORKDIR/datasets (kept if present);
2. trains configs/oneforall/tiny_chip_supernet.yaml (the competition's search space on a 48-wide ViT, the sandwich
   rule with in-place distillation) for a few CPU minutes with tools/train.py;
3. measures --sample step-seeded random sub-networks with `python -m oneforall.evaluate_subnets` (8 test sets,
   FLOPs, parameters, Paddle Inference latency);
4. fits the predictors (GP-NAS baseline and ours) on half of them and prints the Kendall tau on the other half,
   per task and for latency;
5. searches under a latency budget (default: the median measured latency) with `python -m oneforall.gpnas search`
   and writes the Pareto-front plot WORKDIR/pareto.png.
Every step keeps its output in WORKDIR; a rerun reuses the trained supernet and the finished measurements.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]

CONFIG = os.path.join(ROOT, "configs", "oneforall", "tiny_chip_supernet.yaml")
DEMO_TREE = {"scale": 6, "hard": True}
PREDICTORS = ("baseline-fast", "ours")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="demo_output/nas")
    parser.add_argument("--max_iter", type=int, default=400, help="supernet training iterations")
    parser.add_argument("--sample", type=int, default=120, help="sub-networks to measure (half fit, half test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-ms", dest="budget_ms", type=float, default=None,
                        help="latency budget of the search (default: the median measured latency)")
    parser.add_argument("--latency_batch", type=int, default=32,
                        help="images per timed run (enough for compute, not per-op overhead, to dominate)")
    parser.add_argument("--latency_runs", type=int, default=20)
    return parser.parse_args(argv)


def run(cmd, env, log_path=None):
    """Run a tool of the project; its output goes to `log_path` (or the console)."""
    if log_path is None:
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        return
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode:
        with open(log_path, encoding="utf-8") as log:
            tail = "".join(log.readlines()[-20:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {result.returncode}); end of {log_path}:\n{tail}")


def main(argv=None):
    args = parse_args(argv)
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    data_root = os.path.join(workdir, "datasets")
    env = dict(os.environ, FASTREID_DATASETS=data_root, PYTHONPATH=ROOT)
    env.setdefault("OMP_NUM_THREADS", "2")
    python = sys.executable
    started = time.time()

    if not os.path.isdir(data_root):
        print(f"1. miniature data tree -> {data_root}", flush=True)
        from mini_datasets import make_mini_datasets
        make_mini_datasets(data_root, **DEMO_TREE)
    else:
        print(f"1. miniature data tree: {data_root} (kept)", flush=True)

    train_dir = os.path.join(workdir, "supernet")
    weights = os.path.join(train_dir, "model_final.pdparams")
    if not os.path.isfile(weights):
        print(f"2. training the tiny chip supernet ({args.max_iter} iterations, sandwich rule) -> {train_dir}",
              flush=True)
        run([python, "tools/train.py", "-c", CONFIG, "-o", f"Global.output_dir={train_dir}",
             "-o", f"Train.max_iter={args.max_iter}", "-o", "Train.checkpoint_period=0"], env,
            os.path.join(workdir, "train.log"))
    else:
        print(f"2. supernet: {weights} (kept)", flush=True)
    print(f"   {time.time() - started:.0f} s", flush=True)

    measured = os.path.join(workdir, "measured")
    print(f"3. measuring {args.sample} sub-networks (8 test sets, FLOPs, Paddle Inference latency) -> {measured}",
          flush=True)
    run([python, "-m", "oneforall.evaluate_subnets", "--config", CONFIG, "--model_path", weights,
         "--sample", str(args.sample), "--seed", str(args.seed), "--output", measured,
         "--latency_batch", str(args.latency_batch), "--latency_runs", str(args.latency_runs)], env)
    print(f"   {time.time() - started:.0f} s", flush=True)

    import numpy as np
    from scipy.stats import kendalltau

    from oneforall.gpnas.data import TASKS
    from oneforall.gpnas.search import held_out_taus, read_measurements

    measurements = read_measurements(os.path.join(measured, "measurements.json"))
    print(f"4. Kendall tau on the held-out half ({len(measurements) - len(measurements) // 2} codes; fitted on the "
          f"other {len(measurements) // 2})", flush=True)
    taus = {name: held_out_taus(measurements, name, seed=args.seed) for name in PREDICTORS}
    columns = list(TASKS) + ["latency"]
    print(f"   {'':<14}" + "".join(f"{column:>11}" for column in columns) + f"{'mean acc':>11}")
    for name in PREDICTORS:
        accuracy_mean = np.mean([taus[name][task] for task in TASKS])
        print(f"   {name:<14}" + "".join(f"{taus[name][column]:>11.3f}" for column in columns)
              + f"{accuracy_mean:>11.3f}")
    flops_tau = kendalltau(measurements.flops, measurements.latency_ms).statistic
    print(f"   (analytic FLOPs against measured latency, all codes: tau {flops_tau:.3f})")

    budget = args.budget_ms if args.budget_ms is not None else float(np.median(measurements.latency_ms))
    plot, answer = os.path.join(workdir, "pareto.png"), os.path.join(workdir, "search.json")
    print(f"5. search under {budget:.3f} ms (predictor ours) -> {plot}", flush=True)
    run([python, "-m", "oneforall.gpnas", "search", "--measurements", os.path.join(measured, "measurements.json"),
         "--budget-ms", f"{budget:.4f}", "--plot", plot, "--out", answer, "--seed", str(args.seed)], env)
    with open(os.path.join(workdir, "taus.json"), "w", encoding="utf-8") as f:
        json.dump({"taus": taus, "flops_latency_tau": flops_tau, "budget_ms": budget,
                   "codes": len(measurements)}, f, indent=1)
    print(f"done in {time.time() - started:.0f} s; outputs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
