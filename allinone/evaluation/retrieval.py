"""Leave-one-out Recall@K (SOP protocol): every item queries all the others by inner product of normalised features.

Two exact backends (`RETRIEVAL_BACKENDS`), same results up to float32 rounding of the similarities:

* `paddle` (default): similarities on Paddle's compute path (`distance.InnerProducts`: oneDNN on the CPU, the GPU
  when Paddle runs on one). Recall@K needs no neighbour list: a query is a hit at K iff fewer than K other-label items
  come before its best same-label item, so each query only counts the other-label items more similar than its best
  match (ties ordered by index): no top-K selection, and only the upper half of the symmetric similarity matrix is
  computed (half the GEMM of a top-K search).
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


def same_label_similarities(features, pair_rows, pair_cols, chunk=2 ** 15):
    """The similarity of each same-label pair (row-wise dot products, in chunks): one value per pair, the same for
    (i, j) and (j, i). The ranking compares other-label items against these values."""
    values = np.empty(len(pair_rows), dtype=np.float32)
    for start in range(0, len(pair_rows), chunk):
        rows, cols = pair_rows[start:start + chunk], pair_cols[start:start + chunk]
        values[start:start + chunk] = np.einsum("ij,ij->i", features[rows], features[cols])
    return values


def best_matches(num_items, pair_rows, pair_cols, pair_values):
    """Per item: the similarity of its most similar other same-label item (-inf if none) and that item's index
    (the lowest index among equals)."""
    others = pair_rows != pair_cols
    rows, cols, values = pair_rows[others], pair_cols[others], pair_values[others]
    best = np.full(num_items, -np.inf, dtype=np.float32)
    np.maximum.at(best, rows, values)
    first = np.full(num_items, num_items, dtype=np.int64)
    is_best = values == best[rows]
    np.minimum.at(first, rows[is_best], cols[is_best])
    return best, first


def count_tied_before(tied, positives, first_match):
    """Other-label items among `tied` (indices at exactly the best match's similarity) that rank before the best
    match: those of lower index."""
    return np.count_nonzero((tied < first_match) & ~np.isin(tied, positives))


def best_match_ranks(features, labels, block_bytes=BLOCK_BYTES, engine="auto"):
    """0-based rank of each item's best same-label item among all other items (similarity descending, ties by
    index), `NO_MATCH` for an item alone in its label.

    The rank is the number of other-label items more similar than the best match. The similarity matrix is symmetric,
    so only its upper part is computed, by blocks of rows [start, stop) x columns [start, N): each block counts for
    its own rows along the rows and for the later items down its columns (half the GEMM of a row-by-row pass).
    Same-label entries of the blocks are taken out of the counts (their similarity is `same_label_similarities`').
    """
    num_items = len(features)
    pair_rows, pair_cols = same_label_pairs(labels)
    best, first_match = best_matches(num_items, pair_rows, pair_cols,
                                     same_label_similarities(features, pair_rows, pair_cols))
    products = InnerProducts(features, engine)
    above = np.zeros(num_items, dtype=np.int64)
    rows = max(1, block_bytes // (4 * num_items))
    for start in range(0, num_items, rows):
        stop = min(start + rows, num_items)
        sim = products(features[start:stop], first_column=start)  # [stop - start, N - start], columns from start
        mine, later = best[start:stop, None], best[None, stop:]
        above[start:stop] += np.count_nonzero(sim > mine, axis=1)
        above[stop:] += np.count_nonzero(sim[:, stop - start:] > later, axis=0)
        ties_mine = np.count_nonzero(sim == mine, axis=1)
        ties_later = np.count_nonzero(sim[:, stop - start:] == later, axis=0)
        # same-label entries of this block: (row in the block, column >= start); the ones past the block also count
        # down their column, for the later item
        pairs = slice(*np.searchsorted(pair_rows, [start, stop]))
        p_rows, p_cols = pair_rows[pairs], pair_cols[pairs]
        keep = p_cols >= start
        p_rows, p_cols = p_rows[keep], p_cols[keep]
        values = sim[p_rows - start, p_cols - start]
        np.subtract.at(above, p_rows, values > best[p_rows])
        np.subtract.at(ties_mine, p_rows - start, values == best[p_rows])
        down = p_cols >= stop
        np.subtract.at(above, p_cols[down], values[down] > best[p_cols[down]])
        np.subtract.at(ties_later, p_cols[down] - stop, values[down] == best[p_cols[down]])
        # other-label items exactly as similar as the best match (rare): those of lower index rank before it
        for row in np.flatnonzero(ties_mine > 0) + start:
            tied = start + np.flatnonzero(sim[row - start] == best[row])
            above[row] += count_tied_before(tied, same_label_of(row, pair_rows, pair_cols), first_match[row])
        for item in np.flatnonzero(ties_later > 0) + stop:
            tied = start + np.flatnonzero(sim[:, item - start] == best[item])
            above[item] += count_tied_before(tied, same_label_of(item, pair_rows, pair_cols), first_match[item])
    return np.where(np.isfinite(best), above, NO_MATCH)


def same_label_of(item, pair_rows, pair_cols):
    """Indices of the items with `item`'s label (itself included)."""
    return pair_cols[slice(*np.searchsorted(pair_rows, [item, item + 1]))]


def recall_from_similarities(features, labels, ks, block_bytes=BLOCK_BYTES, engine="auto"):
    """{k: number of queries whose best same-label item ranks within the top k}."""
    ranks = best_match_ranks(l2_normalize(features), labels, block_bytes, engine)
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
