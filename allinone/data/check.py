"""Check a data-set root before a long run: which sets load, their sizes against the published ones, and (with
--files) whether every listed image is a non-empty file with an image header.

    python -m allinone.data.check [--root DIR] [--files] [NAME ...]     # root default: $FASTREID_DATASETS

Exit status 1 if a set fails to load or (with --files) has a missing, empty or non-image file; 2 for a wrong
command line.
"""
import argparse
import logging
import os
import sys

from ..utils.cli import quiet_third_party
from ..utils.env import configure_threads

# Published sizes (docs/data.md): (train images, train ids, query, gallery) for ReID / retrieval / training
# sets, (pairs,) for face sets. None = not published.
EXPECTED = {
    "CALFW": (6000,), "CPLFW": (6000,), "LFW": (6000,), "CFP_FF": (7000,), "CFP_FP": (7000,), "AgeDB_30": (6000,),
    "Market1501": (12936, 751, 3368, 15913),
    "DukeMTMC": (16522, 702, None, None),
    "MSMT17": (30248, 1041, 11659, 82161),
    "VeRi": (37778, 576, 1678, 11579),
    "LargeVehicleID": (113346, 13164, 17377, 2400),
    "LargeVeRiWild": (277797, 30671, 10000, 128517),
    "SOP": (59551, 11318, 60502, 0),
    "MS1MV3": (5179510, 93431, 0, 0),
}


def measure(dataset):
    """The numbers EXPECTED lists, measured on a loaded data set."""
    if hasattr(dataset, "issame"):
        return (len(dataset.issame),)
    return len(dataset.train), len({pid for _, pid, _ in dataset.train}), len(dataset.query), len(dataset.gallery)


def image_file_problem(path):
    """Why `path` cannot be a readable image ('missing', 'empty', 'not an image'), or None. Reads only the header:
    a truncated body is found when the image is decoded."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        return "missing"
    if os.path.getsize(path) == 0:
        return "empty"
    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError):
        return "not an image"
    return None


def missing_images(dataset, limit=5):
    """Up to `limit` listed image files that are missing, empty or not images, as 'path (why)' (images held in
    memory or in a .rec are not checked)."""
    sources = dataset.images if hasattr(dataset, "images") else [
        item[0] for item in dataset.train + dataset.query + dataset.gallery]
    bad = []
    for source in sources:
        problem = image_file_problem(source) if isinstance(source, str) else None
        if problem:
            bad.append(f"{source} ({problem})")
            if len(bad) == limit:
                break
    return bad


def check(names, root, check_files=False, out=None):
    """Load each named set from `root` and report to `out` (stdout); True when every set loaded (with its images)."""
    out = out or sys.stdout
    import allinone.data  # noqa: F401  (registers the data sets)
    from ..registry import DATASETS
    from .datasets import DatasetLayoutError

    healthy = True
    for name in names:
        try:
            dataset = DATASETS.build({"name": name, "root": root})
        except DatasetLayoutError as err:
            healthy = False
            print(f"{name:<15} NOT READABLE: {err}", file=out)
            continue
        sizes, expected = measure(dataset), EXPECTED.get(name)
        differs = expected and any(e is not None and e != m for e, m in zip(expected, sizes))
        note = f" (published {expected})" if differs else " (as published)" if expected else ""
        print(f"{name:<15} {sizes}{note}", file=out)
        if check_files:
            missing = missing_images(dataset)
            if missing:
                healthy = False
                print(f"{'':<15} unreadable images, e.g. {missing}", file=out)
    return healthy


def main(argv=None):
    quiet_third_party()
    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"registry names (default: {', '.join(EXPECTED)})")
    parser.add_argument("--root", default=None, help="data-set root (default: $FASTREID_DATASETS or 'datasets')")
    parser.add_argument("--files", action="store_true", help="also check that every listed image file exists")
    args = parser.parse_args(argv)
    logging.getLogger("allinone.data").setLevel(logging.WARNING)  # the report below says it all
    from .datasets import dataset_root

    return 0 if check(args.names or list(EXPECTED), dataset_root(args.root), args.files) else 1


if __name__ == "__main__":
    sys.exit(main())
