"""VeRi-Wild: images per vehicle folder, lists of `<vid>/<imgid>`, cameras from `vehicle_info.txt`."""
import os

from ...registry import DATASETS
from .base import DatasetLayoutError, ReidDataset, parse_int, read_fields, read_list, require_dir


@DATASETS.register()
class VeRiWild(ReidDataset):
    """`vehicle_info.txt` lines `<vid>/<imgid>;<camid>;...` give every image's path and camera; the query and gallery
    lists name images as `<vid>/<imgid>[.jpg]`. The base class reads the 10,000-id lists, as fast-reid does."""

    dataset_name = "veriwild"
    query_list, gallery_list = "test_10000_id_query.txt", "test_10000_id.txt"

    def __init__(self, root=None):
        self.layout = (f"$ROOT/VERI-Wild/ with images/<vid>/<imgid>.jpg and train_test_split/ holding train_list.txt, "
                       f"vehicle_info.txt, {self.query_list}, {self.gallery_list}")
        super().__init__(root)

    def read(self):
        data_dir = require_dir(os.path.join(self.root, "VERI-Wild"), self.layout)
        require_dir(os.path.join(data_dir, "images"), self.layout)
        split_dir = require_dir(os.path.join(data_dir, "train_test_split"), self.layout)
        cameras = self.read_vehicle_info(os.path.join(split_dir, "vehicle_info.txt"))
        return tuple(self.read_list(data_dir, os.path.join(split_dir, name), cameras)
                     for name in ("train_list.txt", self.query_list, self.gallery_list))

    def read_vehicle_info(self, info_path):
        """imgid -> camid; a first line whose camera field is not a number is the header and skipped."""
        cameras = {}
        for number, line in read_list(info_path, self.layout):
            fields = line.split(";")
            if number == 1 and len(fields) > 1 and not fields[1].strip().isdigit():
                continue
            if len(fields) < 2 or "/" not in fields[0]:
                raise DatasetLayoutError(f"{info_path}, line {number}: expected '<vid>/<imgid>;<camid>;...', "
                                         f"got '{line}'")
            image_id = fields[0].split("/")[1]
            if image_id in cameras:
                raise DatasetLayoutError(f"{info_path}, line {number}: image id {image_id} listed twice")
            cameras[image_id] = parse_int(fields[1], info_path, number, "camid")
        return cameras

    def read_list(self, data_dir, list_path, cameras):
        items = []
        for number, fields in read_fields(list_path, self.layout, "/", 2, "<vid>/<imgid>"):
            vid = parse_int(fields[0], list_path, number, "vid")
            image_id = os.path.splitext(fields[1])[0]
            if image_id not in cameras:
                raise DatasetLayoutError(f"{list_path}, line {number}: image {image_id} is not in vehicle_info.txt")
            items.append((os.path.join(data_dir, "images", fields[0], f"{image_id}.jpg"), vid, cameras[image_id]))
        return items


@DATASETS.register()
class SmallVeRiWild(VeRiWild):
    query_list, gallery_list = "test_3000_id_query.txt", "test_3000_id.txt"


@DATASETS.register()
class MediumVeRiWild(VeRiWild):
    query_list, gallery_list = "test_5000_id_query.txt", "test_5000_id.txt"


@DATASETS.register()
class LargeVeRiWild(VeRiWild):
    """The 10,000-vehicle test lists the published VeRi-Wild numbers use."""
