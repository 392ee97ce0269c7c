"""GP-NAS predictors on the generated benchmark: 5-fold Kendall tau of baseline-fast, baseline-slow and ours (per
task and mean), then fit and predict time at 500 train x 99,500 test, and the vectorised slow mode against
PaddleSlim's own loops (measured on a slice of the test set in the same run, extrapolated linearly).

    python bench/gpnas.py            # full size, about 4 minutes on 2 cores
    python bench/gpnas.py --quick    # 10,000 test architectures, 3 folds
Exits 1 if ours does not beat the baseline's mean tau.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from allinone.utils.env import configure_threads

configure_threads()

import numpy as np  # noqa: E402

from oneforall.gpnas import (TASKS, PaddleSlimGPNAS, build_predictor, cross_validated_kendall_tau,  # noqa: E402
                             encode, read_ranking_json)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREDICTOR_NAMES = ("baseline-fast", "baseline-slow", "ours")
LOOP_SLICE = 500


def generate(out_dir, num_train, num_test, seed):
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_gpnas_benchmark.py"), "--out-dir", out_dir,
                    "--train", str(num_train), "--test", str(num_test), "--seed", str(seed)], check=True,
                   stdout=subprocess.DEVNULL)
    return (read_ranking_json(os.path.join(out_dir, "CCF_UFO_train.json")),
            read_ranking_json(os.path.join(out_dir, "CCF_UFO_test.json")))


def print_cv_table(train, folds):
    taus = {name: cross_validated_kendall_tau(train, name, folds=folds) for name in PREDICTOR_NAMES}
    print(f"\nKendall tau, {folds}-fold cv on {len(train)} architectures")
    print(f"{'task':<12}" + "".join(f"{name:>15}" for name in PREDICTOR_NAMES))
    for task in TASKS:
        print(f"{task:<12}" + "".join(f"{taus[name][task]:>15.4f}" for name in PREDICTOR_NAMES))
    means = {name: float(np.mean(list(taus[name].values()))) for name in PREDICTOR_NAMES}
    print(f"{'mean':<12}" + "".join(f"{means[name]:>15.4f}" for name in PREDICTOR_NAMES))
    return means


def print_timings(train, test):
    print(f"\nfit and predict, all {len(TASKS)} tasks, {len(train)} train x {len(test)} test (seconds)")
    for name in PREDICTOR_NAMES:
        fit_seconds = predict_seconds = 0.0
        for column in range(len(TASKS)):
            start = time.perf_counter()
            model = build_predictor(name).fit(train.codes, train.ranks[:, column])
            fit_seconds += time.perf_counter() - start
            start = time.perf_counter()
            model.predict(test.codes)
            predict_seconds += time.perf_counter() - start
        print(f"  {name:<14} fit {fit_seconds:7.2f}   predict {predict_seconds:7.2f}")


def print_slow_mode_speedup(train, test):
    """PaddleSlim's get_predict_jiont loops against our array version, one task, same data."""
    x_train, x_test = encode(train.codes, "convert_x"), encode(test.codes, "convert_x")
    y = train.ranks[:, 0].astype(float)
    loops = PaddleSlimGPNAS(mode="slow", backend="paddleslim").fit(x_train, y)
    vectorised = PaddleSlimGPNAS(mode="slow").fit(x_train, y)
    start = time.perf_counter()
    loop_prediction = loops.predict(x_test[:LOOP_SLICE])
    loop_seconds = (time.perf_counter() - start) * len(x_test) / LOOP_SLICE
    start = time.perf_counter()
    prediction = vectorised.predict(x_test)
    vectorised_seconds = time.perf_counter() - start
    gap = np.abs(prediction[:LOOP_SLICE] - loop_prediction).max()
    print(f"\nslow mode, one task, {len(train)} x {len(test)}: paddleslim loops {loop_seconds:.1f} s (extrapolated "
          f"from {LOOP_SLICE} rows), vectorised {vectorised_seconds:.2f} s, speed-up "
          f"{loop_seconds / vectorised_seconds:.0f}x, max |difference| {gap:.2e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 test architectures and 3 folds")
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed")
    args = parser.parse_args(argv)
    num_test, folds = (10000, 3) if args.quick else (99500, 5)
    with tempfile.TemporaryDirectory() as out_dir:
        train, test = generate(out_dir, 500, num_test, args.seed)
    means = print_cv_table(train, folds)
    print_timings(train, test)
    print_slow_mode_speedup(train, test)
    best_baseline = max(means["baseline-fast"], means["baseline-slow"])
    print(f"\nours - best baseline: {means['ours'] - best_baseline:+.4f} mean tau")
    return 0 if means["ours"] > best_baseline else 1


if __name__ == "__main__":
    sys.exit(main())
