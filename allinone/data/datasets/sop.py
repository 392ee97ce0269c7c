"""Stanford Online Products, from fast-reid's converted `train.txt` / `test.txt` lists (not the `Ebay_*.txt` files)."""
import os

from ...registry import DATASETS
from .base import DatasetLayoutError, ReidDataset, read_list, require_dir


@DATASETS.register()
class SOP(ReidDataset):
    """Lines `<relative image path>,<label>`; labels stay strings (compared as strings), camid is '0'.

    Retrieval is leave-one-out over the test set: `query` = all test images, `gallery` = [].
    """

    dataset_name = "sop"
    layout = "$ROOT/Stanford_Online_Products/ with train.txt and test.txt (lines '<relative image path>,<label>')"

    def read(self):
        data_dir = require_dir(os.path.join(self.root, "Stanford_Online_Products"), self.layout)
        train, test = (self.read_list(data_dir, name) for name in ("train.txt", "test.txt"))
        return train, test, []

    def read_list(self, data_dir, name):
        list_path = os.path.join(data_dir, name)
        items = []
        for number, line in read_list(list_path, self.layout):
            fields = line.split(",")
            if len(fields) != 2 or not all(fields):
                raise DatasetLayoutError(f"{list_path}, line {number}: expected '<relative image path>,<label>', "
                                         f"got '{line}'")
            items.append((os.path.join(data_dir, fields[0]), fields[1], "0"))
        return items
