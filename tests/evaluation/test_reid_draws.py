"""ReidEvaluator(num_draws=N) on the miniature LargeVehicleID (12 vehicles x 3 images): every test image is read once
and the ReID metrics are averaged over the seeded query/gallery draws seed, ..., seed + N - 1."""
import logging
import os

import numpy as np
import pytest

from allinone.config import Config, ConfigError
from allinone.data.datasets.vehicleid import LargeVehicleID
from allinone.evaluation import ReidEvaluator, reid_metrics
from allinone.evaluation.suite import evaluate_test_set, prepare

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def feature_of(mini_root):
    """{image path: feature}: a direction per vehicle plus strong noise, so that the draws give different metrics."""
    rng = np.random.default_rng(0)
    items = LargeVehicleID(mini_root).test_items
    centres = {vid: rng.normal(size=16) for vid in sorted({vid for _, vid, _ in items})}
    return {path: (centres[vid] + 1.5 * rng.normal(size=16)).astype("float32") for path, vid, _ in items}


def features_for(paths, feature_of):
    return np.stack([feature_of[path] for path in paths])


def single_draw(mini_root, seed, feature_of):
    test_set = LargeVehicleID(mini_root, seed=seed)
    evaluator = ReidEvaluator()
    return evaluator.score(features_for(evaluator.images(test_set), feature_of), test_set)


def eval_entry(**keys):
    return Config({"name": "LargeVehicleID", "dataset": "LargeVehicleID", "head": "task3",
                   "evaluator": "ReidEvaluator", **keys}, source="test table")


def test_n_draws_average_each_metric_over_the_single_draws_with_seeds_seed_to_seed_plus_n_minus_1(mini_root,
                                                                                                  feature_of):
    singles = [single_draw(mini_root, seed, feature_of) for seed in (3, 4, 5, 6)]
    assert len({round(draw["mAP"], 6) for draw in singles}) > 1  # the draws differ, so the mean means something
    test_set = LargeVehicleID(mini_root, seed=3)
    evaluator = ReidEvaluator(num_draws=4)
    averaged = evaluator.score(features_for(evaluator.images(test_set), feature_of), test_set)
    assert list(averaged) == list(ReidEvaluator.metric_names)
    for name in ReidEvaluator.metric_names:
        assert averaged[name] == pytest.approx(np.mean([draw[name] for draw in singles]), abs=1e-9), name


def test_several_draws_read_each_test_image_once_in_test_list_order(mini_root):
    test_set = LargeVehicleID(mini_root, seed=0)
    images = ReidEvaluator(num_draws=5).images(test_set)
    assert images == [path for path, _, _ in test_set.test_items]
    assert len(set(images)) == len(images) == 36


def test_one_draw_scores_the_seeds_query_rows_against_its_gallery_rows(mini_root, feature_of):
    test_set = LargeVehicleID(mini_root, seed=7)
    evaluator = ReidEvaluator(num_draws=1)
    images = evaluator.images(test_set)
    assert images == [path for path, _, _ in test_set.query + test_set.gallery]
    (_, q_pids, q_cams), (_, g_pids, g_cams) = zip(*test_set.query), zip(*test_set.gallery)
    expected = reid_metrics(features_for([p for p, _, _ in test_set.query], feature_of),
                            features_for([p for p, _, _ in test_set.gallery], feature_of),
                            np.array(q_pids), np.array(g_pids), np.array(q_cams), np.array(g_cams))
    assert evaluator.score(features_for(images, feature_of), test_set) == expected


def test_each_draws_rank1_and_map_and_the_spread_over_draws_are_logged(mini_root, feature_of, caplog):
    test_set = LargeVehicleID(mini_root, seed=0)
    evaluator = ReidEvaluator(num_draws=3)
    with caplog.at_level(logging.INFO, logger="allinone.evaluation"):
        evaluator.score(features_for(evaluator.images(test_set), feature_of), test_set)
    # only the evaluator's records: the reader logs its summary too once another test has enabled INFO
    messages = [record.getMessage() for record in caplog.records if record.name == "allinone.evaluation"]
    assert [m.split(":")[0] for m in messages[:3]] == [f"vehicleid draw seed={seed}" for seed in (0, 1, 2)]
    assert all("Rank-1=" in m and "mAP=" in m for m in messages[:3])
    assert messages[3].startswith("vehicleid over 3 draws (seeds 0..2)") and "mAP=" in messages[3] and "±" in messages[3]


def test_the_eval_table_entry_passes_evaluator_args_and_the_model_sees_each_test_image_once(mini_root):
    import paddle

    from allinone import build_model, load_config

    test_set, evaluator = prepare(eval_entry(dataset_args={"seed": 2}, evaluator_args={"num_draws": 3}), mini_root)
    assert evaluator.num_draws == 3 and test_set.seed == 2
    paddle.seed(0)
    model = build_model(load_config(os.path.join(REPO, "configs", "allinone", "tiny_eval.yaml")))
    model.eval()
    seen = []
    hook = model.backbone.register_forward_post_hook(lambda layer, inputs, output: seen.append(inputs[0].shape[0]))
    results = evaluate_test_set(model, eval_entry(), test_set, evaluator, batch_size=8, num_workers=0)
    hook.remove()
    assert sum(seen) == len(test_set.test_items) == 36
    assert list(results) == list(ReidEvaluator.metric_names)


def test_several_draws_on_a_test_set_with_one_fixed_split_is_a_config_error_before_inference(mini_root):
    entry = eval_entry(dataset="Market1501", evaluator_args={"num_draws": 10})
    with pytest.raises(ConfigError, match=r"LargeVehicleID.*market1501.*one fixed split"):
        prepare(entry, mini_root)


@pytest.mark.parametrize("num_draws", [0, 2.5, "10"])
def test_a_num_draws_that_is_not_a_positive_integer_is_a_config_error_naming_the_entry(mini_root, num_draws):
    with pytest.raises(ConfigError, match=r"test table.*LargeVehicleID.*num_draws must be an integer >= 1"):
        prepare(eval_entry(evaluator_args={"num_draws": num_draws}), mini_root)


def test_an_unknown_evaluator_argument_is_a_config_error_naming_the_entry(mini_root):
    with pytest.raises(ConfigError, match=r"LargeVehicleID.*evaluator_args \{'draws': 3\}"):
        prepare(eval_entry(evaluator_args={"draws": 3}), mini_root)
