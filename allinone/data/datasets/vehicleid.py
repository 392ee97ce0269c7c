"""VehicleID: image ids in list files; query/gallery drawn from the test list by the original's rule, but seeded."""
import os
import random

from ...registry import DATASETS
from .base import ReidDataset, parse_int, read_fields, require_dir


@DATASETS.register()
class VehicleID(ReidDataset):
    """Lines `<imgid> <vid>`; image `image/<imgid>.jpg`; camid = int(imgid), so no gallery item shares a query's
    camera and each query keeps its one true match.

    Query/gallery: shuffle the test list, then the first image of every vehicle goes to the gallery and the rest to
    the query. The original shuffled unseeded; ours draws with `seed` (record it with the results), and
    `split(seed)` gives other draws of the same test images (to average several draws, as fast-reid does).
    """

    dataset_name = "vehicleid"
    test_list = "test_list_13164.txt"

    def __init__(self, root=None, seed=0):
        self.seed = seed
        self.layout = (f"$ROOT/vehicleid/ with image/<imgid>.jpg and train_test_split/train_list.txt, "
                       f"train_test_split/{self.test_list} (lines '<imgid> <vid>')")
        super().__init__(root)

    def read(self):
        data_dir = require_dir(os.path.join(self.root, "vehicleid"), self.layout)
        require_dir(os.path.join(data_dir, "image"), self.layout)
        split_dir = require_dir(os.path.join(data_dir, "train_test_split"), self.layout)
        train = self.read_list(data_dir, os.path.join(split_dir, "train_list.txt"))
        self.test_items = self.read_list(data_dir, os.path.join(split_dir, self.test_list))
        query, gallery = self.split(self.seed)
        return train, query, gallery

    def split(self, seed):
        """(query, gallery) for one seeded draw; every test image lands in exactly one of them."""
        items = list(self.test_items)
        random.Random(seed).shuffle(items)
        query, gallery, seen = [], [], set()
        for item in items:
            (query if item[1] in seen else gallery).append(item)
            seen.add(item[1])
        return query, gallery

    def read_list(self, data_dir, list_path):
        items = []
        for number, fields in read_fields(list_path, self.layout, " ", 2, "<imgid> <vid>"):
            image_id, vid = (parse_int(text, list_path, number, what) for text, what in zip(fields, ("imgid", "vid")))
            items.append((os.path.join(data_dir, "image", f"{fields[0]}.jpg"), vid, image_id))
        return items


@DATASETS.register()
class SmallVehicleID(VehicleID):
    test_list = "test_list_800.txt"


@DATASETS.register()
class MediumVehicleID(VehicleID):
    test_list = "test_list_1600.txt"


@DATASETS.register()
class LargeVehicleID(VehicleID):
    """The 2,400-vehicle test list the published VehicleID numbers use."""

    test_list = "test_list_2400.txt"
