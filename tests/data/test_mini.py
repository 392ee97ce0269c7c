"""The miniature generator: its command line, determinism, and identities a simple matcher can already tell apart."""
import filecmp
import importlib.util
import os

import numpy as np

from allinone.data import read_image
from allinone.data.mini import make_mini_datasets
from allinone.registry import DATASETS

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "make_mini_datasets.py")


def test_command_line_writes_the_tree(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_mini_datasets_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(tmp_path / "mini")]) == 0
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

    def colour(path):
        return np.asarray(read_image(path), dtype=np.float32).reshape(-1, 3).mean(0)

    gallery = np.stack([colour(path) for path, _, _ in veri.gallery])
    for path, pid, _ in veri.query:
        nearest = np.argmin(((gallery - colour(path)) ** 2).sum(1))
        assert veri.gallery[nearest][1] == pid
