"""Write a synthetic GP-NAS benchmark in the exact competition schema (the real files are not redistributable).

    python tools/make_gpnas_benchmark.py OUT_DIR [--family NAME] [--train 500] [--test 99500] [--seed 0] [--truth]

Writes OUT_DIR/CCF_UFO_train.json (ranks 0..N-1 per task), OUT_DIR/CCF_UFO_test.json (ranks 0, like the
competition's) and, with --truth, OUT_DIR/CCF_UFO_test_truth.json (the test ranks, to score a submission).

Architectures are drawn uniformly from the search space (depth, then heads and mlp ratio per layer). A *family*
is a structurally different score function of the architecture (`--family`, see FAMILIES and docs/gpnas.md);
within a family every task shares part of its parameters with the others (the tasks' ranks are correlated, as in
the competition) and has its own part. Each task then gets noise, calibrated on the family's own generator so that
the noise-free score ranks the noisy one with the competition's per-task level of Kendall tau (CEILING_TAU; cplfw
the noisiest); ranks order the noisy scores. In the formulas h_l, m_l in {-1, 0, 1} are the centred heads
and mlp ratio of layer l (0 for an absent layer) and D = depth - 11.
"""
import argparse
import os
import sys

from allinone.utils.cli import positive_int
from allinone.utils.env import configure_threads

configure_threads()

import numpy as np  # noqa: E402

from oneforall.gpnas.arch import MAX_DEPTH  # noqa: E402
from oneforall.gpnas.data import TASKS, RankingSet, scores_to_ranks, write_ranking_json  # noqa: E402
from oneforall.gpnas.encodings import code_matrix, layer_values  # noqa: E402
from oneforall.gpnas.evaluation import kendall_tau  # noqa: E402

NUM_TASKS = len(TASKS)
LAYER_POSITION = np.arange(MAX_DEPTH) / (MAX_DEPTH - 1)  # 0 for the first layer, 1 for the last
# Noise: set from the published competition scores alone, never from a predictor's score on these families. The
# baseline's leaderboard tau per task (the only per-task scores published) plus the gain of the best public
# solution over the baseline on the mean (0.7991 - 0.7757) gives the lowest per-task ceilings consistent with what
# was reached on the real data; each task's noise is calibrated so that its best possible tau (noise-free score
# against noisy rank) equals that ceiling, on a large sample of the family's own generator (see docs/gpnas.md).
LEADERBOARD_BASELINE_TAU = {"cplfw": 0.2883, "market1501": 0.8590, "dukemtmc": 0.8847, "msmt17": 0.9385,
                            "veri": 0.8901, "vehicleid": 0.6494, "veriwild": 0.9009, "sop": 0.7948}
BEST_PUBLIC_GAIN = 0.7991 - 0.7757
CEILING_TAU = {task: tau + BEST_PUBLIC_GAIN for task, tau in LEADERBOARD_BASELINE_TAU.items()}
CALIBRATION_SIZE = 20000
# 'noisy': every task's calibrated noise doubled, a harder benchmark where choosing from the training set is riskier
NOISE_MULTIPLIER = {"calibrated": 1.0, "doubled": 2.0}


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


class Features:
    """What the score functions read from the codes: D [N], h and m [N, 12] (0 where absent), active [N, 12],
    and the digit index 0/1/2 of each layer's heads and mlp choice (-1 where absent)."""

    def __init__(self, codes):
        depth, heads, mlp, self.active = layer_values(code_matrix(codes))
        self.depth = depth - 11
        self.h = np.where(self.active, heads - 11, 0.0)
        self.m = np.where(self.active, (mlp - 3.5) / 0.5, 0.0)
        self.heads_choice = np.where(self.active, self.h + 1, -1).astype(int)
        self.mlp_choice = np.where(self.active, self.m + 1, -1).astype(int)
        self.num = len(codes)


def shared_plus_own(rng, shape, own_share=0.5):
    """Per-task parameters [T, *shape]: a part shared by all tasks plus a task's own part."""
    shared = rng.normal(size=shape)
    return (1 - own_share) * shared + own_share * rng.normal(size=(NUM_TASKS,) + tuple(shape))


def choice_effects(f, heads_table, mlp_table):
    """Sum over present layers of a per-layer effect of each choice: tables [T, 12, 3] -> scores [N, T]."""
    scores = np.zeros((f.num, NUM_TASKS))
    for layer in range(MAX_DEPTH):
        present = f.active[:, layer]
        scores[present] += heads_table[:, layer, f.heads_choice[present, layer]].T
        scores[present] += mlp_table[:, layer, f.mlp_choice[present, layer]].T
    return scores


