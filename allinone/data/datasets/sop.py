"""Stanford Online Products, from fast-reid's converted `train.txt` / `test.txt` lists (not the `Ebay_*.txt` files)."""
import os

from ...registry import DATASETS
from .base import ReidDataset, read_fields, require_dir


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
        for _, fields in read_fields(list_path, self.layout, ",", 2, "<relative image path>,<label>"):
            items.append((os.path.join(data_dir, fields[0]), fields[1], "0"))
        return items
