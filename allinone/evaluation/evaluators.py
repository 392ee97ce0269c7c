"""Evaluators named in the config's evaluation table (`Eval.datasets[].evaluator`), all on one protocol.

The protocol (as detectron2's `DatasetEvaluator`):

* `bind(test_set)`: the test set to score; it also resets. `images(test_set)`: the image sources the model must
  see, in data-set order (row `index` of the loader's batches).
* `reset()`: forget what was processed.
* `process(inputs, outputs)`: one batch; `inputs` is the loader's batch dict (its `index` entry gives the data-set
  rows), `outputs` the model's output for that batch on the entry's head ([b, D] features or [b, C] class scores).
* `evaluate() -> OrderedDict(metric name -> float)`: the metrics of everything processed since the last reset,
  gathered from every rank in data-set order.

Which images, in which order, and how their outputs become metrics is each evaluator's business; the suite only
feeds batches. The metric maths lives in face.py, reid.py and retrieval.py.
"""
import logging
from collections import OrderedDict

import numpy as np

from ..registry import EVALUATORS
from .face import face_verification
from .reid import reid_metrics
from .retrieval import DEFAULT_BACKEND, RECALL_KS, RETRIEVAL_BACKENDS, recall_at_ks

logger = logging.getLogger("allinone.evaluation")


class NonFiniteOutputError(ValueError):
    """The model produced NaN or infinite outputs for some test images (broken weights or arithmetic)."""


def test_set_name(test_set):
    return getattr(test_set, "dataset_name", None) or type(test_set).__name__


def as_array(outputs):
    """A paddle Tensor or array-like as a numpy array (no copy for numpy input)."""
    return outputs.numpy() if hasattr(outputs, "numpy") else np.asarray(outputs)


def gather_rows(rows, indices, test_set, num_items, distributed=False):
    """The processed rows in data-set order ([num_items, ...]), from every rank when `distributed` (each rank
    processed its share); every image exactly once."""
    from ..data.build import gather_in_order
    from ..data.samplers import restore_order

    values = np.concatenate(rows) if rows else np.zeros((0,))
    positions = np.concatenate(indices) if indices else np.zeros((0,), dtype=np.int64)
    try:
        if distributed:
            return gather_in_order(values, positions, num_items)
        return restore_order(positions, values, num_items)
    except ValueError as err:
        raise ValueError(f"test set '{test_set_name(test_set)}': {err}") from None