def linear_effects(f, heads_weights, mlp_weights, depth_weight):
    """D a_t + sum_l (b_tl h_l + c_tl m_l): weights [T, 12], [T, 12], [T] -> [N, T]."""
    return f.depth[:, None] * depth_weight + f.h @ heads_weights.T + f.m @ mlp_weights.T


def mixed(rng):
    """Linear main effects with a layer profile (early mlp and late heads matter more), per-layer heads x mlp and
    adjacent mlp x mlp interactions, and a saturating capacity term -k_t (C/12)^2, C = sum_l (h_l + m_l) + 2D."""
    depth_weight = rng.uniform(0.5, 2.0, NUM_TASKS)
    heads_weights = (0.4 + 0.6 * LAYER_POSITION) * rng.uniform(0.5, 1.5, (NUM_TASKS, MAX_DEPTH))
    mlp_weights = (1.0 - 0.6 * LAYER_POSITION) * rng.uniform(0.5, 1.5, (NUM_TASKS, MAX_DEPTH))
    heads_x_mlp = rng.normal(0, 0.25, (NUM_TASKS, MAX_DEPTH))
    mlp_x_next = rng.normal(0, 0.25, (NUM_TASKS, MAX_DEPTH - 1))
    saturation = rng.uniform(0.5, 2.0, NUM_TASKS)

    def score(f):
        capacity = f.h.sum(1) + f.m.sum(1) + 2 * f.depth
        return (linear_effects(f, heads_weights, mlp_weights, depth_weight) + (f.h * f.m) @ heads_x_mlp.T
                + (f.m[:, :-1] * f.m[:, 1:]) @ mlp_x_next.T - saturation * (capacity[:, None] / 12) ** 2)
    return score


def additive(rng):
    """Each layer's heads and mlp choice has its own effect, not monotone in the value (e.g. mlp 3.5 best in some
    layers), plus a depth effect per depth value."""
    heads_table = shared_plus_own(rng, (MAX_DEPTH, 3))
    mlp_table = shared_plus_own(rng, (MAX_DEPTH, 3))
    depth_table = 2 * shared_plus_own(rng, (3,))

    def score(f):
        return choice_effects(f, heads_table, mlp_table) + depth_table[:, f.depth.astype(int) + 1].T
    return score


def saturating(rng):
    """Accuracy saturates with the parameter count: s_t = tanh((P - P_mid) / width_t) with P the parameters of
    the present layers (attention ~ heads, mlp ~ mlp ratio) weighted by a per-task layer importance."""
    importance = np.exp(0.5 * shared_plus_own(rng, (MAX_DEPTH,)))
    width = rng.uniform(0.3, 1.0, NUM_TASKS)
    attention_share = rng.uniform(0.3, 0.7, NUM_TASKS)

    def score(f):
        heads, mlp = np.where(f.active, f.h + 11, 0.0), np.where(f.active, f.m * 0.5 + 3.5, 0.0)
        per_layer = (attention_share[:, None, None] * (heads / 11)[None]
                     + (1 - attention_share)[:, None, None] * (mlp / 3.5)[None])  # [T, N, 12]
        params = (per_layer * importance[:, None, :]).sum(-1) / importance.sum(-1, keepdims=True)  # [T, N]
        params = (params - params.mean(1, keepdims=True)) / params.std(1, keepdims=True)
        return np.tanh(params / width[:, None] + 1.0).T
    return score


def interactions(rng):
    """Weak main effects; strong interactions between the choices of adjacent layers and of random layer pairs
    (a layer's width only helps when a neighbour is wide too)."""
    heads_weights, mlp_weights = 0.3 * shared_plus_own(rng, (MAX_DEPTH,)), 0.3 * shared_plus_own(rng, (MAX_DEPTH,))
    depth_weight = 0.5 * shared_plus_own(rng, ())
    adjacent = shared_plus_own(rng, (2, 2, MAX_DEPTH - 1))  # [T, field a, field b, layer]
    pairs = rng.choice(MAX_DEPTH, size=(6, 2))
    pair_weights = shared_plus_own(rng, (6,))

    def score(f):
        fields = np.stack([f.h, f.m])  # [2, N, 12]
        s = linear_effects(f, heads_weights, mlp_weights, depth_weight)
        for a in range(2):
            for b in range(2):
                s += (fields[a][:, :-1] * fields[b][:, 1:]) @ adjacent[:, a, b].T
        for k, (i, j) in enumerate(pairs):
            s += np.outer(f.h[:, i] * f.m[:, j] + f.m[:, i] * f.h[:, j], pair_weights[:, k])
        return s
    return score


