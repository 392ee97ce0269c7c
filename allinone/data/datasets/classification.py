"""Image classification test sets: a folder per class, or a list file of `<relative image path> <label>` lines."""
import logging
import os

from ...registry import DATASETS
from .base import DatasetLayoutError, dataset_root, parse_int, read_fields, require_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
logger = logging.getLogger(__name__)


@DATASETS.register()
class ImageClassification:
    """`items`: (image path, integer label) in a fixed order.

    `folder` is relative to the data root. Without `list_file`, every sub-folder of `folder` is a class (labels
    0..C-1 in sorted folder-name order, `classes` keeps the names) and its images are read in sorted order. With
    `list_file` (relative to `folder`), each line is `<image path relative to folder> <label>`.
    """

    def __init__(self, root=None, folder="classification", list_file=None, name=None):
        self.root = dataset_root(root)
        self.folder = os.path.join(self.root, folder)
        self.dataset_name = name or os.path.basename(os.path.normpath(folder)).lower()
        self.layout = (f"$ROOT/{folder}/ with {list_file} (lines '<relative image path> <label>')" if list_file
                       else f"$ROOT/{folder}/<class name>/<image>{'|'.join(IMAGE_SUFFIXES)}")
        require_dir(self.folder, self.layout)
        self.items, self.classes = (self.read_list(list_file) if list_file else self.read_folders())
        if not self.items:
            raise DatasetLayoutError(f"{self.folder}: no images; expected layout: {self.layout}")
        logger.info("%s from %s: %d images, %d classes", self.dataset_name, self.folder, len(self.items),
                    len(self.classes))

    def read_list(self, list_file):
        list_path = os.path.join(self.folder, list_file)
        items = [(os.path.join(self.folder, rel_path), parse_int(label, list_path, number, "the label"))
                 for number, (rel_path, label) in read_fields(list_path, self.layout, " ", 2,
                                                               "<relative image path> <label>")]
        return items, sorted({label for _, label in items})

    def read_folders(self):
        classes = sorted(entry.name for entry in os.scandir(self.folder) if entry.is_dir())
        items = [(os.path.join(self.folder, name, image), label) for label, name in enumerate(classes)
                 for image in sorted(os.listdir(os.path.join(self.folder, name)))
                 if image.lower().endswith(IMAGE_SUFFIXES)]
        return items, classes

    def __repr__(self):
        return f"ImageClassification({self.folder!r}: {len(self.items)} images, {len(self.classes)} classes)"
