import numpy as np
import pytest
from sklearn.model_selection import KFold

from allinone.evaluation.face import contiguous_folds, face_verification


def test_reproduces_the_original_face_evaluator_results(eval_reference):
    arrays, expected = eval_reference
    results = face_verification(arrays["face_feats"], arrays["face_issame"])
    assert list(results) == ["Accuracy", "Threshold", "metric"]
    for name, value in expected["face"].items():
        assert results[name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.parametrize("num_pairs", [300, 6000, 7003])
def test_folds_are_the_contiguous_folds_of_sklearn_kfold_without_shuffle(num_pairs):
    ours = list(contiguous_folds(num_pairs, 10))
    theirs = list(KFold(n_splits=10, shuffle=False).split(np.arange(num_pairs)))
    assert len(ours) == len(theirs) == 10
    for (train, test), (train_ref, test_ref) in zip(ours, theirs):
        np.testing.assert_array_equal(train, train_ref)
        np.testing.assert_array_equal(test, test_ref)


def test_identical_pairs_need_a_threshold_above_zero_and_the_smallest_perfect_one_is_chosen():
    # same pairs at distance 0, different pairs at distance 2 (orthogonal): every threshold in (0, 2] is perfect;
    # "same" iff dist < threshold, so 0.00 fails and the first maximum is 0.01
    rng = np.random.RandomState(0)
    rows = []
    for i in range(100):
        base = np.zeros(8, np.float32)
        base[i % 8] = rng.uniform(0.5, 2)
        other = np.zeros(8, np.float32)
        other[(i + 1) % 8] = 1
        rows += [base, base * 3] if i % 2 == 0 else [base, other]
    issame = np.arange(100) % 2 == 0
    results = face_verification(np.stack(rows), issame)
    assert results["Accuracy"] == 100.0
    assert results["Threshold"] == pytest.approx(0.01)


def test_only_as_many_pairs_as_labels_are_scored():
    rng = np.random.RandomState(1)
    features = rng.randn(40, 4).astype(np.float32)
    issame = rng.rand(20) > 0.5
    truncated = face_verification(features, issame[:10])
    assert truncated == face_verification(features[:20], issame[:10])


def test_odd_number_of_feature_rows_is_an_error():
    with pytest.raises(ValueError, match="pairs"):
        face_verification(np.ones((11, 4), np.float32), np.ones(5, bool))