def position_profile(profile):
    """Main effects whose size follows a position profile over the layers (plus small interactions)."""
    def family(rng):
        heads_weights = profile * np.abs(shared_plus_own(rng, (MAX_DEPTH,), 0.3))
        mlp_weights = profile * np.abs(shared_plus_own(rng, (MAX_DEPTH,), 0.3))
        depth_weight = profile[-2:].sum() * np.abs(shared_plus_own(rng, ()))
        heads_x_mlp = 0.2 * profile * shared_plus_own(rng, (MAX_DEPTH,))

        def score(f):
            return linear_effects(f, heads_weights, mlp_weights, depth_weight) + (f.h * f.m) @ heads_x_mlp.T
        return score
    return family


def depth_returns(rng):
    """Depth with diminishing returns: every present layer adds its width's worth, with a weight that decays with
    the layer's position (the 11th and 12th layers add little), and the depth itself adds a concave gain."""
    decay = rng.uniform(0.1, 0.3, NUM_TASKS)
    gain = (1 + 0.5 * np.abs(shared_plus_own(rng, (), 0.3)))[:, None] * np.array([0.0, 1.0, 1.5])  # [T, 3]
    heads_weights, mlp_weights = np.abs(shared_plus_own(rng, (MAX_DEPTH,))), np.abs(shared_plus_own(rng, (MAX_DEPTH,)))

    def score(f):
        weight = np.exp(-decay[:, None] * np.arange(MAX_DEPTH)[None])  # [T, 12]
        contribution = (f.h + 1.5)[:, None, :] * heads_weights[None] + (f.m + 1.5)[:, None, :] * mlp_weights[None]
        present = (contribution * weight[None] * f.active[:, None, :]).sum(-1)  # [N, T]
        return 0.1 * present + gain[:, f.depth.astype(int) + 1].T
    return score


def choice_onehot(f):
    """One-hot depth and per-layer heads and mlp choices (zeros for an absent layer): [N, 3 + 12 * 6]."""
    columns = [f.depth[:, None] == np.array([-1, 0, 1])]
    for layer in range(MAX_DEPTH):
        columns.append(f.heads_choice[:, layer, None] == np.arange(3))
        columns.append(f.mlp_choice[:, layer, None] == np.arange(3))
    return np.hstack(columns).astype(np.float64)


def network(rng):
    """A random tanh network on the per-layer one-hot choices: 16 hidden units shared by every task (each task
    reads them with shared-plus-own weights) and 4 hidden units of each task's own, at half the weight."""
    inputs = 3 + 6 * MAX_DEPTH
    shared_in, shared_bias = rng.normal(size=(inputs, 16)) / np.sqrt(MAX_DEPTH), rng.normal(0, 0.5, 16)
    readout = shared_plus_own(rng, (16,))  # [T, 16]
    own_in, own_out = rng.normal(size=(NUM_TASKS, inputs, 4)) / np.sqrt(MAX_DEPTH), rng.normal(size=(NUM_TASKS, 4))

    def score(f):
        x = choice_onehot(f)
        shared = np.tanh(x @ shared_in + shared_bias) @ readout.T  # [N, T]
        own = np.einsum("tnk,tk->nt", np.tanh(np.einsum("nd,tdk->tnk", x, own_in)), own_out)
        return shared + 0.5 * own
    return score


def draw_rules(rng, count):
    """`count` random threshold rules as rows (kind, a, b, c): kind 0 'layer a is present with heads choice >= b
    and mlp choice >= c' (choices 0/1/2 from small to large), kind 1 'at least c layers use heads choice b',
    kind 2 the same for the mlp choice, kind 3 'depth >= 10 + b'."""
    kinds = rng.choice(4, size=count, p=[0.55, 0.2, 0.2, 0.05])
    return np.stack([kinds, rng.integers(0, MAX_DEPTH, count), rng.integers(0, 3, count),
                     rng.integers(2, 8, count)], axis=1)


def fire_rules(f, rules):
    """Which rules hold for each architecture: [N, R] of 0/1."""
    fired = np.zeros((f.num, len(rules)))
    for index, (kind, a, b, c) in enumerate(rules):
        if kind == 0:
            fired[:, index] = f.active[:, a] & (f.heads_choice[:, a] >= b) & (f.mlp_choice[:, a] >= min(c, 2))
        elif kind in (1, 2):
            choice = f.heads_choice if kind == 1 else f.mlp_choice
            fired[:, index] = (choice == b).sum(1) >= c
        else:
            fired[:, index] = f.depth + 11 >= 10 + b
    return fired


