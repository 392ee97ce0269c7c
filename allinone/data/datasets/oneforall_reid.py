"""The merged ReID training sets of the OneForAll recipe: PersonAll (a list file over `mask_train_v3/`) and VeriAll
(one folder per vehicle). Training only: `query` and `gallery` are empty."""
import os

from ...registry import DATASETS
from .base import DatasetLayoutError, ReidDataset, parse_int, read_fields, require_dir
from .ms1m import MS1M


@DATASETS.register()
class PersonAll(ReidDataset):
    """`$ROOT/PersonAll/list_train.txt` lines `<path relative to mask_train_v3/> <pid>`.

    The camera is the third `_` field of the file name minus 1 when it is an integer (the MSMT17 naming the merged
    set follows), else 0. Labels become `PersonAll_<pid>` when a task merges its sets (docs/data.md).
    """

    dataset_name = "PersonAll"
    layout = ("$ROOT/PersonAll/ with mask_train_v3/ and list_train.txt (lines '<path relative to mask_train_v3/> "
              "<pid>')")

    def read(self):
        data_dir = require_dir(os.path.join(self.root, "PersonAll"), self.layout)
        image_dir = require_dir(os.path.join(data_dir, "mask_train_v3"), self.layout)
        list_path = os.path.join(data_dir, "list_train.txt")
        train = []
        for number, (rel_path, pid_text) in read_fields(list_path, self.layout, " ", 2, "<relative path> <pid>"):
            name_fields = os.path.splitext(os.path.basename(rel_path))[0].split("_")
            camid = int(name_fields[2]) - 1 if len(name_fields) > 2 and name_fields[2].isdigit() else 0
            train.append((os.path.join(image_dir, rel_path), parse_int(pid_text, list_path, number, "pid"), camid))
        if not train:
            raise DatasetLayoutError(f"{list_path}: no images listed; expected layout: {self.layout}")
        return train, [], []


@DATASETS.register()
class VeriAll(MS1M):
    """`$ROOT/veriall/<vehicle id>/*.jpg` (the folder-per-identity layout of MS1M; pid = folder name, camid '0')."""

    dataset_name = "veriall"
    folder = "veriall"
