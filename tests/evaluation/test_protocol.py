"""The evaluator protocol: bind / reset / process(inputs, outputs) / evaluate(), batches in any order, every image
once, non-finite outputs refused; ClassificationEvaluator and the ImageClassification test set written against it."""
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from allinone.evaluation import ClassificationEvaluator, FaceVerificationEvaluator, ReidEvaluator
from allinone.evaluation.evaluators import NonFiniteOutputError
from allinone.registry import DATASETS, EVALUATORS


def reid_test_set(arrays):
    n = int(arrays["reid_num_query"])
    items = [(f"img_{i}.jpg", int(p), int(c)) for i, (p, c) in enumerate(zip(arrays["reid_pids"],
                                                                            arrays["reid_camids"]))]
    return SimpleNamespace(query=items[:n], gallery=items[n:], dataset_name="market1501")


def feed_in_shuffled_batches(evaluator, test_set, outputs, batch_size=7, seed=0):
    """process() the rows of `outputs` in batches of a random permutation, as ranks/workers may deliver them."""
    evaluator.bind(test_set)
    order = np.random.default_rng(seed).permutation(len(outputs))
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        evaluator.process({"index": index, "images": None}, outputs[index])
    return evaluator.evaluate()


def test_reid_metrics_through_process_batches_in_any_order_equal_the_reference(eval_reference):
    arrays, expected = eval_reference
    results = feed_in_shuffled_batches(ReidEvaluator(), reid_test_set(arrays), arrays["reid_feats"])
    assert results == pytest.approx(expected["reid_python"], abs=1e-6)


def test_reset_forgets_what_was_processed(eval_reference):
    arrays, expected = eval_reference
    test_set = SimpleNamespace(images=[f"{i}.jpg" for i in range(600)], issame=arrays["face_issame"],
                               dataset_name="lfw")
    evaluator = FaceVerificationEvaluator()
    feed_in_shuffled_batches(evaluator, test_set, np.random.default_rng(1).normal(size=(600, 8)).astype("float32"))
    assert feed_in_shuffled_batches(evaluator, test_set, arrays["face_feats"]) == pytest.approx(expected["face"],
                                                                                                abs=1e-6)


def test_an_image_processed_twice_or_never_is_an_error(eval_reference):
    arrays, _ = eval_reference
    evaluator = ReidEvaluator().bind(reid_test_set(arrays))
    rows = np.arange(len(arrays["reid_feats"]))
    evaluator.process({"index": rows[:-1]}, arrays["reid_feats"][:-1])
    evaluator.process({"index": rows[:1]}, arrays["reid_feats"][:1])
    with pytest.raises(ValueError, match=r"'market1501'.*missing \[339\], repeated \[0\]"):
        evaluator.evaluate()


def test_non_finite_features_stop_evaluation_naming_the_test_set_and_the_row_count(eval_reference):
    arrays, _ = eval_reference
    features = arrays["reid_feats"].copy()
    features[[3, 10, 11]] = np.nan
    features[20, 0] = np.inf
    with pytest.raises(NonFiniteOutputError, match=r"'market1501'.*for 4 of 340 images \(first rows \[3, 10, 11, 20\]"):
        ReidEvaluator().score(features, reid_test_set(arrays))


def classification_set(labels):
    return SimpleNamespace(items=[(f"{i}.png", label) for i, label in enumerate(labels)], dataset_name="tiny")


def test_classification_top1_is_the_share_of_argmax_equal_to_the_label():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    scores = np.eye(4, dtype="float32")[labels] + 0.1
    scores[[2, 5, 7]] = np.eye(4, dtype="float32")[[0, 0, 0]]  # three wrong (labels 2, 1, 3 predicted 0)
    evaluator = EVALUATORS.build({"name": "ClassificationEvaluator"})
    results = feed_in_shuffled_batches(evaluator, classification_set(labels), scores, batch_size=3)
    assert list(results) == ["Acc@1", "metric"] and results["Acc@1"] == pytest.approx(70.0)


def test_classification_refuses_labels_the_head_cannot_score_and_non_finite_scores():
    evaluator = ClassificationEvaluator()
    with pytest.raises(ValueError, match=r"'tiny': labels span 0\.\.5 but the head gives 4 class scores"):
        feed_in_shuffled_batches(evaluator, classification_set([0, 5]), np.ones((2, 4), "float32"))
    scores = np.ones((3, 4), "float32")
    scores[1, 2] = np.nan
    with pytest.raises(NonFiniteOutputError, match=r"'tiny'.*for 1 of 3 images"):
        feed_in_shuffled_batches(evaluator, classification_set([0, 1, 2]), scores)


def write_png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, "uint8")).save(path)


def test_image_classification_reads_a_folder_per_class_in_sorted_order(tmp_path):
    for name, count in (("dog", 2), ("cat", 3)):
        for i in range(count):
            write_png(tmp_path / "pets" / name / f"{i}.png", i)
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    test_set = DATASETS.build({"name": "ImageClassification", "root": str(tmp_path), "folder": "pets"})
    assert test_set.classes == ["cat", "dog"]
    assert [(p.split("pets/")[1], label) for p, label in test_set.items] == [
        ("cat/0.png", 0), ("cat/1.png", 0), ("cat/2.png", 0), ("dog/0.png", 1), ("dog/1.png", 1)]
    assert ClassificationEvaluator().images(test_set) == [p for p, _ in test_set.items]


def test_image_classification_list_file_errors_name_the_file_and_line(tmp_path):
    write_png(tmp_path / "set" / "a.png", 0)
    (tmp_path / "set" / "test.txt").write_text("a.png 3\na.png three\n")
    from allinone.data.datasets import DatasetLayoutError

    with pytest.raises(DatasetLayoutError, match=r"test\.txt, line 2: the label must be an integer, got 'three'"):
        DATASETS.build({"name": "ImageClassification", "root": str(tmp_path), "folder": "set",
                        "list_file": "test.txt"})
