"""The 'ours' predictor: per task, the model that k-fold cross-validation on the training set alone picks.

Candidates are every setting of every family in `DEFAULT_FAMILIES` (the PaddleSlim baseline itself included, so
that the choice can fall back to it), each alone or *multi-task*: blended with the other tasks' predictions of
the same model, weighted by how the tasks' training ranks correlate (for a linear smoother this is the same as
learning a target that borrows from the correlated tasks; it helps a noisy task when the others are related).
For each task, the held-out Kendall tau of every candidate is measured on the same folds; the best candidate is
then grown greedily into an equal-weight average while that raises the cross-validated tau by at least
`min_gain`. `fit` sees only the training codes and ranks; the same seed gives the same folds, choices and
predictions. The choices and their cross-validated taus are in `report()`.
"""
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from sklearn.model_selection import KFold
from tqdm import tqdm

from .data import TASKS
from .encodings import check_absent_layers, encode
from .models import (ARDKernelRidge, KernelRidge, PaddleSlimGPNASFamily, PairwiseLogistic, Ridge, normal_scores,
                     targets_for, to_normal_scale)

DEFAULT_FAMILIES = (
    PaddleSlimGPNASFamily("baseline-fast", "convert_x", mode="fast"),
    PaddleSlimGPNASFamily("baseline-slow", "convert_x", mode="slow"),
    Ridge("ridge", "onehot"),
    Ridge("ridge", "ordinal_absent+counts"),
    KernelRidge("gp-rbf", "onehot", kernel="rbf"),
    KernelRidge("gp-linear+rbf", "onehot", kernel="linear+rbf"),
    KernelRidge("gp-laplacian", "onehot", kernel="laplacian"),
    KernelRidge("gp-rbf", "ordinal_absent", kernel="rbf"),
    KernelRidge("gp-poly2", "ordinal_absent", kernel="poly2"),
    ARDKernelRidge("gp-ard", "ordinal_absent"),
    PairwiseLogistic("pairwise", "onehot"),
)
MULTITASK_SHARES = (0.0, 0.25, 0.5)
BASELINE_NAME = "baseline-fast"


def fold_kendall_taus(predictions, truth):
    """Kendall tau-b of each row of `predictions` [K, m] against `truth` [m], all at once -> [K]."""
    first, second = np.triu_indices(len(truth), 1)
    truth_sign = np.sign(truth[first] - truth[second])
    predicted_sign = np.sign(predictions[:, first] - predictions[:, second])
    concordance = predicted_sign @ truth_sign
    denominator = np.sqrt(np.abs(predicted_sign).sum(1) * np.abs(truth_sign).sum())
    return np.divide(concordance, denominator, out=np.zeros(len(predictions)), where=denominator > 0)


def multitask_weights(normal_targets):
    """[T, T] weights of the other tasks for each task: their positive rank correlation, rows summing to 1 (a
    row of zeros when no other task correlates positively)."""
    correlation = np.atleast_2d(np.corrcoef(normal_targets.T))  # [1, 1] for a single target (latency)
    np.fill_diagonal(correlation, 0.0)
    weights = np.clip(np.nan_to_num(correlation), 0.0, None)
    totals = weights.sum(1, keepdims=True)
    return np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)


def blend(predictions, weights, share):
    """Task t's score: (1 - share) * its own prediction + share * the weighted other tasks' ([.., m, T])."""
    return (1 - share) * predictions + share * predictions @ weights.T


@dataclass(frozen=True)
class Candidate:
    """A setting of a family, alone (share 0) or blended with the other tasks' predictions."""

    family_index: int
    setting_index: int
    share: float
    name: str


