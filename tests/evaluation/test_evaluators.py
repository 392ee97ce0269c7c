from types import SimpleNamespace

import pytest

from allinone.evaluation import FaceVerificationEvaluator, ReidEvaluator, RetrievalEvaluator
from allinone.registry import EVALUATORS


def reid_test_set(arrays):
    n = int(arrays["reid_num_query"])
    items = [(f"img_{i}.jpg", int(p), int(c)) for i, (p, c) in enumerate(zip(arrays["reid_pids"],
                                                                            arrays["reid_camids"]))]
    return SimpleNamespace(query=items[:n], gallery=items[n:], dataset_name="market1501")


def sop_test_set(arrays):
    return SimpleNamespace(query=[(f"p_{i}.jpg", str(label), 0) for i, label in enumerate(arrays["sop_labels"])],
                           gallery=[], dataset_name="sop")


@pytest.mark.parametrize("name", ["FaceVerificationEvaluator", "ReidEvaluator", "RetrievalEvaluator"])
def test_evaluators_are_built_by_name_from_the_registry(name):
    assert type(EVALUATORS.build({"name": name})).__name__ == name


def test_face_evaluator_scores_the_pairs_of_a_face_test_set(eval_reference):
    arrays, expected = eval_reference
    test_set = SimpleNamespace(images=[f"{i}.jpg" for i in range(600)], issame=arrays["face_issame"],
                               dataset_name="lfw")
    evaluator = FaceVerificationEvaluator()
    results = evaluator.score(arrays["face_feats"], test_set)
    assert results == pytest.approx(expected["face"], abs=1e-6)
    assert list(results) == list(evaluator.metric_names) == ["Accuracy", "Threshold", "metric"]


def test_reid_evaluator_takes_query_rows_first_then_gallery_rows(eval_reference):
    arrays, expected = eval_reference
    test_set = reid_test_set(arrays)
    evaluator = ReidEvaluator()
    assert evaluator.images(test_set) == [path for path, _, _ in test_set.query + test_set.gallery]
    results = evaluator.score(arrays["reid_feats"], test_set)
    assert list(results) == list(evaluator.metric_names) == ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    assert results == pytest.approx(expected["reid_python"], abs=1e-6)


def test_retrieval_evaluator_is_leave_one_out_over_the_query_set(eval_reference):
    arrays, expected = eval_reference
    evaluator = RetrievalEvaluator()
    results = evaluator.score(arrays["sop_feats"], sop_test_set(arrays))
    assert list(results) == list(evaluator.metric_names) == ["Recall@1", "Recall@10", "Recall@100", "Recall@1000",
                                                             "metric"]
    assert results == pytest.approx(expected["sop"], abs=1e-6)


def test_retrieval_evaluator_rejects_a_test_set_with_a_gallery(eval_reference):
    arrays, _ = eval_reference
    test_set = sop_test_set(arrays)
    test_set.gallery = test_set.query[:3]
    with pytest.raises(ValueError, match="non-empty gallery"):
        RetrievalEvaluator().images(test_set)


def test_a_feature_count_that_does_not_match_the_images_names_the_dataset(eval_reference):
    arrays, _ = eval_reference
    with pytest.raises(ValueError, match=r"market1501.*\[340, D\]"):
        ReidEvaluator().score(arrays["reid_feats"][:-1], reid_test_set(arrays))
