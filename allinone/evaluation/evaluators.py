"""Evaluator classes named in the config's evaluation table (`Eval.datasets[].evaluator`).

An evaluator says which images a test set needs, in which order (`images`), and turns the features of those images
into the original's metrics (`evaluate`). The metric maths lives in face.py, reid.py and retrieval.py.
"""
import logging
from collections import OrderedDict

import numpy as np

from ..registry import EVALUATORS
from .face import face_verification
from .reid import reid_metrics
from .retrieval import RECALL_KS, recall_at_ks

logger = logging.getLogger("allinone.evaluation")


class Evaluator:
    """Shared checks; subclasses define `metric_names`, `images(test_set)` and `_metrics(features, test_set)`."""

    metric_names = ()

    def images(self, test_set):
        raise NotImplementedError

    def evaluate(self, features, test_set):
        """OrderedDict(metric name -> float) for `features` [N, D], row i = `images(test_set)[i]`."""
        features = np.asarray(features, dtype=np.float32)
        expected = len(self.images(test_set))
        if features.ndim != 2 or features.shape[0] != expected:
            name = getattr(test_set, "dataset_name", type(test_set).__name__)
            raise ValueError(f"{type(self).__name__} on '{name}': expected features [{expected}, D] "
                             f"(one row per image), got shape {features.shape}")
        return self._metrics(features, test_set)


@EVALUATORS.register()
class FaceVerificationEvaluator(Evaluator):
    """10-fold verification accuracy over the pairs (images 2i, 2i+1) of a face test set (`images`, `issame`)."""

    metric_names = ("Accuracy", "Threshold", "metric")

    def __init__(self, num_folds=10):
        self.num_folds = num_folds

    def images(self, test_set):
        return list(test_set.images)

    def _metrics(self, features, test_set):
        return face_verification(features, test_set.issame, self.num_folds)


@EVALUATORS.register()
class ReidEvaluator(Evaluator):
    """CMC / mAP / mINP of the queries against the gallery; features are query rows first, then gallery rows.

    `num_draws` > 1 (test sets with seeded query/gallery draws: VehicleID) reads every test image once and averages
    each metric over the draws `test_set.seed`, ..., `test_set.seed + num_draws - 1` (the rows follow `test_items`).
    """

    metric_names = ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric")

    def __init__(self, num_draws=1):
        if isinstance(num_draws, bool) or not isinstance(num_draws, int) or num_draws < 1:
            raise ValueError(f"ReidEvaluator: num_draws must be an integer >= 1, got {num_draws!r}")
        self.num_draws = num_draws

    def images(self, test_set):
        if self.num_draws == 1:
            return [path for path, _, _ in list(test_set.query) + list(test_set.gallery)]
        if not all(hasattr(test_set, key) for key in ("test_items", "split", "seed")):
            raise ValueError(f"ReidEvaluator(num_draws={self.num_draws}) averages seeded query/gallery draws; "
                             f"'{test_set.dataset_name}' has one fixed split (expected a test set with "
                             f"`test_items`, `seed` and `split(seed)`, e.g. LargeVehicleID)")
        return [path for path, _, _ in test_set.test_items]

    def _metrics(self, features, test_set):
        if self.num_draws == 1:
            num_query = len(test_set.query)
            return self._split_metrics(features[:num_query], features[num_query:], test_set.query, test_set.gallery)
        row_of = {path: row for row, (path, _, _) in enumerate(test_set.test_items)}
        seeds = range(test_set.seed, test_set.seed + self.num_draws)
        draws = []
        for seed in seeds:
            query, gallery = test_set.split(seed)
            draws.append(self._split_metrics(features[[row_of[path] for path, _, _ in query]],
                                             features[[row_of[path] for path, _, _ in gallery]], query, gallery))
            logger.info("%s draw seed=%d: Rank-1=%.2f mAP=%.2f", test_set.dataset_name, seed, draws[-1]["Rank-1"],
                        draws[-1]["mAP"])
        table = np.array([[draw[name] for name in self.metric_names] for draw in draws], dtype=np.float64)
        mean, std = table.mean(axis=0), table.std(axis=0)
        logger.info("%s over %d draws (seeds %d..%d): %s", test_set.dataset_name, self.num_draws, seeds[0], seeds[-1],
                    ", ".join(f"{name}={m:.2f}±{s:.2f}" for name, m, s in zip(self.metric_names, mean, std)))
        return OrderedDict(zip(self.metric_names, mean.tolist()))

    @staticmethod
    def _split_metrics(query_features, gallery_features, query, gallery):
        _, q_pids, q_camids = zip(*query)
        _, g_pids, g_camids = zip(*gallery)
        return reid_metrics(query_features, gallery_features, np.asarray(q_pids), np.asarray(g_pids),
                            np.asarray(q_camids), np.asarray(g_camids))


@EVALUATORS.register()
class RetrievalEvaluator(Evaluator):
    """Leave-one-out Recall@K over all query images (SOP: the gallery is empty, every image queries the others)."""

    def __init__(self, recalls=RECALL_KS):
        self.recalls = tuple(recalls)
        self.metric_names = tuple(f"Recall@{k}" for k in self.recalls) + ("metric",)

    def images(self, test_set):
        if len(test_set.gallery):
            raise ValueError(f"RetrievalEvaluator evaluates leave-one-out over the query set; "
                             f"'{test_set.dataset_name}' has a non-empty gallery ({len(test_set.gallery)} items)")
        return [path for path, _, _ in test_set.query]

    def _metrics(self, features, test_set):
        labels = np.asarray([str(label) for _, label, _ in test_set.query])
        return recall_at_ks(features, labels, self.recalls)
