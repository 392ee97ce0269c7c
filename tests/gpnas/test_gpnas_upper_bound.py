"""bench/gpnas_upper_bound.py keeps each task's best single models by test tau and finds averages that beat them."""
import importlib.util
import os
import sys

import numpy as np

from oneforall.gpnas import TASKS, RankingSet

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench")


def load_upper_bound():
    sys.path.insert(0, BENCH)  # the script imports its sibling bench/gpnas.py
    try:
        spec = importlib.util.spec_from_file_location("gpnas_upper_bound", os.path.join(BENCH, "gpnas_upper_bound.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(BENCH)
    return module


def test_keeps_the_best_candidates_per_task_and_an_average_of_two_noisy_halves_beats_both():
    bound = load_upper_bound()
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(400, len(TASKS)))
    truth = RankingSet([f"a{i}" for i in range(400)], np.array(["x"] * 400),
                       np.argsort(np.argsort(signal, axis=0), axis=0))
    # two good candidates with independent errors, then many worse ones offered later in small batches
    good = np.stack([signal + rng.normal(size=signal.shape) for _ in range(2)])
    worse = np.stack([signal + 3 * rng.normal(size=signal.shape) for _ in range(10)])
    top = bound.TopPredictions()
    for batch in (good, worse[:5], worse[5:]):
        top.offer(np.array([bound.task_taus(truth, p) for p in batch]), batch)
    good_taus = np.array([bound.task_taus(truth, p) for p in good])
    for task, kept in enumerate(top.kept):
        assert len(kept) == bound.TOP_FOR_AVERAGES
        assert {round(tau, 12) for tau in good_taus[:, task]} <= {round(tau, 12) for tau, _ in kept}
        assert [tau for tau, _ in kept] == sorted((tau for tau, _ in kept), reverse=True)
    assert (top.best_averages(truth) > good_taus.max(0) + 0.02).all()
