"""Write a synthetic GP-NAS benchmark in the exact competition schema (the real files are not redistributable).

Writes OUT_DIR/CCF_UFO_train.json (ranks 0..N-1 per task), OUT_DIR/CCF_UFO_test.json (ranks 0, like the
competition's) and, with --truth, OUT_DIR/CCF_UFO_test_truth.json (the test ranks, to score a submission).

Architectures are drawn uniformly from the search space (depth, then heads and mlp ratio per layer). With
h_l, m_l in {-1, 0, 1} the centred heads and mlp ratio of layer l (0 for an absent layer) and D = depth - 11,
the score of task t is a known function plus noise that differs per task:

    s_t = a_t D + sum_l (b_tl h_l + c_tl m_l + e_tl h_l m_l) + sum_l f_tl m_l m_(l+1) - k_t (C / 12)^2 + noise_t
    C = sum_l (h_l + m_l) + 2 D          (capacity: a saturating, non-additive width/depth effect)

b, c (main effects) follow a layer profile shared by all tasks (early mlp and late heads matter more) plus task
perturbations; e, f (per-layer interactions) and k are drawn per task; noise_t is Gaussian with a task-specific
share of the signal's standard deviation (cplfw is the noisiest, as in the competition). Ranks order the scores.
"""
import argparse
import os
import sys

from allinone.utils.env import configure_threads

configure_threads()

import numpy as np  # noqa: E402

from oneforall.gpnas.arch import MAX_DEPTH  # noqa: E402
from oneforall.gpnas.data import TASKS, RankingSet, scores_to_ranks, write_ranking_json  # noqa: E402
from oneforall.gpnas.encodings import code_matrix, layer_values  # noqa: E402

# noise standard deviation as a fraction of each task's clean-score standard deviation
NOISE_SHARE = {"cplfw": 1.0, "market1501": 0.25, "dukemtmc": 0.2, "msmt17": 0.12, "veri": 0.2, "vehicleid": 0.45,
               "veriwild": 0.15, "sop": 0.3}


def sample_codes(count, rng, exclude=()):
    """`count` distinct architecture codes drawn uniformly (depth letter, then a heads and mlp digit per layer),
    none of them in `exclude`."""
    codes, seen = [], set(exclude)
    while len(codes) < count:
        depth = int(rng.integers(10, 13))
        digits = rng.integers(1, 4, size=(depth, 2))
        code = "jkl"[depth - 10] + "".join(f"{h}{m}1" for h, m in digits) + "000" * (MAX_DEPTH - depth)
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return np.array(codes)


def task_coefficients(rng):
    """Per-task coefficients of the score function (see the module docstring)."""
    layers = np.arange(MAX_DEPTH) / (MAX_DEPTH - 1)
    heads_profile, mlp_profile = 0.4 + 0.6 * layers, 1.0 - 0.6 * layers
    coefficients = {}
    for task in TASKS:
        coefficients[task] = {
            "depth": rng.uniform(0.5, 2.0),
            "heads": heads_profile * rng.uniform(0.5, 1.5, MAX_DEPTH),
            "mlp": mlp_profile * rng.uniform(0.5, 1.5, MAX_DEPTH),
            "heads_x_mlp": rng.normal(0, 0.25, MAX_DEPTH),
            "mlp_x_next_mlp": rng.normal(0, 0.25, MAX_DEPTH - 1),
            "saturation": rng.uniform(0.5, 2.0),
        }
    return coefficients


def clean_scores(codes, coefficients):
    """Noise-free score [N, T] of each architecture for each task."""
    depth, heads, mlp, active = layer_values(code_matrix(codes))
    h = np.where(active, heads - 11, 0.0)
    m = np.where(active, (mlp - 3.5) / 0.5, 0.0)
    d = depth - 11
    capacity = h.sum(1) + m.sum(1) + 2 * d
    columns = []
    for task in TASKS:
        c = coefficients[task]
        columns.append(c["depth"] * d + h @ c["heads"] + m @ c["mlp"] + (h * m) @ c["heads_x_mlp"]
                       + (m[:, :-1] * m[:, 1:]) @ c["mlp_x_next_mlp"] - c["saturation"] * (capacity / 12) ** 2)
    return np.stack(columns, axis=1)


def make_benchmark(out_dir, num_train=500, num_test=99500, seed=0, truth=False):
    """Write the benchmark files into `out_dir`; returns their paths (train, test[, truth]). Separate random
    streams, and a noise scale taken from the training scores, keep the training file the same whatever the
    test size."""
    coefficient_rng, train_rng, test_rng = (np.random.default_rng([seed, stream]) for stream in range(3))
    coefficients = task_coefficients(coefficient_rng)
    train_codes = sample_codes(num_train, train_rng)
    test_codes = sample_codes(num_test, test_rng, exclude=train_codes)
    train_clean, test_clean = clean_scores(train_codes, coefficients), clean_scores(test_codes, coefficients)
    noise_sd = train_clean.std(axis=0) * np.array([NOISE_SHARE[task] for task in TASKS])
    train_scores = train_clean + train_rng.normal(size=train_clean.shape) * noise_sd
    test_scores = test_clean + test_rng.normal(size=test_clean.shape) * noise_sd
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, "CCF_UFO_train.json"), os.path.join(out_dir, "CCF_UFO_test.json")]
    train_ids = [f"arch{i + 1}" for i in range(num_train)]
    test_ids = [f"arch{i + 1}" for i in range(num_test)]
    write_ranking_json(paths[0], RankingSet(train_ids, train_codes, scores_to_ranks(train_scores)))
    write_ranking_json(paths[1], RankingSet(test_ids, test_codes, np.zeros((num_test, len(TASKS)), np.int64)))
    if truth:
        paths.append(os.path.join(out_dir, "CCF_UFO_test_truth.json"))
        write_ranking_json(paths[2], RankingSet(test_ids, test_codes, scores_to_ranks(test_scores)))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", required=True, help="directory for CCF_UFO_train.json / CCF_UFO_test.json")
    parser.add_argument("--train", type=int, default=500, help="number of ranked training architectures")
    parser.add_argument("--test", type=int, default=99500, help="number of test architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", action="store_true", help="also write the test ranks (CCF_UFO_test_truth.json)")
    args = parser.parse_args(argv)
    for path in make_benchmark(args.out_dir, args.train, args.test, args.seed, args.truth):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