@dataclass
class TaskChoice:
    """What fit chose for one task and the cross-validated taus behind the choice."""

    task: str
    members: List[Candidate]
    cv_tau: float
    best_single: Tuple[str, float]
    baseline_cv_tau: float
    ranking: List[Tuple[str, float]]

    def as_dict(self):
        counts = {}
        for member in self.members:
            counts[member.name] = counts.get(member.name, 0) + 1
        return {"task": self.task, "model": [{"candidate": name, "weight": count / len(self.members)}
                                             for name, count in counts.items()],
                "cv_tau": round(self.cv_tau, 4), "best_single": {"candidate": self.best_single[0],
                                                                 "cv_tau": round(self.best_single[1], 4)},
                "baseline_cv_tau": round(self.baseline_cv_tau, 4),
                "top_candidates": [{"candidate": name, "cv_tau": round(tau, 4)} for name, tau in self.ranking]}

    def summary(self):
        model = " + ".join(f"{entry['weight']:.2g} {entry['candidate']}" if len(self.members) > 1 else
                           entry["candidate"] for entry in self.as_dict()["model"])
        return (f"{self.task:<11} cv tau {self.cv_tau:.4f} (baseline-fast {self.baseline_cv_tau:.4f}): {model}")


class CrossValidatedPredictor:
    """Multi-task predictor: `fit(codes, ranks [N, T])`, `predict(codes) -> scores [M, T]` (higher = higher rank)."""

    def __init__(self, families=DEFAULT_FAMILIES, folds=5, repeats=2, seed=0, multitask_shares=MULTITASK_SHARES,
                 max_members=6, min_gain=0.0005, progress=False):
        self.families = tuple(families)
        self.folds, self.repeats, self.seed = folds, repeats, seed
        self.multitask_shares = tuple(multitask_shares)
        self.max_members, self.min_gain = max_members, min_gain
        self.progress = progress
        for family in self.families:
            check_absent_layers(family.encoding)
        if not any(family.name == BASELINE_NAME for family in self.families):
            raise ValueError(f"the candidates must include {BASELINE_NAME!r}, the fallback the choice is checked "
                             "against")

    # -- candidates -------------------------------------------------------------------------------------------
    def _candidates(self):
        candidates = []
        for family_index, family in enumerate(self.families):
            names = family.setting_names()
            encoding = f" [{family.encoding}]" if family.target != "rank" else ""
            for setting_index, name in enumerate(names):
                for share in self.multitask_shares:
                    suffix = f" multi-task {share:g}" if share else ""
                    candidates.append(Candidate(family_index, setting_index, share, name + encoding + suffix))
        return candidates

    def _encode_all(self, codes):
        return {encoding: encode(codes, encoding) for encoding in {family.encoding for family in self.families}}

    def _splits(self, num_rows):
        """(repeat, fit rows, held rows) of `repeats` differently shuffled k-fold partitions."""
        return [(repeat, fit_rows, held_rows) for repeat in range(self.repeats)
                for fit_rows, held_rows in KFold(self.folds, shuffle=True,
                                                 random_state=self.seed + repeat).split(np.arange(num_rows))]

    def _out_of_fold(self, features, ranks, splits):
        """Held-out predictions of every family setting on the normal-score scale [F][S, R, N, T] (R repeats of
        the k folds), and the multi-task weights of each split's fitting rows; one fit per family and split."""
        out = [np.zeros((len(family.settings), self.repeats) + ranks.shape) for family in self.families]
        weights = []
        steps = tqdm(total=len(self.families) * len(splits), desc="ours: cross-validating candidates",
                     disable=not self.progress)
        for repeat, fit_rows, held_rows in splits:
            weights.append((repeat, held_rows, multitask_weights(normal_scores(ranks[fit_rows]))))
            for index, family in enumerate(self.families):
                X = features[family.encoding]
                targets = targets_for(family, ranks[fit_rows])
                predictions = family.fit(X[fit_rows], targets).predict(X[held_rows])
                out[index][:, repeat, held_rows] = to_normal_scale(family, predictions, targets)
                steps.update()
        steps.close()
        return out, weights

    def fit(self, codes, ranks):
        codes, ranks = np.asarray(codes), np.asarray(ranks)
        if ranks.ndim != 2 or len(codes) != len(ranks):
            raise ValueError(f"expected codes [N] and ranks [N, tasks], got {codes.shape} and {ranks.shape}")
        if len(codes) < 4 * self.folds:
            raise ValueError(f"{len(codes)} training architectures are too few for {self.folds}-fold selection "
                             f"(need at least {4 * self.folds})")
        features = self._encode_all(codes)
        splits = self._splits(len(codes))
        out_of_fold, split_weights = self._out_of_fold(features, ranks, splits)
        candidates = self._candidates()
        # every candidate's held-out predictions [C, R, N, T]
        options = np.empty((len(candidates), self.repeats) + ranks.shape)
        for index, candidate in enumerate(candidates):
            single = out_of_fold[candidate.family_index][candidate.setting_index]
            for repeat, held_rows, weights in split_weights:
                options[index, repeat, held_rows] = blend(single[repeat, held_rows], weights, candidate.share)
        task_names = TASKS if ranks.shape[1] == len(TASKS) else tuple(f"task{t}" for t in range(ranks.shape[1]))
        self.choices_ = [self._choose(task, options[..., column], ranks[:, column], splits, candidates)
                         for column, task in enumerate(task_names)]
        self._fit_final(features, ranks)
        return self

    def _cv_taus(self, predictions, truth, splits):
        """Mean over splits of the held-out tau of each row of predictions [K, R, N] -> [K]."""
        return np.mean([fold_kendall_taus(predictions[:, repeat, held], truth[held])
                        for repeat, _, held in splits], axis=0)

    def _choose(self, task, options, truth, splits, candidates):
        taus = self._cv_taus(options, truth, splits)
        order = np.argsort(-taus, kind="stable")
        members, total = [int(order[0])], options[order[0]].copy()
        best = float(taus[order[0]])
        while len(members) < self.max_members:
            trial = self._cv_taus((total[None] + options) / (len(members) + 1), truth, splits)
            pick = int(np.argmax(trial))
            if trial[pick] < best + self.min_gain:
                break
            members.append(pick)
            total += options[pick]
            best = float(trial[pick])
        baseline = next(i for i, c in enumerate(candidates)
                        if self.families[c.family_index].name == BASELINE_NAME and c.share == 0)
        return TaskChoice(task, [candidates[i] for i in members], best,
                          (candidates[order[0]].name, float(taus[order[0]])), float(taus[baseline]),
                          [(candidates[i].name, float(taus[i])) for i in order[:8]])

    def _fit_final(self, features, ranks):
        """Refit, on all training rows, every family setting that some task's choice uses."""
        self.weights_ = multitask_weights(normal_scores(ranks))
        needed = sorted({(m.family_index, m.setting_index) for choice in self.choices_ for m in choice.members})
        self.fitted_ = {}
        for family_index in sorted({f for f, _ in needed}):
            family = self.families[family_index]
            targets = targets_for(family, ranks)
            self.fitted_[family_index] = (family.fit(features[family.encoding], targets), targets,
                                          [s for f, s in needed if f == family_index])
        self.num_tasks_ = ranks.shape[1]

    def predict(self, codes):
        predictions = {}
        for family_index, (fitted, targets, settings) in tqdm(self.fitted_.items(), desc="ours: predicting",
                                                              disable=not self.progress):
            family = self.families[family_index]
            values = to_normal_scale(family, fitted.predict(encode(codes, family.encoding), settings), targets)
            for setting, value in zip(settings, values):
                predictions[family_index, setting] = value
        scores = np.empty((len(codes), self.num_tasks_))
        for column, choice in enumerate(self.choices_):
            scores[:, column] = np.mean([
                blend(predictions[m.family_index, m.setting_index], self.weights_, m.share)[:, column]
                for m in choice.members], axis=0)
        return scores

    def report(self):
        """Per task: the chosen model (candidates and weights), its cross-validated tau, the best single
        candidate's and the baseline's, and the top candidates."""
        return {"folds": self.folds, "repeats": self.repeats, "seed": self.seed,
                "tasks": [choice.as_dict() for choice in self.choices_]}
