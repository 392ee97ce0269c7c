import numpy as np
import pytest

from allinone.evaluation import reid
from allinone.evaluation.reid import cosine_distance_blocks, cumulative_match, rank_queries, reid_metrics


def full_argsort_metrics(dist, q_pids, g_pids, q_camids, g_camids):
    """The protocol written the plain way: full stable argsort per query, drop same pid+camid, skip unmatched."""
    first, ap, inp = [], [], []
    for i in range(len(dist)):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order] == q_pids[i])[keep]
        if not matches.any():
            continue
        positions = np.flatnonzero(matches)
        first.append(positions[0])
        ap.append(np.mean(np.cumsum(matches)[positions] / (positions + 1.0)))
        inp.append(matches.sum() / (positions[-1] + 1.0))
    return np.array(first), np.array(ap), np.array(inp)


def random_reid_set(seed, num_query=30, num_gallery=200, num_ids=12, num_cams=4, dim=16, noise=1.2, levels=None):
    """Clustered features; `levels` keeps 2 dimensions rounded to integers in [-levels, levels], so that many
    features coincide (or are multiples of one another) and distances tie exactly."""
    rng = np.random.RandomState(seed)
    centers = rng.randn(num_ids, dim)
    pids = rng.randint(0, num_ids, num_query + num_gallery)
    camids = rng.randint(0, num_cams, num_query + num_gallery)
    feats = (centers[pids] + noise * rng.randn(len(pids), dim)).astype(np.float32)
    if levels:
        feats = np.clip(np.round(feats[:, :2]), -levels, levels).astype(np.float32)
    return (feats[:num_query], feats[num_query:], pids[:num_query], pids[num_query:], camids[:num_query],
            camids[num_query:])


def our_distances(q, g, engine="auto"):
    return np.concatenate([dist.copy() for _, dist in cosine_distance_blocks(q, g, engine=engine)])


def test_reproduces_the_original_python_ranking_results(eval_reference):
    arrays, expected = eval_reference
    n = int(arrays["reid_num_query"])
    feats, pids, camids = arrays["reid_feats"], arrays["reid_pids"], arrays["reid_camids"]
    results = reid_metrics(feats[:n], feats[n:], pids[:n], pids[n:], camids[:n], camids[n:])
    assert list(results) == ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    for name, value in expected["reid_python"].items():
        assert results[name] == pytest.approx(value, abs=1e-6), name


def test_rank5_keeps_the_float32_accumulation_of_the_original(eval_reference):
    arrays, expected = eval_reference
    n = int(arrays["reid_num_query"])
    feats, pids, camids = arrays["reid_feats"], arrays["reid_pids"], arrays["reid_camids"]
    results = reid_metrics(feats[:n], feats[n:], pids[:n], pids[n:], camids[:n], camids[n:])
    assert results["Rank-5"] == expected["reid_python"]["Rank-5"] == float(np.float32(0.975)) * 100


# shallow matches, deep matches (noise 6: mAP ~20%), and quantised features where many distances tie exactly;
# full_sort_fraction 0 / 1 forces the whole-row sort / the candidates-only sort for every query
@pytest.mark.parametrize("engine", ["inference", "dygraph"])
@pytest.mark.parametrize("full_sort_fraction", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed,noise,levels", [(0, 1.2, None), (1, 1.2, None), (2, 6.0, None), (3, 1.2, 3),
                                               (4, 6.0, 2)])
def test_ranking_equals_a_full_stable_argsort_of_the_same_distances(monkeypatch, engine, full_sort_fraction, seed,
                                                                    noise, levels):
    q, g, q_pids, g_pids, q_cams, g_cams = random_reid_set(seed, noise=noise, levels=levels)
    dist = our_distances(q, g, engine)
    if levels:
        assert len(np.unique(dist)) < dist.size / 4  # the case is about ties
    expected = full_argsort_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    monkeypatch.setattr(reid, "FULL_SORT_FRACTION", full_sort_fraction)
    ours = rank_queries(q, g, q_pids, g_pids, q_cams, g_cams, block_bytes=7 * 4 * len(g),  # blocks of 7 queries
                        engine=engine)
    np.testing.assert_array_equal(ours[0], expected[0])
    np.testing.assert_array_equal(ours[1], expected[1])
    np.testing.assert_array_equal(ours[2], expected[2])


