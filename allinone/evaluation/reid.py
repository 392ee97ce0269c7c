"""ReID ranking (Market-1501 protocol) in bounded memory: cosine distances by query block, exact ranks per query.

Per query the gallery items with the query's pid AND camid are dropped; queries with no remaining match are skipped.
Rank-k needs only the first match and AP/INP only the matches' positions, so no query's gallery is ever argsorted:
each match's rank is the number of kept items nearer than it (ties ordered by gallery index, as a stable sort), read
from the sorted distances of the items no farther than the farthest match (few when the matches sit near the top;
the whole row when they sit deep). No q x g index or mask matrix is ever built. The original used an unstable full
argsort, so the two can differ only on exactly equal distances.

The distances come from Paddle (`distance.InnerProducts`: oneDNN on the CPU, the GPU when Paddle runs on one), not from
NumPy's BLAS.
"""
from collections import OrderedDict

import numpy as np

from .distance import InnerProducts
from .features import l2_normalize, row_norms

RANKS = (1, 5, 10)
MAX_RANK = 50
BLOCK_BYTES = 64 * 2 ** 20
# a query sorts only its candidates (items no farther than its farthest match) unless they are more than this
# fraction of the gallery: then sorting the whole row is cheaper than first gathering them
FULL_SORT_FRACTION = 0.5


def cosine_distance_blocks(query_features, gallery_features, block_bytes=BLOCK_BYTES, engine="auto"):
    """Yield (start, dist) with dist = 1 - q̂·ĝᵀ (float32) for consecutive blocks of queries, about `block_bytes`
    each. The gallery is not copied: its rows are normalised by dividing the product's columns by their norms. One
    buffer serves all blocks (no page faults for a fresh array each time): use a block before asking for the next."""
    gallery = np.ascontiguousarray(gallery_features, dtype=np.float32)
    gallery_norms = row_norms(gallery)
    products = InnerProducts(gallery, engine)
    rows = max(1, block_bytes // (4 * max(1, gallery.shape[0])))
    buffer = np.empty((min(rows, len(query_features)), gallery.shape[0]), dtype=np.float32)
    for start in range(0, len(query_features), rows):
        product = products(l2_normalize(query_features[start:start + rows]))
        dist = buffer[:len(product)]
        np.divide(product, gallery_norms, out=dist)
        del product
        np.subtract(1, dist, out=dist)
        yield start, dist


def gallery_items_by_pid(g_pids):
    """{pid: ascending gallery indices of that pid}, so a query finds its matches without scanning the gallery."""
    order = np.argsort(g_pids, kind="stable")
    pids, starts = np.unique(g_pids[order], return_index=True)
    return dict(zip(pids.tolist(), np.split(order, starts[1:])))


def items_before(dist, values, indices, items):
    """For each (value, index) pair: how many of `items` (gallery indices) come before it in the order
    (distance, gallery index)."""
    item_dist = dist[items]
    earlier = (item_dist[None, :] < values[:, None]) | \
        ((item_dist[None, :] == values[:, None]) & (items[None, :] < indices[:, None]))
    return np.count_nonzero(earlier, axis=1)


def match_ranks(dist, positives, ignored):
    """Ascending 0-based ranks of the `positives` in the gallery minus `ignored` (index arrays), sorted by distance
    with ties by gallery index."""
    match_dist = dist[positives]
    order = np.lexsort((positives, match_dist))  # the matches in ranking order
    positives, match_dist = positives[order], match_dist[order]
    candidates = np.count_nonzero(dist <= match_dist[-1])
    if candidates > FULL_SORT_FRACTION * len(dist):
        nearer_sorted = np.sort(dist)
    else:
        nearer_sorted = np.sort(dist[dist <= match_dist[-1]])
    ranks = np.searchsorted(nearer_sorted, match_dist, side="left")  # items strictly nearer, the ignored included
    tied = np.searchsorted(nearer_sorted, match_dist, side="right") - ranks
    for k in np.flatnonzero(tied > 1):  # other items at exactly this distance: those of lower index come first
        ranks[k] += np.count_nonzero(np.flatnonzero(dist == match_dist[k]) < positives[k])
    if len(ignored):
        ranks -= items_before(dist, match_dist, positives, ignored)
    return ranks


def rank_queries(query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, block_bytes=BLOCK_BYTES,
                 engine="auto"):
    """Per valid query: (0-based rank of the first match, AP, INP); queries without a valid match are left out.
    `engine`: the distance GEMM's (`distance.GEMM_ENGINES`)."""
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    by_pid = gallery_items_by_pid(g_pids)
    no_items = np.empty(0, dtype=np.int64)
    first, ap, inp = [], [], []
    for start, dist in cosine_distance_blocks(query_features, gallery_features, block_bytes, engine):
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


def reid_metrics(query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, block_bytes=BLOCK_BYTES,
                 engine="auto"):
    """OrderedDict(Rank-1, Rank-5, Rank-10, mAP, mINP, metric) in percent; metric = (mAP + Rank-1) / 2."""
    first, ap, inp = rank_queries(query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, block_bytes,
                                  engine)
    if len(first) == 0:
        raise ValueError("no query has a gallery match with another camera: ReID metrics are undefined")
    cmc = cumulative_match(first, MAX_RANK)
    mean_ap, mean_inp = np.mean(ap), np.mean(inp)
    results = OrderedDict((f"Rank-{r}", float(cmc[r - 1]) * 100) for r in RANKS)
    results["mAP"] = float(mean_ap) * 100
    results["mINP"] = float(mean_inp) * 100
    results["metric"] = float(mean_ap + cmc[0]) / 2 * 100
    return results
