"""GP-NAS predictors on every benchmark family: test Kendall tau of every predictor (fitted on 500 ranked
architectures, scored on 3,000 unseen ones, the shape of the unseen-benchmark check), the oracle (the noise-free
score: the best tau any predictor can reach) and the headroom it leaves above the baseline, then fit + predict
time of all 8 tasks at 500 x 99,500 and the vectorised slow mode against PaddleSlim's own loops (measured on a
slice in the same run, extrapolated linearly).

    python bench/gpnas.py                  # every family, seeds 0 and 1, timing at 99,500: ~10 min on 2 cores
    python bench/gpnas.py --quick          # every family, seed 0, 1,000 test archs, timing at 20,000
    python bench/gpnas.py --families mixed,depth --seeds 0,1,2
    python bench/gpnas.py --ceiling-gain 0.06 --no-timing   # sensitivity: less noise than the families' own
Exits 1 if ours falls below baseline-fast's mean tau on any family.
"""
import argparse
import importlib.util
import os
import sys
import tempfile
import time

from allinone.utils.env import configure_threads

configure_threads()

import numpy as np  # noqa: E402

from oneforall.gpnas import (TASKS, PREDICTORS, PaddleSlimGPNAS, build_predictor, encode, kendall_tau,  # noqa: E402
                             paddleslim_gpnas_class, read_ranking_json)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREDICTOR_NAMES = ("baseline-fast", "baseline-slow", "ridge", "ours")
# families looked at while designing 'ours'; the others were held out and run once the defaults were fixed
DESIGN_FAMILIES = ("mixed", "additive", "saturating", "interactions")
REQUIRED_GAIN = 0.03
LOOP_SLICE = 500


