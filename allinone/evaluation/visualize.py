"""Pictures of an evaluation: rank lists (ReID, SOP), ROC and 10-fold threshold curves (faces), measured vs published.

Drawn headless (matplotlib Figures on the Agg canvas, pyplot untouched) from the features the evaluators kept, so
nothing runs twice through the model. Rank lists are composed pixel by pixel (numpy) and placed 1:1 in the figure
(`figimage`), so a frame's colour in the PNG is exactly `MATCH_RGB` (same identity / class as the query) or
`MISMATCH_RGB`; every rank-list PNG has a JSON sidecar naming the query, the drawn gallery images, their distances and
whether each matches.

Which queries are drawn: per query, the rank of its first true match among the gallery items the protocol keeps
(ReID drops items of the query's identity *and* camera; SOP drops the query itself), computed by blocks of queries
(bounded memory), over at most MAX_CANDIDATES evenly spaced queries (so a picture of MSMT17 costs a fraction of its
evaluation). The worst are the queries whose first match is ranked last, the best those matched first by the widest
margin. Only the drawn queries are sorted.
"""
import json
import os
from collections import OrderedDict

import numpy as np

from .face import THRESHOLDS, contiguous_folds, pair_distances
from .features import l2_normalize

MATCH_RGB = (0, 200, 0)
MISMATCH_RGB = (220, 0, 0)
QUERY_RGB = (40, 90, 230)
PANEL_HW = (128, 64)  # each image is resized to this (H, W) inside its frame
FRAME = 6             # frame width, pixels
GAP = 10              # between panels
TOP_K = 10
QUERY_BLOCK = 256
MAX_CANDIDATES = 2000  # queries among which the worst and best are picked


def new_figure(**kwargs):
    """A matplotlib Figure drawn by the Agg canvas, without pyplot: no global backend is switched, so a notebook's
    inline plots keep working and no display is ever needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


# ---------------------------------------------------------------------------------------------- ranking (bounded)

def first_match_ranks(query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, block=QUERY_BLOCK):
    """Per query: (rank of the first true match among the kept gallery items, or -1 without one;
    margin = nearest kept non-match distance - nearest match distance). Cosine distance of normalised features,
    items with the query's pid and camid dropped, computed `block` queries at a time."""
    query, gallery = l2_normalize(query_features), l2_normalize(gallery_features)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    ranks = np.full(len(query), -1, dtype=np.int64)
    margins = np.full(len(query), -np.inf, dtype=np.float64)
    for start in range(0, len(query), block):
        stop = min(start + block, len(query))
        dist = 1.0 - query[start:stop] @ gallery.T  # [b, G]
        same_pid = q_pids[start:stop, None] == g_pids[None, :]
        dropped = same_pid & (q_camids[start:stop, None] == g_camids[None, :])
        positive = same_pid & ~dropped
        negative = ~same_pid
        nearest_positive = np.where(positive, dist, np.inf).min(axis=1)
        nearest_negative = np.where(negative, dist, np.inf).min(axis=1)
        closer = ((dist < nearest_positive[:, None]) & ~dropped).sum(axis=1)
        has_match = np.isfinite(nearest_positive)
        ranks[start:stop] = np.where(has_match, closer, -1)
        margins[start:stop] = np.where(has_match, nearest_negative - nearest_positive, -np.inf)
    return ranks, margins


def pick_queries(ranks, margins, count):
    """(worst, best) query indices: worst = first match ranked last; best = ranked first by the widest margin."""
    valid = np.flatnonzero(ranks >= 0)
    worst = valid[np.lexsort((margins[valid], -ranks[valid]))][:count]
    best = valid[np.lexsort((-margins[valid], ranks[valid]))][:count]
    return worst.tolist(), best.tolist()


def top_k(query_feature, gallery_features, q_pid, g_pids, q_camid, g_camids, k=TOP_K):
    """The k nearest kept gallery items of one query: (indices, distances, matches)."""
    query = l2_normalize(query_feature[None])[0]
    dist = 1.0 - l2_normalize(gallery_features) @ query
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    kept = np.flatnonzero(~((g_pids == q_pid) & (g_camids == q_camid)))
    order = kept[np.argsort(dist[kept], kind="stable")[:k]]
    return order, dist[order], g_pids[order] == q_pid


# ---------------------------------------------------------------------------------------------- rank-list pictures

def framed(image, rgb, size=PANEL_HW, frame=FRAME):
    """uint8 [H + 2f, W + 2f, 3]: `image` (PIL) resized to `size` inside a frame of colour `rgb`."""
    from PIL import Image

    panel = np.asarray(image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8)
    out = np.empty((size[0] + 2 * frame, size[1] + 2 * frame, 3), dtype=np.uint8)
    out[:] = np.asarray(rgb, dtype=np.uint8)
    out[frame:-frame, frame:-frame] = panel
    return out


def panel_origin(position, size=PANEL_HW, frame=FRAME, gap=GAP):
    """(x, y) of panel `position`'s top-left pixel in the rank-list canvas (0 = the query)."""
    return gap + position * (size[1] + 2 * frame + gap), gap


