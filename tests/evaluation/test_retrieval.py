import numpy as np
import pytest

from allinone.evaluation.distance import InnerProducts
from allinone.evaluation.features import l2_normalize
from allinone.evaluation.retrieval import (DEFAULT_BACKEND, RETRIEVAL_BACKENDS, neighbours_without_self,
                                           recall_at_ks, recall_from_similarities, same_label_pairs,
                                           same_label_similarities)

BACKENDS = pytest.mark.parametrize("backend", RETRIEVAL_BACKENDS)


@BACKENDS
def test_reproduces_the_original_retrieval_evaluator_results(eval_reference, backend):
    arrays, expected = eval_reference
    results = recall_at_ks(arrays["sop_feats"], arrays["sop_labels"], backend=backend)
    assert list(results) == ["Recall@1", "Recall@10", "Recall@100", "Recall@1000", "metric"]
    for name, value in expected["sop"].items():
        assert results[name] == value, name


def test_the_default_backend_is_paddle():
    assert DEFAULT_BACKEND == "paddle"


def test_query_blocks_do_not_change_the_result(eval_reference):
    arrays, _ = eval_reference
    reference = recall_at_ks(arrays["sop_feats"], arrays["sop_labels"])
    assert recall_at_ks(arrays["sop_feats"], arrays["sop_labels"], backend="faiss", query_block=97) == reference
    ks = (1, 10, 100, 1000)
    assert recall_from_similarities(arrays["sop_feats"], arrays["sop_labels"], ks, block_bytes=97 * 4 * 1500) == \
        {k: round(reference[f"Recall@{k}"] * 15) for k in ks}


def brute_force_hits(features, labels, ks, engine):
    """Recall@K written the plain way on the same similarities (the engine's GEMM, same-label pairs from
    `same_label_similarities`): per query a full stable sort (descending, ties by index) of all other items."""
    normalised = l2_normalize(features)
    sim = InnerProducts(normalised, engine)(normalised).copy()
    rows, cols = same_label_pairs(labels)
    sim[rows, cols] = same_label_similarities(normalised, rows, cols)
    hits = {k: 0 for k in ks}
    for i in range(len(sim)):
        others = np.delete(np.arange(len(sim)), i)
        order = others[np.argsort(-sim[i, others], kind="stable")]
        same = labels[order] == labels[i]
        for k in ks:
            hits[k] += bool(same[:k].any())
    return hits


# random clusters, and features rounded onto a coarse grid so that many similarities tie exactly (the order of tied
# items then decides the hits: by index)
@pytest.mark.parametrize("engine", ["inference", "dygraph"])
@pytest.mark.parametrize("seed,coarse", [(0, False), (1, False), (2, True), (3, True)])
def test_counting_equals_a_full_stable_sort_of_the_same_similarities(engine, seed, coarse):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 40, 300)
    features = (rng.randn(40, 8)[labels] + 1.5 * rng.randn(300, 8)).astype(np.float32)
    if coarse:
        features = np.clip(np.round(features[:, :2]), -2, 2).astype(np.float32)
    labels = labels.astype(str)
    ks = (1, 2, 5, 10, 50, 299, 1000)
    expected = brute_force_hits(features, labels, ks, engine)
    assert recall_from_similarities(features, labels, ks, block_bytes=13 * 4 * 300, engine=engine) == expected
    assert 0 < expected[1] < expected[50] < 300


@BACKENDS
def test_a_query_never_retrieves_itself_even_among_exact_duplicates(backend):
    # five identical images with five different labels: dropping "the first hit" would leave the query itself in
    # the list for four of them; excluding it by index leaves only wrong labels
    features = np.ones((5, 4), np.float32)
    results = recall_at_ks(features, np.array(["a", "b", "c", "d", "e"]), backend=backend)
    assert all(value == 0.0 for value in results.values())


@BACKENDS
def test_recall_at_k_beyond_the_set_size_looks_at_all_other_items(backend):
    features = np.random.RandomState(0).randn(4, 8).astype(np.float32)
    results = recall_at_ks(features, np.array(["a", "a", "b", "c"]), backend=backend)
    assert results["Recall@10"] == results["Recall@1000"] == 50.0


@BACKENDS
def test_recalls_are_rounded_to_two_decimals_as_the_original(backend):
    # 2 of 7 queries find a same-label neighbour first: 28.571...% -> 28.57
    features = np.float32([[1, 0], [1, 0.01], [0, 1], [0.01, 1], [-1, 0], [-1, -0.1], [0, -1]])
    labels = np.array(["a", "a", "b", "x", "y", "z", "b"])
    assert recall_at_ks(features, labels, ks=(1,), backend=backend)["Recall@1"] == 28.57


def test_an_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="paddle"):
        recall_at_ks(np.ones((3, 2), np.float32), np.array(["a", "a", "b"]), backend="annoy")


def test_neighbours_without_self_drops_the_query_wherever_it_appears():
    neighbours = np.array([[3, 0, 1], [0, 2, 1], [4, 5, 6]])
    kept = neighbours_without_self(neighbours, np.array([0, 1, 2]), k=2)
    np.testing.assert_array_equal(kept, [[3, 1], [0, 2], [4, 5]])


@BACKENDS
def test_labels_are_compared_as_strings(backend):
    # '011' and '11' are different classes (as ints they would be one)
    features = np.float32([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    results = recall_at_ks(features, np.array(["011", "11", "5", "5"]), ks=(1,), backend=backend)
    assert results["Recall@1"] == 50.0


@BACKENDS
def test_the_evaluator_takes_the_backend_as_an_argument(eval_reference, backend):
    from types import SimpleNamespace

    from allinone.registry import EVALUATORS

    arrays, expected = eval_reference
    test_set = SimpleNamespace(query=[(f"p_{i}.jpg", str(label), 0) for i, label in enumerate(arrays["sop_labels"])],
                               gallery=[], dataset_name="sop")
    evaluator = EVALUATORS.build({"name": "RetrievalEvaluator", "retrieval_backend": backend})
    assert evaluator.retrieval_backend == backend
    assert evaluator.score(arrays["sop_feats"], test_set) == expected["sop"]
    with pytest.raises(ValueError, match="retrieval_backend"):
        EVALUATORS.build({"name": "RetrievalEvaluator", "retrieval_backend": "gpu"})
