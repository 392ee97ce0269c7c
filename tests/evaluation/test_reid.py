import numpy as np
import pytest

from allinone.evaluation.reid import cumulative_match, rank_queries, reid_metrics


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


def random_reid_set(seed, num_query=30, num_gallery=200, num_ids=12, num_cams=4, dim=16):
    rng = np.random.RandomState(seed)
    centers = rng.randn(num_ids, dim)
    pids = rng.randint(0, num_ids, num_query + num_gallery)
    camids = rng.randint(0, num_cams, num_query + num_gallery)
    feats = (centers[pids] + 1.2 * rng.randn(len(pids), dim)).astype(np.float32)
    return (feats[:num_query], feats[num_query:], pids[:num_query], pids[num_query:], camids[:num_query],
            camids[num_query:])


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_sort_ranking_equals_a_full_argsort_over_several_query_blocks(seed):
    q, g, q_pids, g_pids, q_cams, g_cams = random_reid_set(seed)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    expected = full_argsort_metrics(1 - qn @ gn.T, q_pids, g_pids, q_cams, g_cams)
    ours = rank_queries(q, g, q_pids, g_pids, q_cams, g_cams, block_bytes=7 * 4 * len(g))  # blocks of 7 queries
    np.testing.assert_array_equal(ours[0], expected[0])
    np.testing.assert_allclose(ours[1], expected[1], rtol=1e-12)
    np.testing.assert_allclose(ours[2], expected[2], rtol=1e-12)


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