def test_distances_are_cosine_distances_to_float32_rounding():
    q, g = random_reid_set(0)[:2]
    q64, g64 = q.astype(np.float64), g.astype(np.float64)
    expected = 1 - (q64 / np.linalg.norm(q64, axis=1, keepdims=True)) @ (g64 / np.linalg.norm(g64, axis=1,
                                                                                              keepdims=True)).T
    for engine in ("inference", "dygraph"):
        np.testing.assert_allclose(our_distances(q, g, engine), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("engine", ["inference", "dygraph"])
def test_reference_results_with_either_distance_engine(eval_reference, engine):
    arrays, expected = eval_reference
    n = int(arrays["reid_num_query"])
    feats, pids, camids = arrays["reid_feats"], arrays["reid_pids"], arrays["reid_camids"]
    results = reid_metrics(feats[:n], feats[n:], pids[:n], pids[n:], camids[:n], camids[n:], engine=engine)
    for name in ("Rank-1", "Rank-5", "Rank-10"):
        assert results[name] == expected["reid_python"][name], name
    for name in ("mAP", "mINP", "metric"):
        assert results[name] == pytest.approx(expected["reid_python"][name], abs=1e-6), name


def test_gallery_items_with_the_query_pid_and_camid_are_ignored():
    q = np.array([[1, 0]], np.float32)
    g = np.array([[1, 0], [1, 0.1], [1, 0.2]], np.float32)  # nearest first
    # the nearest is the same person seen by the same camera (dropped), then a stranger, then the true match
    results = reid_metrics(q, g, [7], [7, 3, 7], [1], [1, 2, 2])
    assert results["Rank-1"] == 0.0
    assert results["Rank-5"] == 100.0
    assert results["mAP"] == pytest.approx(50.0)
    assert results["mINP"] == pytest.approx(50.0)
    assert results["metric"] == pytest.approx(25.0)


def test_queries_without_a_match_from_another_camera_are_skipped():
    q = np.array([[1, 0], [0, 1]], np.float32)
    g = np.array([[1, 0], [0, 1]], np.float32)
    # query 2 (pid 5) is only seen by its own camera in the gallery: not counted at all
    results = reid_metrics(q, g, [4, 5], [4, 5], [0, 0], [1, 0])
    assert results["Rank-1"] == 100.0
    assert results["mAP"] == 100.0


def test_no_valid_query_at_all_is_an_error():
    q = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="no query"):
        reid_metrics(q, q, [1, 2], [1, 2], [0, 0], [0, 0])


def test_ties_are_ranked_by_gallery_index():
    q = np.array([[1, 0]], np.float32)
    g = np.array([[2, 0], [3, 0], [0, 1]], np.float32)  # items 0 and 1 at exactly the same cosine distance
    match_first = reid_metrics(q, g, [1], [1, 2, 3], [0], [1, 1, 1])
    match_second = reid_metrics(q, g, [1], [2, 1, 3], [0], [1, 1, 1])
    assert match_first["Rank-1"] == 100.0
    assert match_second["Rank-1"] == 0.0 and match_second["mAP"] == pytest.approx(50.0)


def test_a_gallery_of_fewer_than_ten_items_still_reports_rank_10():
    q = np.array([[1, 0], [0, 1]], np.float32)
    g = np.array([[0, 1], [1, 0.5], [1, 0]], np.float32)
    results = reid_metrics(q, g, [1, 2], [1, 2, 1], [0, 0], [1, 1, 1])
    # query 1 matches at rank 1, query 2 at rank 2: matched queries stay matched past the gallery's end
    assert (results["Rank-1"], results["Rank-5"], results["Rank-10"]) == (50.0, 100.0, 100.0)


def test_cmc_counts_a_query_from_its_first_match_on():
    cmc = cumulative_match(np.array([0, 2, 2, 60]), max_rank=50)
    np.testing.assert_array_equal(cmc[:4], np.float32([0.25, 0.25, 0.75, 0.75]))
    assert cmc[-1] == np.float32(0.75) and cmc.dtype == np.float32
