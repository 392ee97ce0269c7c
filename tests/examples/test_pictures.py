"""evaluation_script.py --vis: the pictures exist after a tiny run and show what they claim. Rank lists: the
frame of every drawn gallery image is green exactly when its identity (read from the file name / the SOP list)
equals the query's, and the drawn images are the query's nearest kept gallery items (features recomputed here)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from allinone.evaluation.visualize import MATCH_RGB, MISMATCH_RGB, QUERY_RGB, roc_points

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEIGHTS = os.path.join(ROOT, "tests", "fixtures", "spec", "reference", "tiny_upstream.pdparams")


@pytest.fixture(scope="module")
def pictures(mini_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("vis")
    env = dict(os.environ, FASTREID_DATASETS=mini_root, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "evaluation_script.py"), "--config",
                             "allinone/tiny_eval", "--model_path", WEIGHTS, "--test_datasets", "LFW,Market1501,SOP",
                             "--vis", str(out / "vis")], cwd=str(out), env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return str(out / "vis")


def rank_lists(folder, name):
    stems = sorted(f[:-5] for f in os.listdir(folder) if f.startswith(name + "_") and f.endswith(".json"))
    assert any("_worst" in s for s in stems) and any("_best" in s for s in stems), stems
    for stem in stems:
        with open(os.path.join(folder, stem + ".json"), encoding="utf-8") as f:
            sidecar = json.load(f)
        yield sidecar, np.asarray(Image.open(os.path.join(folder, stem + ".png")).convert("RGB"))


def frame_colours(sidecar, png):
    """The colour of each panel's frame (query first), sampled in the PNG half a frame inside each panel's corner;
    the canvas is found by the query's frame (its first pixel of the query colour)."""
    rows, cols = np.nonzero(np.all(png == QUERY_RGB, axis=2))
    top, left = rows.min(), cols.min()
    x0, y0 = sidecar["panel_origins"][0]
    inset = sidecar["frame"] // 2
    return [tuple(png[top + y - y0 + inset, left + x - x0 + inset]) for x, y in sidecar["panel_origins"]]


def market_id_camera(path):
    name = os.path.basename(path)  # 0002_c1s1_000451_03.jpg
    return int(name.split("_")[0]), int(name.split("_")[1][1])


def test_reid_rank_list_frames_follow_the_ground_truth_and_the_ranking(pictures, mini_root):
    from allinone.config import load_config
    from allinone.inference import FeatureExtractor
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint

    model = build_model(load_config("allinone/tiny_eval"))
    load_checkpoint(model, WEIGHTS)
    model.eval()
    extractor = FeatureExtractor(model, "task3")
    gallery_dir = os.path.join(mini_root, "Market-1501-v15.09.15", "bounding_box_test")
    gallery = sorted(os.path.join(gallery_dir, f) for f in os.listdir(gallery_dir) if f.endswith(".jpg"))
    gallery = [p for p in gallery if market_id_camera(p)[0] != -1]
    gallery_features = extractor.extract(gallery)
    gallery_features /= np.linalg.norm(gallery_features, axis=1, keepdims=True)
    for sidecar, png in rank_lists(pictures, "Market1501"):
        query_id, query_camera = market_id_camera(sidecar["query"])
        colours = frame_colours(sidecar, png)
        assert colours[0] == QUERY_RGB
        expected = [MATCH_RGB if market_id_camera(p)[0] == query_id else MISMATCH_RGB for p in sidecar["gallery"]]
        assert colours[1:] == expected
        # the drawn items are the nearest gallery items the protocol keeps, nearest first
        query_feature = extractor.extract([sidecar["query"]])[0]
        distances = 1 - gallery_features @ (query_feature / np.linalg.norm(query_feature))
        kept = [i for i, p in enumerate(gallery) if market_id_camera(p) != (query_id, query_camera)]
        nearest = sorted(kept, key=lambda i: distances[i])[:len(sidecar["gallery"])]
        assert [os.path.basename(gallery[i]) for i in nearest] == [os.path.basename(p) for p in sidecar["gallery"]]
        np.testing.assert_allclose(sidecar["distances"], distances[nearest], atol=1e-5)


