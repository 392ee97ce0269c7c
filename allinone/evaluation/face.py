"""Face verification: the 10-fold accuracy protocol of the original (insightface `calculate_roc`).

Pair i is rows (2i, 2i+1). Distances are float32 squared Euclidean between L2-normalised features; the threshold is
chosen on 9 folds (first maximum of the accuracy over `arange(0, 4, 0.01)`, "same" iff dist < threshold) and applied to
the held-out fold. Folds are contiguous, as `KFold(n_splits, shuffle=False)`.
"""
from collections import OrderedDict

import numpy as np

from .features import l2_normalize

THRESHOLDS = np.arange(0, 4, 0.01)


def pair_distances(features):
    """Squared Euclidean distance (float32) between the normalised rows 2i and 2i+1."""
    embeddings = l2_normalize(features)
    diff = np.subtract(embeddings[0::2], embeddings[1::2])
    return np.sum(np.square(diff), axis=1)


def contiguous_folds(num_items, num_folds):
    """(train, test) index arrays of `sklearn.model_selection.KFold(num_folds, shuffle=False)`."""
    if num_items < num_folds:
        raise ValueError(f"{num_items} pairs cannot be split into {num_folds} folds")
    indices = np.arange(num_items)
    for test in np.array_split(indices, num_folds):
        yield np.setdiff1d(indices, test, assume_unique=True), test


def face_verification(features, issame, num_folds=10, thresholds=THRESHOLDS):
    """OrderedDict(Accuracy (%), Threshold, metric) of the 10-fold protocol; `features` [2P, D], `issame` [P] bool."""
    features = np.asarray(features)
    issame = np.asarray(issame, dtype=bool)
    if features.shape[0] % 2:
        raise ValueError(f"face features must come in pairs (rows 2i, 2i+1), got {features.shape[0]} rows")
    dist = pair_distances(features)
    num_pairs = min(len(issame), len(dist))
    dist, issame = dist[:num_pairs], issame[:num_pairs]
    # correct[t, i]: does threshold t classify pair i right
    correct = (dist[None, :] < thresholds[:, None]) == issame[None, :]
    accuracies, best_thresholds = [], []
    for train, test in contiguous_folds(num_pairs, num_folds):
        best = int(np.argmax(correct[:, train].sum(axis=1)))
        best_thresholds.append(thresholds[best])
        accuracies.append(correct[best, test].sum() / len(test))
    accuracy = float(np.mean(accuracies)) * 100
    return OrderedDict([("Accuracy", accuracy), ("Threshold", float(np.mean(best_thresholds))),
                        ("metric", accuracy)])
