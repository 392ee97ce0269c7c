"""Leave-one-out Recall@K (SOP protocol): every item queries all the others by inner product of normalised features.

Exact search with faiss `IndexFlatIP` (on GPU when faiss-gpu is installed and a GPU is visible). The query itself is
excluded by its index, not by dropping the first hit as the original did (wrong when a duplicate image ties first),
and K is capped at N - 1 (the original read faiss's -1 padding as a label on sets smaller than K + 1).
"""
from collections import OrderedDict

import numpy as np

from ..utils.env import configure_faiss_threads
from .features import l2_normalize

RECALL_KS = (1, 10, 100, 1000)
QUERY_BLOCK = 4096


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


def recall_at_ks(features, labels, ks=RECALL_KS, query_block=QUERY_BLOCK):
    """OrderedDict(Recall@k for k in ks, metric = Recall@first k), in percent rounded to 2 decimals as the original."""
    features = l2_normalize(features)
    labels = np.asarray(labels)
    num_items = len(features)
    if num_items < 2 or len(labels) != num_items:
        raise ValueError(f"leave-one-out retrieval needs >= 2 items and one label per item, "
                         f"got {num_items} features and {len(labels)} labels")
    depth = min(max(ks), num_items - 1)
    index = inner_product_index(features)
    hits = {k: 0 for k in ks}
    for start in range(0, num_items, query_block):
        query_ids = np.arange(start, min(start + query_block, num_items))
        _, neighbours = index.search(features[query_ids], depth + 1)
        same_label = labels[neighbours_without_self(neighbours, query_ids, depth)] == labels[query_ids, None]
        for k in ks:
            hits[k] += int(same_label[:, :k].any(axis=1).sum())
    results = OrderedDict((f"Recall@{k}", round(hits[k] / num_items * 100, 2)) for k in ks)
    results["metric"] = results[f"Recall@{ks[0]}"]
    return results