def rules(rng):
    """Sums of random threshold rules on layer positions and choice counts (see `draw_rules`): 20 rules shared by
    every task (with shared-plus-own weights) and 10 rules of each task's own; step functions that no smooth or
    per-layer additive model represents exactly."""
    shared_rules, shared_weights = draw_rules(rng, 20), shared_plus_own(rng, (20,))  # [R, 4], [T, 20]
    own_rules = [draw_rules(rng, 10) for _ in range(NUM_TASKS)]
    own_weights = rng.normal(size=(NUM_TASKS, 10))

    def score(f):
        s = fire_rules(f, shared_rules) @ shared_weights.T
        for task in range(NUM_TASKS):
            s[:, task] += fire_rules(f, own_rules[task]) @ own_weights[task]
        return s
    return score


def budget(rng):
    """A score from the architecture's size, not its layout: parameter- and FLOP-like totals of the present layers
    (attention ~ heads, mlp ~ ratio; FLOPs weight the layers by a per-task linear profile), mixed per task into one
    cost in about [0.65, 1]; each task has its own optimal cost (too large is worse: non-monotone), a linear
    reward for size and a small periodic bump: -((cost - optimum) / width)^2 + a cost + 0.15 sin(7 cost + phase)."""
    attention_share = rng.uniform(0.25, 0.45, NUM_TASKS)
    profile = np.linspace(rng.uniform(0.5, 1.5, NUM_TASKS), rng.uniform(0.5, 1.5, NUM_TASKS), MAX_DEPTH).T  # [T, 12]
    flops_share = rng.uniform(0.2, 0.8, NUM_TASKS)
    optimum = 0.85 + 0.05 * shared_plus_own(rng, ())
    width = rng.uniform(0.08, 0.2, NUM_TASKS)
    reward, phase = rng.uniform(0.5, 1.5, NUM_TASKS), rng.uniform(0, 2 * np.pi, NUM_TASKS)

    def score(f):
        heads = np.where(f.active, f.h + 11, 0.0) / 12
        mlp = np.where(f.active, f.m * 0.5 + 3.5, 0.0) / 4
        per_layer = attention_share[:, None, None] * heads[None] + (1 - attention_share)[:, None, None] * mlp[None]
        params = per_layer.sum(-1) / MAX_DEPTH  # [T, N]
        flops = (per_layer * profile[:, None, :]).sum(-1) / profile.sum(-1, keepdims=True)
        cost = ((1 - flops_share)[:, None] * params + flops_share[:, None] * flops).T  # [N, T]
        return -((cost - optimum) / width) ** 2 + reward * cost + 0.15 * np.sin(7 * cost + phase)
    return score


TASK_SPECIFIC_STRUCTURES = ("network", "rules", "budget", "interactions", "additive", "saturating", "depth", "mixed")


def task_specific(rng):
    """Tasks that correlate weakly, each with its own structure: task t takes its score from a different family
    (a random assignment of `TASK_SPECIFIC_STRUCTURES`), standardised on a reference sample of the generator,
    plus 0.6 times one common per-layer additive score (the weak shared part)."""
    assignment = rng.permutation(len(TASK_SPECIFIC_STRUCTURES))
    own = [FAMILIES[TASK_SPECIFIC_STRUCTURES[index]][0](np.random.default_rng([int(rng.integers(2 ** 31)), task]))
           for task, index in enumerate(assignment)]
    common = additive(rng)
    reference = Features(sample_codes(2000, rng))
    columns = [lambda f, task=task: own[task](f)[:, task] for task in range(NUM_TASKS)]
    columns.append(lambda f: common(f)[:, 0])
    reference_scores = [column(reference) for column in columns]  # each column's generator run once
    location = np.array([values.mean() for values in reference_scores])
    spread = np.array([values.std() for values in reference_scores])

    def score(f):
        standard = np.stack([column(f) for column in columns], axis=1)
        standard = (standard - location) / spread  # [N, T + 1]
        return standard[:, :NUM_TASKS] + 0.6 * standard[:, NUM_TASKS:]
    return score


# name -> (score family, noise level, noise distribution)
FAMILIES = {
    "mixed": (mixed, "calibrated", "gaussian"),
    "additive": (additive, "calibrated", "gaussian"),
    "saturating": (saturating, "calibrated", "gaussian"),
    "interactions": (interactions, "calibrated", "gaussian"),
    "early-layers": (position_profile(np.exp(-LAYER_POSITION * 3)), "calibrated", "gaussian"),
    "late-layers": (position_profile(np.exp((LAYER_POSITION - 1) * 3)), "calibrated", "gaussian"),
    "depth": (depth_returns, "calibrated", "gaussian"),
    "heavy-tailed": (additive, "calibrated", "student-t"),
    "noisy": (mixed, "doubled", "gaussian"),
    "network": (network, "calibrated", "gaussian"),
    "rules": (rules, "calibrated", "gaussian"),
    "budget": (budget, "calibrated", "gaussian"),
    "task-specific": (task_specific, "calibrated", "gaussian"),
}