def rank_list_canvas(query_image, gallery_images, matches):
    """uint8 [H, W, 3]: the query (blue frame), then the gallery images framed green (match) or red (not)."""
    panels = [framed(query_image, QUERY_RGB)] + [framed(image, MATCH_RGB if match else MISMATCH_RGB)
                                                for image, match in zip(gallery_images, matches)]
    panel_h, panel_w = panels[0].shape[:2]
    canvas = np.full((panel_h + 2 * GAP, GAP + len(panels) * (panel_w + GAP), 3), 255, dtype=np.uint8)
    for position, panel in enumerate(panels):
        x, y = panel_origin(position)
        canvas[y:y + panel_h, x:x + panel_w] = panel
    return canvas


def save_rank_list(path, title, canvas, labels):
    """Write `canvas` 1:1 under a title line and over one label per panel; returns the PNG path."""
    title_px, label_px, dpi = 28, 22, 100
    height, width = canvas.shape[:2]
    fig = new_figure(figsize=(width / dpi, (height + title_px + label_px) / dpi), dpi=dpi)
    fig.figimage(canvas, xo=0, yo=label_px, origin="upper")
    fig.text(0.01, 1 - 4 / (height + title_px + label_px), title, va="top", ha="left", fontsize=9)
    panel_w = PANEL_HW[1] + 2 * FRAME
    for position, label in enumerate(labels):
        x, _ = panel_origin(position)
        fig.text((x + panel_w / 2) / width, 2 / (height + title_px + label_px), label, ha="center", va="bottom",
                 fontsize=7)
    fig.savefig(path, dpi=dpi)
    return path


def rank_list_pictures(out_dir, name, features, query, gallery, read_image, count=2, k=TOP_K):
    """Rank lists of the `count` worst and best queries of one ReID / SOP test set; returns the PNG paths.
    `query` / `gallery`: (image, pid, camid) tuples, `features`: query rows then gallery rows. An empty gallery
    means leave-one-out over the queries (SOP): the query itself is the one item dropped."""
    features = np.asarray(features, dtype=np.float32)
    q_paths, q_pids, q_camids = (list(column) for column in zip(*query))
    if len(gallery):
        g_paths, g_pids, g_camids = (list(column) for column in zip(*gallery))
        q_features, g_features = features[:len(query)], features[len(query):]
    else:  # leave-one-out: a camera id per image drops exactly the query itself
        g_paths, g_pids = q_paths, q_pids
        q_camids = g_camids = list(range(len(query)))
        q_features = g_features = features
    q_pids, g_pids = np.asarray([str(p) for p in q_pids]), np.asarray([str(p) for p in g_pids])
    q_camids = np.asarray(q_camids)
    # candidates: every query, or MAX_CANDIDATES evenly spaced ones (bounds the cost on MSMT17-sized sets)
    candidates = np.unique(np.linspace(0, len(query) - 1, min(len(query), MAX_CANDIDATES)).round().astype(np.int64))
    ranks = np.full(len(query), -1, dtype=np.int64)
    margins = np.full(len(query), -np.inf)
    ranks[candidates], margins[candidates] = first_match_ranks(q_features[candidates], g_features,
                                                               q_pids[candidates], g_pids, q_camids[candidates],
                                                               g_camids)
    worst, best = pick_queries(ranks, margins, count)
    written = []
    for kind, chosen in (("worst", worst), ("best", best)):
        for order, q in enumerate(chosen):
            indices, dists, matches = top_k(q_features[q], g_features, q_pids[q], g_pids, q_camids[q], g_camids, k)
            canvas = rank_list_canvas(read_image(q_paths[q]), [read_image(g_paths[i]) for i in indices], matches)
            stem = os.path.join(out_dir, f"{name}_{kind}{order + 1}_query{q}")
            title = (f"{name}: {kind} query {q} (id {q_pids[q]}), first match at rank {ranks[q] + 1}; "
                     f"green = same id, red = other")
            labels = ["query"] + [f"{r + 1}: {d:.3f}" for r, d in enumerate(dists)]
            written.append(save_rank_list(stem + ".png", title, canvas, labels))
            sidecar = OrderedDict(query_index=int(q), query=str(q_paths[q]), query_id=str(q_pids[q]),
                                  first_match_rank=int(ranks[q]) + 1,
                                  gallery=[str(g_paths[i]) for i in indices],
                                  gallery_index=[int(i) for i in indices],
                                  gallery_ids=[str(g_pids[i]) for i in indices],
                                  distances=[float(d) for d in dists], matches=[bool(m) for m in matches],
                                  panel_origins=[list(panel_origin(p)) for p in range(len(indices) + 1)],
                                  frame=FRAME, label_rows=22)
            with open(stem + ".json", "w", encoding="utf-8") as f:
                json.dump(sidecar, f, indent=1)
    return written


# ---------------------------------------------------------------------------------------------- face curves

