"""Architecture search on measured sub-networks: predictors of accuracy (per task) and latency fitted on
`oneforall.evaluate_subnets` measurements, then the best predicted architectures under a latency budget.

    python -m oneforall.gpnas search --measurements nas/measurements.json --budget-ms 4.0 [--plot nas/pareto.png]

Accuracy: the chosen predictor (`ours` by default, or the baseline) is fitted on the ranks of the 8 tasks' scores;
an architecture's predicted accuracy is the mean over tasks of its predicted rank among the candidates, as a
fraction (1 = predicted best on every task). Latency: the same predictor fitted on the latency ranks, its scores
turned into milliseconds by matching quantiles with the measured latencies (so predictions stay on the measured
scale). Candidates: random codes of the competition space plus the measured ones. The answer is the
predicted-accuracy vs predicted-latency Pareto front and its best members within the budget.
"""
import json
import random
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from .data import TASKS, scores_to_ranks
from .evaluation import kendall_tau
from .predictors import build_predictor


@dataclass
class Measurements:
    """Measured sub-networks: codes [N], scores [N, 8] (TASKS order), latency_ms [N] (nan where not measured),
    flops [N]."""

    codes: np.ndarray
    scores: np.ndarray
    latency_ms: np.ndarray
    flops: np.ndarray

    def __len__(self):
        return len(self.codes)

    def subset(self, rows):
        return Measurements(self.codes[rows], self.scores[rows], self.latency_ms[rows], self.flops[rows])


def read_measurements(path):
    """The measurements file of `python -m oneforall.evaluate_subnets` (codes with scores)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("oneforall-subnet-measurements"):
        raise ValueError(f"{path}: not a measurements file of oneforall.evaluate_subnets (no 'format' "
                         f"'oneforall-subnet-measurements/...')")
    codes, scores, latency, flops = [], [], [], []
    for code, record in data.get("archs", {}).items():
        if "scores" not in record:
            continue
        missing = [task for task in TASKS if task not in record["scores"]]
        if missing:
            raise ValueError(f"{path}: architecture {code}: no score for {missing}")
        codes.append(code)
        scores.append([float(record["scores"][task]) for task in TASKS])
        latency.append(float(record.get("latency_ms", np.nan)))
        flops.append(float(record.get("flops", np.nan)))
    if len(codes) < 4:
        raise ValueError(f"{path}: {len(codes)} measured architectures; fitting needs at least 4")
    return Measurements(np.array(codes), np.array(scores), np.array(latency), np.array(flops))


def to_ranks(values):
    """Ranks 0..N-1 per column (ties in order), as the predictors' training targets."""
    values = np.asarray(values, dtype=np.float64)
    return scores_to_ranks(values if values.ndim == 2 else values[:, None])


class LatencyPredictor:
    """A rank predictor fitted on latency ranks; `predict_ms` maps its scores to milliseconds by quantile matching
    against the training latencies (monotone, so the order is the predictor's)."""

    def __init__(self, predictor="ours", seed=0):
        self.model = build_predictor(predictor, seed=seed)

    def fit(self, codes, latency_ms):
        latency_ms = np.asarray(latency_ms, dtype=np.float64)
        self.model.fit(codes, to_ranks(latency_ms))
        self.train_scores_ = np.sort(self.model.predict(codes)[:, 0])
        self.train_ms_ = np.sort(latency_ms)
        return self

    def predict(self, codes):
        return self.model.predict(codes)[:, 0]

    def predict_ms(self, codes):
        return np.interp(self.predict(codes), self.train_scores_, self.train_ms_)


class AccuracyPredictor:
    """A rank predictor fitted on the 8 tasks' score ranks."""

    def __init__(self, predictor="ours", seed=0):
        self.model = build_predictor(predictor, seed=seed)

    def fit(self, codes, scores):
        self.model.fit(codes, to_ranks(scores))
        return self

    def predict(self, codes):
        return self.model.predict(codes)


def mean_rank_fraction(task_scores):
    """Per row, the mean over tasks of its rank among the rows as a fraction in [0, 1]."""
    ranks = np.column_stack([rankdata(column) - 1 for column in np.asarray(task_scores).T])
    return ranks.mean(axis=1) / max(len(ranks) - 1, 1)


def held_out_taus(measurements, predictor="ours", seed=0, fraction=0.5):
    """Fit on a random `fraction` of the measured codes, Kendall tau on the rest: {task: tau, 'latency': tau}."""
    rows = np.random.RandomState(seed).permutation(len(measurements))
    cut = int(round(len(rows) * fraction))
    train, test = measurements.subset(rows[:cut]), measurements.subset(rows[cut:])
    accuracy = AccuracyPredictor(predictor, seed).fit(train.codes, train.scores).predict(test.codes)
    taus = {task: float(kendall_tau(test.scores[:, column], accuracy[:, column]))
            for column, task in enumerate(TASKS)}
    if np.all(np.isfinite(measurements.latency_ms)):
        latency = LatencyPredictor(predictor, seed).fit(train.codes, train.latency_ms).predict(test.codes)
        taus["latency"] = float(kendall_tau(test.latency_ms, latency))
    return taus


