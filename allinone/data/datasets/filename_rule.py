"""Sets whose ids live in the image file names (`<pid>_c<cam>...jpg`): Market1501, DukeMTMC-reID, VeRi-776."""
import glob
import os
import re

from ...registry import DATASETS
from .base import DatasetLayoutError, ReidDataset, require_dir


class FilenameRuleDataset(ReidDataset):
    """Three image folders; pid and camera parsed from each file name by `pattern`, camid = camera - 1.

    The original searched the whole path; we match the file name only, so a parent folder cannot alter an id.
    """

    folder = ""                     # under the root
    subdirs = ("bounding_box_train", "query", "bounding_box_test")
    pattern = re.compile(r"([-\d]+)_c(\d)")
    pid_range = (0, 1_000_000)      # inclusive
    cam_range = (1, 1_000)
    junk_pids = ()                  # images of these ids are dropped (Market's -1)

    def data_dir(self):
        return os.path.join(self.root, self.folder)

    def read(self):
        data_dir = require_dir(self.data_dir(), self.layout)
        return tuple(self.read_folder(require_dir(os.path.join(data_dir, sub), self.layout)) for sub in self.subdirs)

    def read_folder(self, folder):
        items = []
        for path in sorted(glob.glob(os.path.join(folder, "*.jpg"))):
            match = self.pattern.search(os.path.basename(path))
            if match is None:
                raise DatasetLayoutError(f"{path}: file name does not follow the rule {self.pattern.pattern!r} "
                                         f"of {self.dataset_name} ({self.layout})")
            pid, cam = int(match.group(1)), int(match.group(2))
            if pid in self.junk_pids:
                continue
            for name, value, (low, high) in (("pid", pid, self.pid_range), ("camera", cam, self.cam_range)):
                if not low <= value <= high:
                    raise DatasetLayoutError(f"{path}: {name} {value} outside {low}..{high} for {self.dataset_name}")
            items.append((path, pid, cam - 1))
        return items


@DATASETS.register()
class Market1501(FilenameRuleDataset):
    """Market-1501: pid -1 images are junk and dropped; pid 0 (distractors) stay in the gallery as negatives."""

    dataset_name = "market1501"
    layout = ("$ROOT/Market-1501-v15.09.15/ (or $ROOT itself) with bounding_box_train/, query/, bounding_box_test/ "
              "holding <pid>_c<cam>s<seq>_<frame>_<n>.jpg")
    pid_range = (0, 1501)
    cam_range = (1, 6)
    junk_pids = (-1,)

    def data_dir(self):
        versioned = os.path.join(self.root, "Market-1501-v15.09.15")
        return versioned if os.path.isdir(versioned) else self.root


@DATASETS.register()
class DukeMTMC(FilenameRuleDataset):
    dataset_name = "dukemtmc"
    folder = "DukeMTMC-reID"
    layout = ("$ROOT/DukeMTMC-reID/ with bounding_box_train/, query/, bounding_box_test/ holding "
              "<pid>_c<cam>_f<frame>.jpg")
    cam_range = (1, 8)


@DATASETS.register()
class VeRi(FilenameRuleDataset):
    dataset_name = "veri"
    folder = "veri"
    subdirs = ("image_train", "image_query", "image_test")
    pattern = re.compile(r"(\d+)_c(\d\d\d)")
    layout = "$ROOT/veri/ with image_train/, image_query/, image_test/ holding <pid>_c<ccc>_<time>_<n>.jpg"
    pid_range = (0, 776)
    cam_range = (1, 20)
