"""The miniature generator: its command line, determinism, identities a simple matcher can already tell apart, and
the scaled hard tree of the demo."""
import filecmp
import importlib.util
import os

import numpy as np
import pytest

from allinone.data import read_image
from allinone.registry import DATASETS
from mini_datasets import make_mini_datasets

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "make_mini_datasets.py")


def load_tool():
    spec = importlib.util.spec_from_file_location("make_mini_datasets_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def mean_colour(path):
    return np.asarray(read_image(path), dtype=np.float32).reshape(-1, 3).mean(0)


def test_command_line_writes_the_tree(tmp_path, capsys):
    assert load_tool().main([str(tmp_path / "mini")]) == 0
    assert "FASTREID_DATASETS=" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "mini" / "ms1m-retinaface-t1" / "train.idx")


def test_the_same_seed_writes_identical_files(mini_root, tmp_path):
    make_mini_datasets(str(tmp_path), seed=0)
    for folder in ("VERI-Wild/images/00030", "faces_emore_val/lfw"):
        names = sorted(os.listdir(os.path.join(mini_root, folder)))
        assert filecmp.cmpfiles(os.path.join(mini_root, folder), os.path.join(tmp_path, folder), names,
                                shallow=False)[0] == names


def test_the_tree_has_a_grayscale_and_a_png_image(mini_root):
    market = DATASETS.build({"name": "Market1501", "root": mini_root})
    gray = [path for path, _, _ in market.gallery if path.endswith("0010_c5s2_000002_00.jpg")][0]
    pixels = np.asarray(read_image(gray)).astype(int)
    assert (pixels[..., 0] == pixels[..., 2]).all()
    assert DATASETS.build({"name": "LFW", "root": mini_root}).images[3].endswith(".png")


def test_same_identity_images_are_nearest_neighbours_by_colour(mini_root):
    """The structure that makes results checkable: even mean colours match query to gallery identities."""
    veri = DATASETS.build({"name": "VeRi", "root": mini_root})
    gallery = np.stack([mean_colour(path) for path, _, _ in veri.gallery])
    for path, pid, _ in veri.query:
        nearest = np.argmin(((gallery - mean_colour(path)) ** 2).sum(1))
        assert veri.gallery[nearest][1] == pid


@pytest.fixture(scope="module")
def hard_root(tmp_path_factory):
    """The demo's kind of tree, at scale 2: twice the identities and face pairs, hard-painted."""
    return make_mini_datasets(str(tmp_path_factory.mktemp("mini_hard")), scale=2, hard=True)


# name: train images, query images, gallery images, test ids in query + gallery (all twice the default tree's ids)
SCALED_REID_COUNTS = {
    "Market1501": (48, 10, 42, 11),   # + the distractor id 0
    "DukeMTMC": (30, 10, 20, 10),
    "MSMT17": (24, 10, 30, 10),   # list_train.txt alone (list_val.txt only with combineall)
    "VeRi": (30, 10, 30, 10),
    "LargeVehicleID": (30, 48, 24, 24),
    "LargeVeRiWild": (30, 10, 20, 10),
}


@pytest.mark.parametrize("name", sorted(SCALED_REID_COUNTS))
def test_scale_multiplies_the_identities_of_every_reid_layout(hard_root, name):
    dataset = DATASETS.build({"name": name, "root": hard_root})
    train, query, gallery, ids = SCALED_REID_COUNTS[name]
    assert (len(dataset.train), len(dataset.query), len(dataset.gallery)) == (train, query, gallery)
    assert len({pid for _, pid, _ in dataset.query + dataset.gallery}) == ids
    for _, pid, cam in dataset.query:
        assert any(g_pid == pid and g_cam != cam for _, g_pid, g_cam in dataset.gallery)


def test_scale_multiplies_products_faces_and_face_training_identities(hard_root):
    sop = DATASETS.build({"name": "SOP", "root": hard_root})
    assert (len(sop.train), len(sop.query)) == (36, 36)
    lfw = DATASETS.build({"name": "LFW", "root": hard_root})
    assert len(lfw.images) == 160 and lfw.issame.tolist() == [True, False] * 40
    assert lfw.images[3].endswith(".png")
    assert len(DATASETS.build({"name": "MS1MV3", "root": hard_root}).train) == 64


def test_train_and_test_identities_of_a_scaled_tree_do_not_overlap(hard_root):
    """Test ids start after the scaled training ids, so no test pattern is seen in training."""
    for name in ("Market1501", "DukeMTMC", "VeRi", "LargeVeRiWild"):
        dataset = DATASETS.build({"name": name, "root": hard_root})
        train_ids = {int(pid.rsplit("_", 1)[-1]) if isinstance(pid, str) else pid for _, pid, _ in dataset.train}
        assert not train_ids & {pid for _, pid, _ in dataset.query}


def test_hard_identities_are_not_told_apart_by_mean_colour(mini_root, hard_root):
    """The default tree is colour-coded; the hard tree shares a palette and adds random backgrounds."""
    def colour_rank1(root):
        veri = DATASETS.build({"name": "VeRi", "root": root})
        gallery = np.stack([mean_colour(path) for path, _, _ in veri.gallery])
        hits = [veri.gallery[np.argmin(((gallery - mean_colour(path)) ** 2).sum(1))][1] == pid
                for path, pid, _ in veri.query]
        return np.mean(hits)

    assert colour_rank1(mini_root) == 1.0 and colour_rank1(hard_root) <= 0.5


def test_the_same_seed_writes_an_identical_hard_tree(hard_root, tmp_path):
    make_mini_datasets(str(tmp_path), seed=0, scale=2, hard=True)
    folder = "Stanford_Online_Products/bicycle_final"
    names = sorted(os.listdir(os.path.join(hard_root, folder)))
    assert filecmp.cmpfiles(os.path.join(hard_root, folder), os.path.join(tmp_path, folder), names,
                            shallow=False)[0] == names


def test_command_line_scale_and_hard_options(tmp_path, capsys):
    assert load_tool().main([str(tmp_path / "hard"), "--scale", "2", "--hard"]) == 0
    assert len(DATASETS.build({"name": "VeRi", "root": str(tmp_path / "hard")}).query) == 10


@pytest.mark.parametrize("scale", [0, 1.5, 69])
def test_scale_must_be_an_integer_from_1_to_68(tmp_path, scale):
    with pytest.raises(ValueError, match=r"scale must be an integer in 1\.\.68"):
        make_mini_datasets(str(tmp_path), scale=scale)
