"""What every data-set reader shares: the root folder, layout checks with helpful errors, list-file parsing and a
summary table. Readers return raw ids; relabelling for training happens once, in `allinone.data.common`."""
import logging
import os

logger = logging.getLogger(__name__)

class DatasetLayoutError(ValueError):
    """The data on disk does not have the expected layout; the message names the path (and line) and the layout."""


def dataset_root(root=None):
    """The folder holding all data sets: `root`, else `$FASTREID_DATASETS`, else `datasets` (as the original)."""
    return root if root is not None else os.environ.get("FASTREID_DATASETS", "datasets")


def read_list(path, layout):
    """Lines of a list file as (line number, stripped text), blank lines skipped; a missing file names the layout."""
    require_file(path, layout)
    with open(path, encoding="utf-8") as f:
        return [(number, line.strip()) for number, line in enumerate(f, 1) if line.strip()]


def read_fields(path, layout, sep, count, expected):
    """Lines of a list file as (line number, fields): each line split on `sep` into exactly `count` non-empty
    fields; any other line is an error naming the file and line and quoting `expected` (e.g. '<imgid> <vid>')."""
    rows = []
    for number, line in read_list(path, layout):
        fields = line.split(sep)
        if len(fields) != count or not all(fields):
            raise DatasetLayoutError(f"{path}, line {number}: expected '{expected}', got '{line}'")
        rows.append((number, fields))
    return rows


def require_dir(path, layout):
    if not os.path.isdir(path):
        raise DatasetLayoutError(f"missing folder {path}; expected layout: {layout}")
    return path


def require_file(path, layout):
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"missing file {path}; expected layout: {layout}")
    return path


def parse_int(text, path, number, what):
    """int(text), or an error naming the list file, the line and what the field should have been."""
    try:
        return int(text)
    except ValueError:
        raise DatasetLayoutError(f"{path}, line {number}: {what} must be an integer, got '{text}'") from None


class ReidDataset:
    """A set with `train`, `query` and `gallery` lists of `(img_path, pid, camid)`.

    Subclasses set `dataset_name` and `layout` (quoted in every error) and implement `read()`; each reads its train
    split too, as the original did, so a broken download fails at construction.
    """

    dataset_name = None
    layout = ""

    def __init__(self, root=None):
        self.root = dataset_root(root)
        self.train, self.query, self.gallery = self.read()
        logger.info("%s from %s:\n%s", type(self).__name__, self.root, self.summary())

    def read(self):
        raise NotImplementedError

    def summary(self):
        """A small table (subset, ids, images, cameras), the one fast-reid logs after loading."""
        rows = [f"{self.dataset_name:<12} {'ids':>8} {'images':>9} {'cameras':>8}"]
        for subset in ("train", "query", "gallery"):
            items = getattr(self, subset)
            rows.append(f"{subset:<12} {len({i[1] for i in items}):>8} {len(items):>9} {len({i[2] for i in items}):>8}")
        return "\n".join(rows)

    def __repr__(self):
        return (f"{type(self).__name__}(root={self.root!r}: train {len(self.train)}, query {len(self.query)}, "
                f"gallery {len(self.gallery)})")