def test_sop_rank_list_frames_follow_the_product_labels(pictures, mini_root):
    import allinone.data  # noqa: F401  (registers the readers)
    from allinone.registry import DATASETS

    labels = {path: str(label) for path, label, _ in DATASETS.build({"name": "SOP", "root": mini_root}).query}
    for sidecar, png in rank_lists(pictures, "SOP"):
        assert sidecar["query"] not in sidecar["gallery"]  # leave-one-out: the query is not its own neighbour
        expected = [MATCH_RGB if labels[p] == labels[sidecar["query"]] else MISMATCH_RGB for p in sidecar["gallery"]]
        assert frame_colours(sidecar, png)[1:] == expected


def test_face_and_published_pictures_exist(pictures):
    for name in ("LFW_roc.png", "LFW_thresholds.png", "LFW_vs_published.png", "Market1501_vs_published.png",
                 "SOP_vs_published.png"):
        with Image.open(os.path.join(pictures, name)) as image:
            assert image.size[0] > 200 and image.size[1] > 200
            assert len(np.unique(np.asarray(image.convert("L")))) > 10  # something is drawn on it


def test_roc_points_count_true_and_false_accepts():
    dist = np.array([0.1, 0.5, 0.3, 0.9], dtype=np.float32)
    issame = np.array([True, True, False, False])
    fpr, tpr = roc_points(dist, issame, thresholds=np.array([0.0, 0.2, 0.4, 0.6, 1.0]))
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])


TINY_TRAIN_YAML = """
_base_: {root}/configs/allinone/tiny_demo.yaml
Model:
  backbone: {{embed_dim: 32, depth: 1, num_heads: 2}}
  heads:
    task1: {{feat_dim: 32}}
    task2: {{feat_dim: 32}}
    task3: {{feat_dim: 32}}
    task4: {{feat_dim: 32}}
Train: {{max_iter: 2, checkpoint_period: 0, log_period: 1, eval_period: 2, eval_datasets: 'LFW,Market1501'}}
"""


def test_training_writes_the_evaluation_pictures_to_visualdl(mini_root, tmp_path):
    from visualdl import LogReader

    config = tmp_path / "tiny_train.yaml"
    config.write_text(TINY_TRAIN_YAML.format(root=ROOT))
    env = dict(os.environ, FASTREID_DATASETS=mini_root, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", str(config), "-o",
                             f"Global.output_dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    logs = [f for f in os.listdir(tmp_path / "run" / "vdl") if f.startswith("vdlrecords")]
    reader = LogReader(file_path=str(tmp_path / "run" / "vdl" / logs[0]))
    tags = set(reader.get_tags().get("image", []))
    assert {"vis/LFW_roc", "vis/LFW_thresholds", "vis/Market1501_worst1", "vis/Market1501_best1",
            "vis/Market1501_vs_published"} <= tags, tags


def test_first_match_ranks_and_the_picked_queries_follow_a_full_sort():
    from allinone.evaluation.visualize import first_match_ranks, pick_queries

    rng = np.random.RandomState(0)
    query, gallery = rng.randn(40, 8).astype("float32"), rng.randn(60, 8).astype("float32")
    q_pids, g_pids = rng.randint(0, 6, 40), rng.randint(0, 6, 60)
    q_cams, g_cams = rng.randint(0, 3, 40), rng.randint(0, 3, 60)
    ranks, margins = first_match_ranks(query, gallery, q_pids, g_pids, q_cams, g_cams, block=7)
    normalise = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    dist = 1 - normalise(query) @ normalise(gallery).T
    for q in range(40):
        kept = [g for g in np.argsort(dist[q]) if not (g_pids[g] == q_pids[q] and g_cams[g] == q_cams[q])]
        matches = [r for r, g in enumerate(kept) if g_pids[g] == q_pids[q]]
        assert ranks[q] == (matches[0] if matches else -1)
    worst, best = pick_queries(ranks, margins, 3)
    assert ranks[worst[0]] == ranks.max() and ranks[best[0]] == 0
    assert margins[best[0]] == margins[ranks == 0].max()
