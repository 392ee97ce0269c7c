"""ReID ranking (Market-1501 protocol) in bounded memory: cosine distances by query block, one partial sort per query.

Per query the gallery items with the query's pid AND camid are dropped; queries with no remaining match are skipped.
Rank-k needs only the first match and AP/INP only the matches, so each query sorts just the kept items no farther
than its farthest match (usually a small part of the gallery), and no q x g index or mask matrix is ever built. Ties are
ordered by gallery index (a stable sort); the original used an unstable full argsort, so the two can differ only on
exactly equal distances.
"""
from collections import OrderedDict

import numpy as np

from .features import l2_normalize

RANKS = (1, 5, 10)
MAX_RANK = 50
BLOCK_BYTES = 128 * 2 ** 20


def cosine_distance_blocks(query_features, gallery_features, block_bytes=BLOCK_BYTES):
    """Yield (start, dist) with dist = 1 - q̂·ĝᵀ (float32) for consecutive blocks of queries. One buffer serves all
    blocks (no page faults for a fresh array each time): use a block before asking for the next."""
    query = l2_normalize(query_features)
    gallery = l2_normalize(gallery_features)
    rows = max(1, block_bytes // (4 * max(1, gallery.shape[0])))
    buffer = np.empty((min(rows, query.shape[0]), gallery.shape[0]), dtype=np.float32)
    for start in range(0, query.shape[0], rows):
        block = query[start:start + rows]
        dist = buffer[:len(block)]
        np.matmul(block, gallery.T, out=dist)
        np.subtract(1, dist, out=dist)
        yield start, dist


def gallery_items_by_pid(g_pids):
    """{pid: ascending gallery indices of that pid}, so a query finds its matches without scanning the gallery."""
    order = np.argsort(g_pids, kind="stable")
    pids, starts = np.unique(g_pids[order], return_index=True)
    return dict(zip(pids.tolist(), np.split(order, starts[1:])))


def is_member(values, sorted_items):
    """values in `sorted_items` (ascending, non-empty), by binary search: cheaper than np.isin on small sets."""
    where = np.minimum(np.searchsorted(sorted_items, values), len(sorted_items) - 1)
    return sorted_items[where] == values


def match_ranks(dist, positives, ignored):
    """0-based ranks of the `positives` among the gallery minus `ignored` (ascending index arrays), ties by index."""
    candidates = np.flatnonzero(dist <= dist[positives].max())
    if len(ignored):
        candidates = candidates[~is_member(candidates, ignored)]
    order = candidates[np.argsort(dist[candidates], kind="stable")]
    return np.flatnonzero(is_member(order, positives))


def rank_queries(query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, block_bytes=BLOCK_BYTES):
    """Per valid query: (0-based rank of the first match, AP, INP); queries without a valid match are left out."""
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    by_pid = gallery_items_by_pid(g_pids)
    no_items = np.empty(0, dtype=np.int64)
    first, ap, inp = [], [], []
    for start, dist in cosine_distance_blocks(query_features, gallery_features, block_bytes):
        for row, query in enumerate(range(start, start + len(dist))):
            same_pid = by_pid.get(q_pids[query].item(), no_items)
            same_cam = g_camids[same_pid] == q_camids[query]
            if same_cam.all():
                continue
            ranks = match_ranks(dist[row], same_pid[~same_cam], same_pid[same_cam])
            first.append(ranks[0])
            ap.append(np.mean(np.arange(1, len(ranks) + 1) / (ranks + 1.0)))
            inp.append(len(ranks) / (ranks[-1] + 1.0))
    return np.asarray(first, dtype=np.int64), np.asarray(ap), np.asarray(inp)


def cumulative_match(first_match_ranks, max_rank):
    """CMC curve (float32 accumulation, as the original): fraction of queries matched within the top r, r=1..max_rank.

    A query stays matched beyond the end of a short kept gallery (the original's Cython path left stale values there
    and failed on Rank-10 with fewer than 10 gallery items).
    """
    hits = (np.arange(max_rank)[None, :] >= first_match_ranks[:, None]).astype(np.float32)
    return hits.sum(axis=0) / float(len(first_match_ranks))


def reid_metrics(query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, block_bytes=BLOCK_BYTES):
    """OrderedDict(Rank-1, Rank-5, Rank-10, mAP, mINP, metric) in percent; metric = (mAP + Rank-1) / 2."""
    first, ap, inp = rank_queries(query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, block_bytes)
    if len(first) == 0:
        raise ValueError("no query has a gallery match with another camera: ReID metrics are undefined")
    cmc = cumulative_match(first, MAX_RANK)
    mean_ap, mean_inp = np.mean(ap), np.mean(inp)
    results = OrderedDict((f"Rank-{r}", float(cmc[r - 1]) * 100) for r in RANKS)
    results["mAP"] = float(mean_ap) * 100
    results["mINP"] = float(mean_inp) * 100
    results["metric"] = float(mean_ap + cmc[0]) / 2 * 100
    return results
