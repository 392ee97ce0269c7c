"""Kendall tau per task, k-fold cross-validated on a training set, and fit-predict of a submission."""
import numpy as np
from scipy.stats import kendalltau
from sklearn.metrics import make_scorer
from sklearn.model_selection import KFold, cross_val_score
from tqdm import tqdm

from .data import TASKS, scores_to_ranks
from .predictors import build_predictor


def kendall_tau(y_true, y_pred):
    return kendalltau(y_true, y_pred).statistic


KENDALL_SCORER = make_scorer(kendall_tau)


def cross_validated_kendall_tau(ranking_set, predictor="ours", encoding=None, folds=5, seed=0, progress=True):
    """Mean over `folds` shuffled folds of the held-out Kendall tau, per task -> {task: tau}."""
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    taus = {}
    for column, task in enumerate(tqdm(TASKS, desc=f"cv {predictor}", disable=not progress)):
        scores = cross_val_score(build_predictor(predictor, encoding), ranking_set.codes,
                                 ranking_set.ranks[:, column], cv=splitter, scoring=KENDALL_SCORER)
        taus[task] = float(np.mean(scores))
    return taus


def fit_predict_ranks(train_set, test_codes, predictor="ours", encoding=None, progress=True):
    """Fit one predictor per task on `train_set` and rank `test_codes` -> int ranks [M, 8], 0..M-1 per task."""
    scores = np.empty((len(test_codes), len(TASKS)))
    for column, task in enumerate(tqdm(TASKS, desc=f"fit-predict {predictor}", disable=not progress)):
        model = build_predictor(predictor, encoding).fit(train_set.codes, train_set.ranks[:, column])
        scores[:, column] = model.predict(test_codes)
    return scores_to_ranks(scores)