def candidate_codes(count, seed, space=None):
    """`count` distinct random codes of the competition space (a private random.Random(seed))."""
    from ..search_space import COMPETITION_SPACE

    space = space or COMPETITION_SPACE
    rng, codes = random.Random(seed), {}
    while len(codes) < count:
        codes.setdefault(space.sample(rng.getrandbits(64)).to_code(), None)
    return list(codes)


def pareto_front(accuracy, latency):
    """Indices of the rows no other row beats (higher or equal accuracy at lower or equal latency, one strictly),
    by increasing latency."""
    order = np.lexsort((-accuracy, latency))
    front, best = [], -np.inf
    for index in order:
        if accuracy[index] > best:
            front.append(int(index))
            best = accuracy[index]
    return front


@dataclass
class SearchResult:
    codes: np.ndarray
    accuracy: np.ndarray        # predicted mean rank fraction over tasks
    latency_ms: np.ndarray      # predicted
    front: list                 # Pareto front indices, by latency
    chosen: list                # indices within the budget, best predicted accuracy first
    budget_ms: float


def search(measurements, budget_ms, predictor="ours", candidates=20000, seed=0, top=5):
    """Fit both predictors on all measurements, predict `candidates` random codes plus the measured ones, return
    the Pareto front and the `top` best within `budget_ms`."""
    if not np.all(np.isfinite(measurements.latency_ms)):
        raise ValueError("the measurements lack latencies (evaluate_subnets ran with --no_latency)")
    codes = np.array(list(dict.fromkeys(list(candidate_codes(candidates, seed)) + list(measurements.codes))))
    accuracy_model = AccuracyPredictor(predictor, seed).fit(measurements.codes, measurements.scores)
    latency_model = LatencyPredictor(predictor, seed).fit(measurements.codes, measurements.latency_ms)
    accuracy = mean_rank_fraction(accuracy_model.predict(codes))
    latency = latency_model.predict_ms(codes)
    within = np.flatnonzero(latency <= budget_ms)
    chosen = [int(i) for i in within[np.argsort(-accuracy[within], kind="stable")][:top]]
    return SearchResult(codes, accuracy, latency, pareto_front(accuracy, latency), chosen, float(budget_ms))


def plot_search(result, path, measurements=None):
    """PNG: every candidate's predicted latency and accuracy, the Pareto front, the budget and the choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.5), dpi=120)
    axis.scatter(result.latency_ms, result.accuracy, s=3, alpha=0.25, color="0.5", label="candidates (predicted)")
    front = result.front
    axis.plot(result.latency_ms[front], result.accuracy[front], color="tab:blue", lw=1.5, marker=".",
              label="Pareto front")
    axis.axvline(result.budget_ms, color="tab:red", ls="--", lw=1, label=f"budget {result.budget_ms:g} ms")
    if result.chosen:
        best = result.chosen[0]
        axis.scatter([result.latency_ms[best]], [result.accuracy[best]], s=80, marker="*", color="tab:red",
                     zorder=5, label="chosen")
    axis.set_xlabel("predicted latency (ms)")
    axis.set_ylabel("predicted accuracy (mean rank fraction over 8 tasks)")
    axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def add_search_command(commands):
    parser = commands.add_parser("search", help="best predicted architectures under a latency budget, from "
                                                "oneforall.evaluate_subnets measurements")
    parser.add_argument("--measurements", required=True, help="measurements.json of oneforall.evaluate_subnets")
    parser.add_argument("--budget-ms", dest="budget_ms", type=float, required=True, help="latency budget (ms)")
    parser.add_argument("--predictor", default="ours", choices=("baseline-fast", "baseline-slow", "ridge", "ours"))
    parser.add_argument("--candidates", type=int, default=20000, help="random codes to rank (plus the measured)")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="PNG of the Pareto front (matplotlib)")
    parser.add_argument("--out", default=None, help="JSON with the Pareto front and the chosen architectures")
    parser.add_argument("--threads", type=int, default=None)
    return parser


def run_search(args):
    measurements = read_measurements(args.measurements)
    result = search(measurements, args.budget_ms, args.predictor, args.candidates, args.seed, args.top)
    print(f"{len(result.codes)} candidates ({len(measurements)} measured), predictor {args.predictor}; "
          f"{len(result.front)} on the Pareto front")
    if not result.chosen:
        print(f"no candidate is predicted within {args.budget_ms:g} ms (fastest predicted: "
              f"{result.latency_ms.min():.3f} ms)")
    for place, index in enumerate(result.chosen, 1):
        print(f"  {place}. {result.codes[index]}  predicted {result.latency_ms[index]:.3f} ms, accuracy "
              f"{result.accuracy[index]:.3f}")
    if args.plot:
        print(f"wrote {plot_search(result, args.plot)}")
    if args.out:
        entry = lambda i: {"arch": str(result.codes[i]), "predicted_latency_ms": float(result.latency_ms[i]),  # noqa
                           "predicted_accuracy": float(result.accuracy[i])}
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"budget_ms": args.budget_ms, "predictor": args.predictor,
                       "chosen": [entry(i) for i in result.chosen], "pareto_front": [entry(i) for i in result.front]},
                      f, indent=1)
        print(f"wrote {args.out}")
    return result
