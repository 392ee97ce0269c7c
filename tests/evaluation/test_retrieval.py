import numpy as np
import pytest

from allinone.evaluation.retrieval import neighbours_without_self, recall_at_ks


def test_reproduces_the_original_retrieval_evaluator_results(eval_reference):
    arrays, expected = eval_reference
    results = recall_at_ks(arrays["sop_feats"], arrays["sop_labels"])
    assert list(results) == ["Recall@1", "Recall@10", "Recall@100", "Recall@1000", "metric"]
    for name, value in expected["sop"].items():
        assert results[name] == pytest.approx(value, abs=1e-6), name


def test_query_blocks_do_not_change_the_result(eval_reference):
    arrays, _ = eval_reference
    assert recall_at_ks(arrays["sop_feats"], arrays["sop_labels"], query_block=97) == \
        recall_at_ks(arrays["sop_feats"], arrays["sop_labels"])


def test_a_query_never_retrieves_itself_even_among_exact_duplicates():
    # five identical images with five different labels: dropping "the first hit" would leave the query itself in
    # the list for four of them; excluding it by index leaves only wrong labels
    features = np.ones((5, 4), np.float32)
    results = recall_at_ks(features, np.array(["a", "b", "c", "d", "e"]))
    assert all(value == 0.0 for value in results.values())


def test_recall_at_k_beyond_the_set_size_looks_at_all_other_items():
    features = np.random.RandomState(0).randn(4, 8).astype(np.float32)
    results = recall_at_ks(features, np.array(["a", "a", "b", "c"]))
    assert results["Recall@10"] == results["Recall@1000"] == 50.0


def test_recalls_are_rounded_to_two_decimals_as_the_original():
    # 2 of 7 queries find a same-label neighbour first: 28.571...% -> 28.57
    features = np.float32([[1, 0], [1, 0.01], [0, 1], [0.01, 1], [-1, 0], [-1, -0.1], [0, -1]])
    labels = np.array(["a", "a", "b", "x", "y", "z", "b"])
    assert recall_at_ks(features, labels, ks=(1,))["Recall@1"] == 28.57


def test_neighbours_without_self_drops_the_query_wherever_it_appears():
    neighbours = np.array([[3, 0, 1], [0, 2, 1], [4, 5, 6]])
    kept = neighbours_without_self(neighbours, np.array([0, 1, 2]), k=2)
    np.testing.assert_array_equal(kept, [[3, 1], [0, 2], [4, 5]])


def test_labels_are_compared_as_strings():
    # '011' and '11' are different classes (as ints they would be one)
    features = np.float32([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    results = recall_at_ks(features, np.array(["011", "11", "5", "5"]), ks=(1,))
    assert results["Recall@1"] == 50.0