def load_tool():
    spec = importlib.util.spec_from_file_location("make_gpnas_benchmark",
                                                  os.path.join(REPO, "tools", "make_gpnas_benchmark.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def generate(out_dir, family, num_train, num_test, seed, ceiling_gain=TOOL.BEST_PUBLIC_GAIN):
    ceiling = {task: tau + ceiling_gain for task, tau in TOOL.LEADERBOARD_BASELINE_TAU.items()}
    TOOL.make_benchmark(out_dir, num_train, num_test, seed, truth=True, family=family, ceiling=ceiling)
    train = read_ranking_json(os.path.join(out_dir, "CCF_UFO_train.json"), ranked=True)
    truth = read_ranking_json(os.path.join(out_dir, "CCF_UFO_test_truth.json"), ranked=True)
    return train, truth


def task_taus(truth, scores):
    """Test tau per task [T] of scores [M, T]."""
    return np.array([kendall_tau(truth.ranks[:, t], scores[:, t]) for t in range(len(TASKS))])


def mean_tau(truth, scores):
    return float(np.mean(task_taus(truth, scores)))


def family_row(family, seed, num_test, ceiling_gain):
    """Mean test tau of each predictor and of the noise-free score on one generated benchmark."""
    with tempfile.TemporaryDirectory() as out_dir:
        train, truth = generate(out_dir, family, 500, num_test, seed, ceiling_gain)
    row = {"oracle": mean_tau(truth, TOOL.noise_free_scores(truth.codes, family, seed))}
    for name in PREDICTOR_NAMES:
        model = build_predictor(name).fit(train.codes, train.ranks)
        row[name] = mean_tau(truth, model.predict(truth.codes))
    return row


def print_family_table(families, seeds, num_test, ceiling_gain):
    """One row per family: mean over seeds of each predictor's tau and of the oracle's (the noise-free score: the
    best any predictor can reach); the headroom the oracle leaves above baseline-fast; ours' gain over it (mean
    and worst seed); the share of the headroom ours closes and the share +0.03 would need (over 100%: no room).
    Returns the families where ours is below the baseline and those where the +0.03 target fails although the
    headroom allows it."""
    columns = ("oracle",) + PREDICTOR_NAMES
    print(f"\nmean Kendall tau over the 8 tasks: fit on 500, scored on {num_test} unseen architectures, "
          f"mean over seeds {','.join(map(str, seeds))}; oracle = the noise-free score (the ceiling), noise "
          f"calibrated to the leaderboard baseline's tau per task + {ceiling_gain:.4f}")
    print(f"{'family':<14}{'held out':>9}" + "".join(f"{name:>14}" for name in columns)
          + f"{'headroom':>10}{'ours - fast':>13}{'worst seed':>12}{'closed':>8}{'+0.03 needs':>12}{'+0.03':>9}")
    below, missed = [], []
    for family in families:
        rows = [family_row(family, seed, num_test, ceiling_gain) for seed in seeds]
        mean = {name: np.mean([row[name] for row in rows]) for name in columns}
        gains = [row["ours"] - row["baseline-fast"] for row in rows]
        headroom = mean["oracle"] - mean["baseline-fast"]
        if np.mean(gains) >= REQUIRED_GAIN:
            verdict = "met"
        elif headroom < REQUIRED_GAIN:
            verdict = "no room"
        else:
            verdict = "missed"
            missed.append(family)
        held_out = "no" if family in DESIGN_FAMILIES else "yes"
        print(f"{family:<14}{held_out:>9}" + "".join(f"{mean[name]:>14.4f}" for name in columns)
              + f"{headroom:>10.4f}{np.mean(gains):>+13.4f}{min(gains):>+12.4f}{np.mean(gains) / headroom:>8.0%}"
              + f"{REQUIRED_GAIN / headroom:>12.0%}{verdict:>9}", flush=True)
        if mean["ours"] < mean["baseline-fast"]:
            below.append(family)
    return below, missed


def time_fit_predict(train, test, name):
    start = time.perf_counter()
    model = build_predictor(name).fit(train.codes, train.ranks)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.predict(test.codes)
    return fit_seconds, time.perf_counter() - start


def print_timings(num_test):
    with tempfile.TemporaryDirectory() as out_dir:
        train, test = generate(out_dir, "mixed", 500, num_test, 0)
    print(f"\nfit and predict, all {len(TASKS)} tasks, {len(train)} train x {len(test)} test (seconds, family mixed)")
    paddleslim_gpnas_class()  # import paddle and paddleslim before the clock starts
    seconds = {}
    for name in PREDICTOR_NAMES:
        fit_seconds, predict_seconds = time_fit_predict(train, test, name)
        seconds[name] = fit_seconds + predict_seconds
        print(f"  {name:<14} fit {fit_seconds:7.2f}   predict {predict_seconds:7.2f}   "
              f"x{seconds[name] / seconds['baseline-fast']:.1f} baseline-fast", flush=True)
    return train, test


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
    parser.add_argument("--quick", action="store_true", help="seed 0, 1,000 test architectures, timing at 20,000")
    parser.add_argument("--families", default=",".join(TOOL.FAMILIES), help="comma-separated family names")
    parser.add_argument("--seeds", default=None, help="comma-separated benchmark seeds (default 0,1; quick: 0)")
    parser.add_argument("--no-timing", action="store_true", help="skip the 99,500-architecture timing")
    parser.add_argument("--ceiling-gain", type=float, default=TOOL.BEST_PUBLIC_GAIN,
                        help="a sensitivity check: ceilings = the leaderboard baseline's tau per task + this "
                             "(default: the best public gain, 0.0234; the families' own noise)")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    unknown = [family for family in families if family not in TOOL.FAMILIES]
    if unknown:
        parser.error(f"unknown family {unknown[0]!r}; expected names from {sorted(TOOL.FAMILIES)}")
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    assert set(PREDICTOR_NAMES) == set(PREDICTORS)
    failures, missed = print_family_table(families, seeds, 1000 if args.quick else 3000, args.ceiling_gain)
    if not args.no_timing:
        train, test = print_timings(20000 if args.quick else 99500)
        print_slow_mode_speedup(train, test)
    if failures:
        print(f"\nours is below baseline-fast on {', '.join(failures)}")
        return 1
    print(f"\nours >= baseline-fast on every family; +{REQUIRED_GAIN} target missed where the headroom allowed it: "
          f"{', '.join(missed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