def roc_points(dist, issame, thresholds=THRESHOLDS):
    """(false positive rates, true positive rates) of "same iff dist < threshold" over `thresholds`."""
    issame = np.asarray(issame, dtype=bool)
    predicted = dist[None, :] < thresholds[:, None]  # [T, P]
    tpr = (predicted & issame).sum(axis=1) / max(int(issame.sum()), 1)
    fpr = (predicted & ~issame).sum(axis=1) / max(int((~issame).sum()), 1)
    return fpr, tpr


def face_pictures(out_dir, name, features, issame, num_folds=10, thresholds=THRESHOLDS):
    """The ROC curve and the per-fold threshold choice of one face set (the protocol of face.py); returns paths."""
    from matplotlib import colormaps

    dist = pair_distances(features)
    issame = np.asarray(issame, dtype=bool)[:len(dist)]
    fpr, tpr = roc_points(dist, issame, thresholds)
    fig = new_figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.plot(fpr, tpr, color="tab:blue")
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=0.8)
    auc = float(np.trapz(np.r_[0, tpr, 1], np.r_[0, fpr, 1]))
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title=f"{name}: ROC ({len(dist)} pairs, AUC {auc:.4f})")
    ax.grid(alpha=0.3)
    roc_path = os.path.join(out_dir, f"{name}_roc.png")
    fig.tight_layout()
    fig.savefig(roc_path, dpi=100)

    correct = (dist[None, :] < thresholds[:, None]) == issame[None, :]  # [T, P]
    fig = new_figure(figsize=(6.5, 4))
    ax = fig.subplots()
    colours = colormaps["tab10"]
    for fold, (train, test) in enumerate(contiguous_folds(len(dist), num_folds)):
        train_accuracy = correct[:, train].mean(axis=1) * 100
        best = int(np.argmax(train_accuracy))
        ax.plot(thresholds, train_accuracy, color=colours(fold % 10), linewidth=0.8, alpha=0.8)
        ax.plot(thresholds[best], correct[best, test].mean() * 100, "o", color=colours(fold % 10), markersize=4)
    ax.set(xlabel="threshold on the squared distance (same iff below)", ylabel="accuracy (%)",
           title=f"{name}: {num_folds} folds (lines: 9-fold accuracy; dots: chosen threshold, held-out accuracy)")
    ax.title.set_fontsize(8)
    ax.grid(alpha=0.3)
    folds_path = os.path.join(out_dir, f"{name}_thresholds.png")
    fig.tight_layout()
    fig.savefig(folds_path, dpi=100)
    return [roc_path, folds_path]


# ---------------------------------------------------------------------------------------------- measured vs published

def published_bars(out_dir, name, measured, published):
    """Bar chart of the measured metrics beside the published ones (metrics without a published value: measured
    only); returns the path."""
    metrics = list(published) or [metric for metric in measured if metric != "metric"]
    x = np.arange(len(metrics))
    fig = new_figure(figsize=(1.2 + 1.1 * len(metrics), 3.5))
    ax = fig.subplots()
    ax.bar(x - 0.2, [measured[m] for m in metrics], width=0.4, label="measured", color="tab:blue")
    ax.bar(x + 0.2, [published.get(m, np.nan) for m in metrics], width=0.4, label="published", color="tab:gray")
    for position, metric in enumerate(metrics):
        ax.text(position - 0.2, measured[metric], f"{measured[metric]:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, metrics)
    ax.set(title=f"{name}: measured vs published", ylabel="%")
    ax.legend(fontsize=7, loc="lower right")
    path = os.path.join(out_dir, f"{name}_vs_published.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


# ---------------------------------------------------------------------------------------------- one call per suite

def test_set_pictures(out_dir, entry, test_set, evaluator, features, measured, read_image=None):
    """Every picture of one evaluated test set (by the evaluator's kind); returns the paths written."""
    from ..data import read_image as default_read_image
    from .evaluators import FaceVerificationEvaluator, ReidEvaluator, RetrievalEvaluator

    read_image = read_image or default_read_image
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    if isinstance(evaluator, FaceVerificationEvaluator):
        paths += face_pictures(out_dir, entry.name, features, test_set.issame, evaluator.num_folds)
    elif isinstance(evaluator, ReidEvaluator) and evaluator.num_draws == 1:
        paths += rank_list_pictures(out_dir, entry.name, features, test_set.query, test_set.gallery, read_image)
    elif isinstance(evaluator, ReidEvaluator):  # several draws: the rank lists of the first one
        query, gallery = test_set.split(test_set.seed)
        row_of = {path: row for row, (path, _, _) in enumerate(test_set.test_items)}
        rows = [row_of[path] for path, _, _ in list(query) + list(gallery)]
        paths += rank_list_pictures(out_dir, entry.name, features[rows], query, gallery, read_image)
    elif isinstance(evaluator, RetrievalEvaluator):
        paths += rank_list_pictures(out_dir, entry.name, features, test_set.query, [], read_image)
    paths.append(published_bars(out_dir, entry.name, measured, dict(entry.get("published") or {})))
    return paths


def figure_to_array(path):
    """uint8 HWC RGB of a written PNG (for VisualDL's add_image)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
