"""Face verification test sets: the original's `faces_emore_val/` file lists, or insightface's `<name>.bin` files.

Pair i is images (2i, 2i+1); `issame[i]` says whether they show the same person.
"""
import logging
import os
import pickle

import numpy as np

from ...registry import DATASETS
from .base import DatasetLayoutError, dataset_root, read_list

BIN_FOLDERS = ("faces_emore_val", "faces_emore")
logger = logging.getLogger(__name__)


class _BinUnpickler(pickle.Unpickler):
    """Loads only what a verification `.bin` holds (lists, bytes, bools, numpy arrays), never arbitrary objects."""

    ALLOWED = {("builtins", "list"), ("builtins", "tuple"), ("builtins", "bytes"), ("builtins", "bytearray"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def read_verification_bin(path):
    """(list of encoded image bytes, numpy bool issame) from an insightface `.bin`: a pickled (bins, issame_list)."""
    try:
        with open(path, "rb") as f:
            bins, issame = _BinUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, ValueError, TypeError, EOFError) as err:
        raise DatasetLayoutError(f"{path}: not an insightface verification .bin "
                                 f"(a pickled (list of encoded images, list of issame)): {err}") from None
    images = [item.tobytes() if isinstance(item, np.ndarray) else bytes(item) for item in bins]
    return images, np.asarray(issame, dtype=bool)


def write_verification_bin(path, images, issame):
    """Write encoded images and pair labels in insightface's `.bin` format (used by the miniature generator)."""
    with open(path, "wb") as f:
        pickle.dump((list(images), [bool(x) for x in issame]), f, protocol=pickle.HIGHEST_PROTOCOL)


class FaceVerificationDataset:
    """`images` (paths, or encoded bytes from a `.bin`), `issame` (numpy bool), `dataset_name`.

    Reads `faces_emore_val/<name>.filelist` + `<name>_label.npy` (first token of each line = image path relative to
    `faces_emore_val/`) when present, else `faces_emore_val/<name>.bin` or `faces_emore/<name>.bin`.
    """

    dataset_name = None

    def __init__(self, root=None):
        self.root = dataset_root(root)
        folder = os.path.join(self.root, "faces_emore_val")
        filelist = os.path.join(folder, f"{self.dataset_name}.filelist")
        bins = [os.path.join(self.root, sub, f"{self.dataset_name}.bin") for sub in BIN_FOLDERS]
        if os.path.isfile(filelist):
            self.source = filelist
            self.images, self.issame = self.read_filelist(folder, filelist)
        elif any(os.path.isfile(path) for path in bins):
            self.source = next(path for path in bins if os.path.isfile(path))
            self.images, self.issame = read_verification_bin(self.source)
        else:
            raise DatasetLayoutError(
                f"no {self.dataset_name} verification set under {self.root}: expected {filelist} with "
                f"{self.dataset_name}_label.npy beside it, or an insightface {' or '.join(bins)}")
        if len(self.images) != 2 * len(self.issame):
            raise DatasetLayoutError(f"{self.source}: {len(self.images)} images but {len(self.issame)} pair labels; "
                                     f"expected two images per pair")
        logger.info("%s: %d pairs (%d same) from %s", type(self).__name__, len(self.issame), self.issame.sum(),
                    self.source)

    def read_filelist(self, folder, filelist):
        label_path = os.path.join(folder, f"{self.dataset_name}_label.npy")
        layout = f"{filelist} (one image path per line) and {label_path} (bool per pair)"
        images = [os.path.join(folder, line.split(" ")[0]) for _, line in read_list(filelist, layout)]
        if not os.path.isfile(label_path):
            raise DatasetLayoutError(f"missing file {label_path}; expected layout: {layout}")
        labels = np.load(label_path, allow_pickle=False)
        if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
            raise DatasetLayoutError(f"{label_path}: expected a 1-D array of bool or 0/1 pair labels, "
                                     f"got shape {labels.shape} dtype {labels.dtype}")
        return images, labels.astype(bool)

    def __len__(self):
        return len(self.images)

    def __repr__(self):
        return f"{type(self).__name__}({self.source}: {len(self.issame)} pairs)"


def _register(class_name, dataset_name, aliases=()):
    """One registered class per face set; they differ only in the file names they read."""
    cls = type(class_name, (FaceVerificationDataset,), {"dataset_name": dataset_name, "__module__": __name__,
                                                        "__doc__": f"The {dataset_name} verification pairs."})
    for name in (class_name, *aliases):
        DATASETS.register(cls, name=name)
    return cls


CALFW = _register("CALFW", "calfw")
CPLFW = _register("CPLFW", "cplfw")
LFW = _register("LFW", "lfw")
CFPFF = _register("CFPFF", "cfp_ff", aliases=("CFP_FF",))
CFPFP = _register("CFPFP", "cfp_fp", aliases=("CFP_FP",))
AgeDB30 = _register("AgeDB30", "agedb_30", aliases=("AgeDB_30",))
VGG2FP = _register("VGG2FP", "vgg2_fp", aliases=("VGG2_FP",))
