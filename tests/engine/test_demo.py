"""tools/demo.py's verdict: the demo passes only when every headline metric beats the untrained model's."""
import pytest

import demo  # tools/demo.py (tools/ is on sys.path, tests/conftest.py)

UNTRAINED = {"task1.lfw.Accuracy": 60.0, "task1.lfw.Threshold": 0.4, "task3.market1501.Rank-1": 20.0,
             "task3.market1501.mAP": 15.0, "task3.market1501.mINP": 5.0, "task4.sop.Recall@1": 10.0,
             "task4.sop.Recall@10": 30.0}


def trained(**changes):
    metrics = {key: value + 10.0 for key, value in UNTRAINED.items()}
    metrics.update({key.replace("__", "."): value for key, value in changes.items()})
    return metrics


def test_every_headline_metric_better_is_learned():
    assert demo.headline_keys(UNTRAINED) == ["task1.lfw.Accuracy", "task3.market1501.Rank-1", "task3.market1501.mAP",
                                             "task4.sop.Recall@1"]
    assert demo.not_improved(UNTRAINED, trained()) == []


def test_one_headline_metric_not_better_is_named_even_when_the_mean_improves():
    after = trained(task3__market1501__mAP=15.0)  # equal is not better
    assert demo.not_improved(UNTRAINED, after) == ["task3.market1501.mAP"]
    _, mean_before, mean_after = demo.comparison_table(UNTRAINED, after)
    assert mean_after > mean_before


def test_other_metrics_do_not_count():
    assert demo.not_improved(UNTRAINED, trained(task1__lfw__Threshold=0.0, task3__market1501__mINP=0.0)) == []


def test_evaluations_with_different_metrics_are_an_error():
    with pytest.raises(ValueError, match="same headline metrics"):
        demo.not_improved({"task1.lfw.Accuracy": 50.0}, trained())
