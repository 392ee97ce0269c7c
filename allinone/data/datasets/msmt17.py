"""MSMT17 from its list files; the published numbers used the `MSMT17_V2` folder, V1 is readable by `version=1`."""
import os

from ...registry import DATASETS
from .base import DatasetLayoutError, ReidDataset, parse_int, read_fields, require_dir

VERSION_DIRS = {1: ("MSMT17_V1", "train", "test"), 2: ("MSMT17_V2", "mask_train_v2", "mask_test_v2")}


@DATASETS.register()
class MSMT17(ReidDataset):
    """Lines `<dir>/<pid>_<n>_<cam>_<...>.jpg <pid>`; camid = third '_' field of the file name - 1.

    train = list_train.txt (30,248 images, 1,041 ids), as the original trained; `combineall=True` adds
    list_val.txt (fast-reid's option of that name). Raw pids are kept (the original offset test pids by the train id
    count, which changes no match).
    """

    dataset_name = "msmt17"

    def __init__(self, root=None, version=2, combineall=False):
        if version not in VERSION_DIRS:
            raise ValueError(f"MSMT17 version must be 1 or 2, got {version!r}")
        if not isinstance(combineall, bool):
            raise ValueError(f"MSMT17 combineall must be true or false, got {combineall!r}")
        self.version, self.combineall = version, combineall
        folder, train_dir, test_dir = VERSION_DIRS[version]
        self.layout = (f"$ROOT/{folder}/ with {train_dir}/, {test_dir}/ and list_train.txt, list_val.txt, "
                       f"list_query.txt, list_gallery.txt (lines '<relative path> <pid>')")
        super().__init__(root)

    def read(self):
        folder, train_dir, test_dir = VERSION_DIRS[self.version]
        data_dir = require_dir(os.path.join(self.root, folder), self.layout)
        image_dir = {name: require_dir(os.path.join(data_dir, name), self.layout) for name in (train_dir, test_dir)}

        def read(list_name, images):
            return self.read_list(os.path.join(data_dir, list_name), image_dir[images])

        train = read("list_train.txt", train_dir)
        if self.combineall:
            train += read("list_val.txt", train_dir)
        return train, read("list_query.txt", test_dir), read("list_gallery.txt", test_dir)

    def read_list(self, list_path, image_dir):
        items = []
        for number, fields in read_fields(list_path, self.layout, " ", 2, "<relative path> <pid>"):
            rel_path, pid_text = fields
            name_fields = os.path.basename(rel_path).split("_")
            if len(name_fields) < 3:
                raise DatasetLayoutError(f"{list_path}, line {number}: file name '{rel_path}' does not follow "
                                         f"<pid>_<n>_<cam>_... (camera is the third '_' field)")
            camid = parse_int(name_fields[2], list_path, number, "the camera (third '_' field of the file name)") - 1
            items.append((os.path.join(image_dir, rel_path), parse_int(pid_text, list_path, number, "pid"), camid))
        return items