def draw_noise(rng, shape, distribution):
    """Unit-scale noise: Gaussian, or Student t with 2 degrees of freedom (rare large errors) scaled to the same
    interquartile range."""
    if distribution == "gaussian":
        return rng.normal(size=shape)
    return rng.standard_t(2, size=shape) * (1.349 / 1.633)


def family_score(family, seed):
    """The score function of `family` for benchmark `seed` (codes' Features -> clean scores [N, T])."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[family][0](np.random.default_rng([seed, 0]))


def noise_free_scores(codes, family="mixed", seed=0):
    """The clean scores [N, T] behind a benchmark's ranks: ranking by them gives the best tau any predictor can
    reach on that benchmark."""
    return family_score(family, seed)(Features(codes))


def calibrate_noise(score, distribution, seed, ceiling=CEILING_TAU, size=CALIBRATION_SIZE, steps=20):
    """Noise sd per task [T] such that ranking `size` architectures drawn from the generator by their noisy score
    gives the noise-free score a Kendall tau of `ceiling[task]`. Bisection on the noise sd with the same noise
    draws at every step (the tau then falls monotonically with the sd); uses its own random streams, so the
    benchmark's architectures and noise are untouched. Needs the generator only, no predictor."""
    codes = sample_codes(size, np.random.default_rng([seed, 3]))
    clean = score(Features(codes))
    unit = draw_noise(np.random.default_rng([seed, 4]), clean.shape, distribution)
    sds = np.empty(NUM_TASKS)
    for column, task in enumerate(TASKS):
        spread = clean[:, column].std()
        low, high = 0.0, 50.0  # in units of the clean score's sd
        for _ in range(steps):
            middle = 0.5 * (low + high)
            if kendall_tau(clean[:, column], clean[:, column] + middle * spread * unit[:, column]) > ceiling[task]:
                low = middle
            else:
                high = middle
        sds[column] = 0.5 * (low + high) * spread
    return sds


def noise_sd(family, seed, ceiling=CEILING_TAU):
    """The noise sd per task [T] of benchmark (`family`, `seed`): calibrated to the ceilings, times the family's
    multiplier."""
    _, level, distribution = FAMILIES[family]
    return NOISE_MULTIPLIER[level] * calibrate_noise(family_score(family, seed), distribution, seed, ceiling)


def make_benchmark(out_dir, num_train=500, num_test=99500, seed=0, truth=False, family="mixed", ceiling=CEILING_TAU):
    """Write the benchmark files into `out_dir`; returns their paths (train, test[, truth]). Separate random
    streams, and a noise scale calibrated on its own sample, keep the training file the same whatever the test
    size. `ceiling`: the best possible tau per task (default: the competition's level, CEILING_TAU)."""
    score = family_score(family, seed)
    noise = FAMILIES[family][2]
    sd = noise_sd(family, seed, ceiling)
    train_rng, test_rng = (np.random.default_rng([seed, stream]) for stream in (1, 2))
    train_codes = sample_codes(num_train, train_rng)
    test_codes = sample_codes(num_test, test_rng, exclude=train_codes)
    train_clean, test_clean = score(Features(train_codes)), score(Features(test_codes))
    train_scores = train_clean + draw_noise(train_rng, train_clean.shape, noise) * sd
    test_scores = test_clean + draw_noise(test_rng, test_clean.shape, noise) * sd
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
    parser.add_argument("out_dir", nargs="?", help="directory for CCF_UFO_train.json / CCF_UFO_test.json")
    parser.add_argument("--out-dir", dest="out_dir_option", help="the same as the positional OUT_DIR")
    parser.add_argument("--family", default="mixed", choices=sorted(FAMILIES), help="score function (default: mixed)")
    parser.add_argument("--train", type=positive_int, default=500, help="number of ranked training architectures")
    parser.add_argument("--test", type=positive_int, default=99500, help="number of test architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", action="store_true", help="also write the test ranks (CCF_UFO_test_truth.json)")
    args = parser.parse_args(argv)
    if bool(args.out_dir) == bool(args.out_dir_option):
        parser.error("give the output directory once: OUT_DIR or --out-dir OUT_DIR")
    for path in make_benchmark(args.out_dir or args.out_dir_option, args.train, args.test, args.seed, args.truth,
                               args.family):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
