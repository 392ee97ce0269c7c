"""Leave-one-out Recall@K (SOP protocol): every item queries all the others by inner product of normalised features.

Two exact backends (`RETRIEVAL_BACKENDS`), same results up to float32 rounding of the similarities:

* `paddle` (default): similarities by query block on Paddle's compute path (`distance.InnerProducts`: oneDNN on the
  CPU, the GPU when Paddle runs on one). Recall@K needs no neighbour list: a query is a hit at K iff fewer than K
  other-label items come before its best same-label item, so each query only counts, in its row, the other-label
  items more similar than its best match (ties ordered by index). No top-K selection at all.
* `faiss`: `IndexFlatIP` top-(K+1) search (on GPU when faiss-gpu is installed and a GPU is visible).

The query itself is excluded by its index, not by dropping the first hit as the original did (wrong when a duplicate
image ties first), and K is capped at N - 1 (the original read faiss's -1 padding as a label on sets smaller than
K + 1).
"""
from collections import OrderedDict

import numpy as np

from ..utils.env import configure_faiss_threads
from .distance import InnerProducts
from .features import l2_normalize

RECALL_KS = (1, 10, 100, 1000)
QUERY_BLOCK = 4096
BLOCK_BYTES = 128 * 2 ** 20
RETRIEVAL_BACKENDS = ("paddle", "faiss")
DEFAULT_BACKEND = "paddle"
NO_MATCH = np.iinfo(np.int64).max  # rank of a query that has no other item of its label


def inner_product_index(features):
    """Exact inner-product faiss index over `features`, on GPU 0 when faiss-gpu sees a GPU. Sets faiss's CPU threads
    from OMP_NUM_THREADS first: importing paddle shrinks faiss's pool to one thread."""
    import faiss

    configure_faiss_threads()
    index = faiss.IndexFlatIP(features.shape[1])
    if faiss.get_num_gpus() > 0:
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, 0, index)
        index.referenced_objects = [resources]  # the GPU index must not outlive its resources
    index.add(features)
    return index


def neighbours_without_self(neighbours, query_ids, k):
    """First k neighbours of each row that are not the query itself (at most one of k + 1 hits is)."""
    not_self = neighbours != query_ids[:, None]
    first_k = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(neighbours, first_k, axis=1)


def same_label_pairs(labels):
    """(row, col) of every same-label pair, the item with itself included, sorted by row: the positives per query."""
    _, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    _, starts, sizes = np.unique(codes[order], return_index=True, return_counts=True)
    rows, cols = [], []
    for begin, size in zip(starts.tolist(), sizes.tolist()):
        members = order[begin:begin + size]
        rows.append(np.repeat(members, size))
        cols.append(np.tile(members, size))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    by_row = np.lexsort((cols, rows))
    return rows[by_row], cols[by_row]


def best_match_ranks(sim, first_row, pair_rows, pair_cols):
    """0-based rank of each query's most similar same-label item among all other items, for the query rows
    `first_row`, ... of the block `sim` [rows, N] (similarities, higher first; ties by item index); `pair_rows/cols`:
    the block's same-label pairs (self included). A query without any other same-label item gets `NO_MATCH`."""
    num_rows = len(sim)
    local = pair_rows - first_row
    values = sim[local, pair_cols]
    others = pair_rows != pair_cols
    best = np.full(num_rows, -np.inf, dtype=np.float32)
    np.maximum.at(best, local[others], values[others])
    has_match = np.isfinite(best)
    # other-label items above the best match = all items above it minus the same-label ones (self included)
    above = np.count_nonzero(sim > best[:, None], axis=1)
    above -= np.bincount(local, weights=values > best[local], minlength=num_rows).astype(np.int64)
    ties = np.count_nonzero(sim == best[:, None], axis=1)
    ties -= np.bincount(local, weights=values == best[local], minlength=num_rows).astype(np.int64)
    for row in np.flatnonzero(has_match & (ties > 0)):  # other-label items exactly as similar: lower index first
        in_row = local == row
        first_match = pair_cols[in_row & others & (values == best[row])].min()
        tied = np.flatnonzero(sim[row] == best[row])
        tied = tied[~np.isin(tied, pair_cols[in_row])]
        above[row] += np.count_nonzero(tied < first_match)
    return np.where(has_match, above, NO_MATCH)


def recall_from_similarities(features, labels, ks, block_bytes=BLOCK_BYTES, engine="auto"):
    """{k: number of queries whose best same-label item ranks within the top k}, by blocks of similarity rows."""
    features = l2_normalize(features)
    pair_rows, pair_cols = same_label_pairs(labels)
    products = InnerProducts(features, engine)
    rows = max(1, block_bytes // (4 * len(features)))
    ranks = np.empty(len(features), dtype=np.int64)
    for start in range(0, len(features), rows):
        stop = min(start + rows, len(features))
        pairs = slice(*np.searchsorted(pair_rows, [start, stop]))
        ranks[start:stop] = best_match_ranks(products(features[start:stop]), start, pair_rows[pairs],
                                             pair_cols[pairs])
    return {k: int(np.count_nonzero(ranks < k)) for k in ks}


def recall_from_faiss(features, labels, ks, query_block=QUERY_BLOCK):
    """{k: number of queries with a same-label item among their k nearest others}, by faiss top-k search."""
    features = l2_normalize(features)
    num_items = len(features)
    depth = min(max(ks), num_items - 1)
    index = inner_product_index(features)
    hits = {k: 0 for k in ks}
    for start in range(0, num_items, query_block):
        query_ids = np.arange(start, min(start + query_block, num_items))
        _, neighbours = index.search(features[query_ids], depth + 1)
        same_label = labels[neighbours_without_self(neighbours, query_ids, depth)] == labels[query_ids, None]
        for k in ks:
            hits[k] += int(same_label[:, :k].any(axis=1).sum())
    return hits


def recall_at_ks(features, labels, ks=RECALL_KS, query_block=QUERY_BLOCK, backend=DEFAULT_BACKEND, engine="auto"):
    """OrderedDict(Recall@k for k in ks, metric = Recall@first k), in percent rounded to 2 decimals as the original.
    `backend`: one of `RETRIEVAL_BACKENDS`; `engine`: the paddle backend's GEMM (`distance.GEMM_ENGINES`);
    `query_block`: the faiss backend's queries per search."""
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    num_items = len(features)
    if num_items < 2 or len(labels) != num_items:
        raise ValueError(f"leave-one-out retrieval needs >= 2 items and one label per item, "
                         f"got {num_items} features and {len(labels)} labels")
    if backend == "paddle":
        hits = recall_from_similarities(features, labels, ks, engine=engine)
    elif backend == "faiss":
        hits = recall_from_faiss(features, labels, ks, query_block)
    else:
        raise ValueError(f"retrieval backend must be one of {RETRIEVAL_BACKENDS}, got {backend!r}")
    results = OrderedDict((f"Recall@{k}", round(hits[k] / num_items * 100, 2)) for k in ks)
    results["metric"] = results[f"Recall@{ks[0]}"]
    return results