def check_finite(values, test_set):
    """Stop on non-finite rows instead of scoring them (NaN features give chance-level or undefined metrics)."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise NonFiniteOutputError(
            f"test set '{test_set_name(test_set)}': the model's outputs are not finite (NaN or inf) for "
            f"{int(bad.sum())} of {len(values)} images (first rows {np.flatnonzero(bad)[:5].tolist()}); "
            f"check the checkpoint (e.g. weights saved after a diverged step)")


class DatasetEvaluator:
    """The protocol; subclasses define `metric_names`, `images`, `reset`, `process` and `evaluate`."""

    metric_names = ()
    test_set = None
    distributed = False

    def bind(self, test_set, distributed=False):
        """Score `test_set` from now on. `distributed`: every rank processes a share of the images and
        `evaluate()` (called on every rank) gathers them."""
        self.test_set, self.distributed = test_set, distributed
        self.reset()
        return self

    def images(self, test_set):
        raise NotImplementedError

    def reset(self):
        raise NotImplementedError

    def process(self, inputs, outputs):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError

    def _bound(self):
        if self.test_set is None:
            raise RuntimeError(f"{type(self).__name__}: bind(test_set) before process/evaluate")
        return self.test_set


# kept for code that imported the former name
Evaluator = DatasetEvaluator


class FeatureEvaluator(DatasetEvaluator):
    """Evaluators on embeddings: the features of all images are kept (one float32 [N, D] array, the memory the
    ranking needs anyway) and scored at `evaluate` by `_metrics(features, test_set)`."""

    def reset(self):
        self._rows, self._indices = [], []

    def process(self, inputs, outputs):
        features = as_array(outputs).astype(np.float32, copy=False)
        indices = as_array(inputs["index"]).reshape(-1).astype(np.int64)
        if features.ndim != 2 or features.shape[0] != len(indices):
            raise ValueError(f"{type(self).__name__} on '{test_set_name(self._bound())}': expected outputs [b, D] "
                             f"for a batch of {len(indices)} images, got shape {features.shape}")
        self._rows.append(features)
        self._indices.append(indices)

    def evaluate(self):
        test_set = self._bound()
        features = self.features()
        check_finite(features, test_set)
        return self._metrics(features, test_set)

    def features(self):
        """The processed features [N, D] in data-set order (what `evaluate` scores; pictures draw from them)."""
        test_set = self._bound()
        return gather_rows(self._rows, self._indices, test_set, len(self.images(test_set)), self.distributed)

    def score(self, features, test_set):
        """Metrics of precomputed features [N, D] (row i = `images(test_set)[i]`) through the protocol."""
        features = np.asarray(features, dtype=np.float32)
        expected = len(self.images(test_set))
        if features.ndim != 2 or features.shape[0] != expected:
            raise ValueError(f"{type(self).__name__} on '{test_set_name(test_set)}': expected features "
                             f"[{expected}, D] (one row per image), got shape {features.shape}")
        self.bind(test_set)
        self.process({"index": np.arange(expected)}, features)
        return self.evaluate()

    def _metrics(self, features, test_set):
        raise NotImplementedError


@EVALUATORS.register()
class FaceVerificationEvaluator(FeatureEvaluator):
    """10-fold verification accuracy over the pairs (images 2i, 2i+1) of a face test set (`images`, `issame`)."""

    metric_names = ("Accuracy", "Threshold", "metric")

    def __init__(self, num_folds=10):
        self.num_folds = num_folds

    def images(self, test_set):
        return list(test_set.images)

    def _metrics(self, features, test_set):
        return face_verification(features, test_set.issame, self.num_folds)


@EVALUATORS.register()
class ReidEvaluator(FeatureEvaluator):
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
class RetrievalEvaluator(FeatureEvaluator):
    """Leave-one-out Recall@K over all query images (SOP: the gallery is empty, every image queries the others).
    `retrieval_backend`: `paddle` (default) or `faiss`, see retrieval.py."""

    def __init__(self, recalls=RECALL_KS, retrieval_backend=DEFAULT_BACKEND):
        if retrieval_backend not in RETRIEVAL_BACKENDS:
            raise ValueError(f"RetrievalEvaluator: retrieval_backend must be one of {RETRIEVAL_BACKENDS}, "
                             f"got {retrieval_backend!r}")
        self.retrieval_backend = retrieval_backend
        self.recalls = tuple(recalls)
        self.metric_names = tuple(f"Recall@{k}" for k in self.recalls) + ("metric",)

    def images(self, test_set):
        if len(test_set.gallery):
            raise ValueError(f"RetrievalEvaluator evaluates leave-one-out over the query set; "
                             f"'{test_set.dataset_name}' has a non-empty gallery ({len(test_set.gallery)} items)")
        return [path for path, _, _ in test_set.query]

    def _metrics(self, features, test_set):
        labels = np.asarray([str(label) for _, label, _ in test_set.query])
        return recall_at_ks(features, labels, self.recalls, backend=self.retrieval_backend)


@EVALUATORS.register()
class ClassificationEvaluator(DatasetEvaluator):
    """Top-1 accuracy (`Acc@1`, percent) of class scores [b, C] against the labels of a test set with `items`
    `(image, label)`. Keeps one predicted class per image, not the scores."""

    metric_names = ("Acc@1", "metric")

    def images(self, test_set):
        if not hasattr(test_set, "items"):
            raise ValueError(f"ClassificationEvaluator needs a test set with `items` (image, label); "
                             f"'{test_set_name(test_set)}' has none")
        return [image for image, _ in test_set.items]

    def reset(self):
        self._predictions, self._indices, self._num_classes, self._non_finite = [], [], None, 0

    def process(self, inputs, outputs):
        scores = as_array(outputs)
        indices = as_array(inputs["index"]).reshape(-1).astype(np.int64)
        if scores.ndim != 2 or scores.shape[0] != len(indices):
            raise ValueError(f"ClassificationEvaluator on '{test_set_name(self._bound())}': expected class scores "
                             f"[b, C] for a batch of {len(indices)} images, got shape {scores.shape}")
        self._num_classes = scores.shape[1]
        self._non_finite += int((~np.isfinite(scores).all(axis=1)).sum())
        self._predictions.append(np.argmax(scores, axis=1))
        self._indices.append(indices)

    def evaluate(self):
        test_set = self._bound()
        labels = np.asarray([label for _, label in test_set.items], dtype=np.int64)
        predictions = gather_rows(self._predictions, self._indices, test_set, len(labels), self.distributed)
        if self._non_finite:
            raise NonFiniteOutputError(f"test set '{test_set_name(test_set)}': the model's class scores are not "
                                       f"finite (NaN or inf) for {self._non_finite} of {len(labels)} images")
        if len(labels) and (labels.min() < 0 or labels.max() >= self._num_classes):
            raise ValueError(f"test set '{test_set_name(test_set)}': labels span {labels.min()}..{labels.max()} but "
                             f"the head gives {self._num_classes} class scores")
        accuracy = float(np.mean(predictions == labels)) * 100
        return OrderedDict([("Acc@1", accuracy), ("metric", accuracy)])
