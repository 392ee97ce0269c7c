"""MS1M face training sets: per-identity image folders (the original's format) or insightface's `train.rec`."""
import os

from ...registry import DATASETS
from ..recordio import read_labelled_images
from .base import DatasetLayoutError, ReidDataset, require_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class MS1M(ReidDataset):
    """Training only (`query` and `gallery` are empty); camid is '0'.

    `$ROOT/<folder>/<identity>/*.jpg` (pid = folder name) or, when `<folder>/train.rec` and `train.idx` exist,
    the RecordIO file (pid = identity index; images are `RecordRef`s that `read_image` decodes).
    """

    folder = None

    def __init__(self, root=None, folder=None):
        """`folder` overrides the folder name, e.g. 'ms1m-retinaface-t1' (insightface's MS1M-V3 release)."""
        self.folder = folder or self.folder
        self.layout = (f"$ROOT/{self.folder}/<identity>/<image>.jpg, or insightface's $ROOT/{self.folder}/train.rec "
                       f"with train.idx")
        super().__init__(root)

    def read(self):
        data_dir = require_dir(os.path.join(self.root, self.folder), self.layout)
        rec_path, idx_path = (os.path.join(data_dir, f"train.{ext}") for ext in ("rec", "idx"))
        if os.path.isfile(rec_path) or os.path.isfile(idx_path):
            if not (os.path.isfile(rec_path) and os.path.isfile(idx_path)):
                raise DatasetLayoutError(f"{data_dir}: train.rec and train.idx must come together")
            return [(ref, pid, "0") for ref, pid in read_labelled_images(rec_path, idx_path)], [], []
        train = []
        for identity in sorted(os.listdir(data_dir)):
            identity_dir = os.path.join(data_dir, identity)
            if os.path.isdir(identity_dir):
                train.extend((os.path.join(identity_dir, name), identity, "0")
                             for name in sorted(os.listdir(identity_dir)) if name.lower().endswith(IMAGE_EXTENSIONS))
        if not train:
            raise DatasetLayoutError(f"{data_dir}: no identity folders with images; expected layout: {self.layout}")
        return train, [], []


@DATASETS.register()
class MS1MV2(MS1M):
    dataset_name = "ms1mv2"
    folder = "ms1mv2"


@DATASETS.register()
class MS1MV3(MS1M):
    dataset_name = "ms1mv3"
    folder = "ms1mv3"
