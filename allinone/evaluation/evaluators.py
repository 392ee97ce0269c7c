"""Evaluator classes named in the config's evaluation table (`Eval.datasets[].evaluator`).

An evaluator says which images a test set needs, in which order (`images`), and turns the features of those images
into the original's metrics (`evaluate`). The metric maths lives in face.py, reid.py and retrieval.py.
"""
import numpy as np

from ..registry import EVALUATORS
from .face import face_verification
from .reid import reid_metrics
from .retrieval import RECALL_KS, recall_at_ks


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
    """CMC / mAP / mINP of the queries against the gallery; features are query rows first, then gallery rows."""

    metric_names = ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric")

    def images(self, test_set):
        return [path for path, _, _ in list(test_set.query) + list(test_set.gallery)]

    def _metrics(self, features, test_set):
        num_query = len(test_set.query)
        _, q_pids, q_camids = zip(*test_set.query)
        _, g_pids, g_camids = zip(*test_set.gallery)
        return reid_metrics(features[:num_query], features[num_query:], np.asarray(q_pids), np.asarray(g_pids),
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
