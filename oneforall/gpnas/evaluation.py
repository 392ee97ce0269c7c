"""Kendall tau per task: k-fold cross-validated on a training set, of a fitted predictor's submission, and of a
submission file against the true ranks."""
import numpy as np
from scipy.stats import kendalltau
from sklearn.model_selection import KFold
from tqdm import tqdm

from .data import TASKS, scores_to_ranks
from .predictors import build_predictor


def kendall_tau(y_true, y_pred):
    return kendalltau(y_true, y_pred).statistic


def cross_validated_kendall_tau(ranking_set, predictor="ours", encoding=None, folds=5, seed=0, progress=True):
    """Mean over `folds` shuffled folds of the held-out Kendall tau, per task -> {task: tau}. The predictor is
    fitted on the other folds only ('ours' then cross-validates inside them to make its choices)."""
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    codes, ranks = ranking_set.codes, ranking_set.ranks
    taus = []
    for fit_rows, held_rows in tqdm(list(splitter.split(codes)), desc=f"cv {predictor}", disable=not progress):
        model = build_predictor(predictor, encoding, seed=seed).fit(codes[fit_rows], ranks[fit_rows])
        predicted = model.predict(codes[held_rows])
        taus.append([kendall_tau(ranks[held_rows, column], predicted[:, column]) for column in range(len(TASKS))])
    return dict(zip(TASKS, map(float, np.mean(taus, axis=0))))


def fit_predictor(train_set, predictor="ours", encoding=None, seed=0, progress=True):
    """Fit the predictor `predictor` on all tasks of `train_set`."""
    return build_predictor(predictor, encoding, seed=seed, progress=progress).fit(train_set.codes, train_set.ranks)


def fit_predict_ranks(train_set, test_codes, predictor="ours", encoding=None, seed=0, progress=True):
    """Fit on `train_set` and rank `test_codes` -> int ranks [M, 8], 0..M-1 per task."""
    return scores_to_ranks(fit_predictor(train_set, predictor, encoding, seed, progress).predict(test_codes))


def score_submission(predicted, truth):
    """Kendall tau per task of a submission against the true ranks -> {task: tau}. Both `RankingSet`s must hold
    the same architecture ids with the same codes (in any order)."""
    position = {entry_id: index for index, entry_id in enumerate(truth.ids)}
    missing = [entry_id for entry_id in predicted.ids if entry_id not in position]
    if missing or len(predicted) != len(truth):
        absent = missing[:1] or [entry_id for entry_id in truth.ids if entry_id not in set(predicted.ids)][:1]
        raise ValueError(f"the submission has {len(predicted)} entries and the truth {len(truth)}; entry "
                         f"{absent[0]!r} is in only one of them")
    order = np.array([position[entry_id] for entry_id in predicted.ids])
    mismatch = np.flatnonzero(truth.codes[order] != predicted.codes)
    if len(mismatch):
        entry_id = predicted.ids[mismatch[0]]
        raise ValueError(f"entry {entry_id!r} has architecture {predicted.codes[mismatch[0]]} in the submission "
                         f"but {truth.codes[order[mismatch[0]]]} in the truth")
    taus = {}
    for column, task in enumerate(TASKS):
        if np.all(predicted.ranks[:, column] == predicted.ranks[0, column]):
            raise ValueError(f"the submission gives every architecture the same {task}_rank "
                             f"({predicted.ranks[0, column]}); it does not rank them")
        taus[task] = float(kendall_tau(truth.ranks[order, column], predicted.ranks[:, column]))
    return taus
