"""A miniature copy of every data-set layout, for tests, the demo and smoke-testing an install.

Images are small real JPEG/PNG files; all images of one identity share a pattern (two colours, stripe angle and
frequency) with per-image noise and shifts, so even a tiny model can learn to match them. Each layout keeps the
features the readers must handle: cameras, Market's junk (-1) and distractor (0) ids, a grayscale and a PNG image,
face file lists plus insightface `.bin` files, and a small insightface `train.rec` / `train.idx`.
`scale` multiplies the identity counts and face pairs (test ids start after the training ids); `hard=True` paints
identities that colour alone does not tell apart (the demo's tree, where training has something to learn).

Kept next to the tools, not in the `allinone` package: it makes test data and is no part of training or evaluation.
`tools/make_mini_datasets.py` and `tools/demo.py` import it from their own folder; the tests put `tools/` on
`sys.path` (tests/conftest.py).
"""
import io
import os
import zlib

import numpy as np
from PIL import Image

from allinone.data.datasets.faces import write_verification_bin
from allinone.data.recordio import write_labelled_images

FACE_SETS = ("calfw", "cplfw", "lfw", "cfp_ff", "cfp_fp", "agedb_30", "vgg2_fp")
FACE_PAIRS = 40          # 4 pairs per fold of the 10-fold protocol (times `scale`)
FACE_IDENTITIES = 24
MAX_SCALE = 68           # VeRi test ids end at 95 + 10 x scale <= 776
# The colours of the hard images, shared by all identities.
PALETTE = np.array([(200, 40, 40), (40, 160, 60), (50, 70, 200), (220, 200, 60), (160, 60, 180), (60, 190, 200),
                    (235, 235, 235), (40, 40, 40)])


class PatternPainter:
    """Draws images of identities: identity key -> fixed pattern; each image -> its own noise, phase, brightness."""

    def __init__(self, seed):
        self.seed = seed
        self.rng = np.random.RandomState(seed)
        self.patterns = {}

    def pattern(self, key):
        if key not in self.patterns:
            self.patterns[key] = self.new_pattern(np.random.RandomState([self.seed, zlib.crc32(repr(key).encode())]))
        return self.patterns[key]

    def new_pattern(self, rng):
        return rng.randint(0, 256, 3), rng.randint(0, 256, 3), rng.uniform(0, np.pi), rng.uniform(0.15, 0.6)

    def pixels(self, key, height, width):
        colour_a, colour_b, angle, frequency = self.pattern(key)
        ys, xs = np.mgrid[0:height, 0:width]
        phase = self.rng.uniform(0, 2 * np.pi)
        stripes = (np.sin(frequency * (xs * np.cos(angle) + ys * np.sin(angle)) + phase) > 0)[..., None]
        pixels = np.where(stripes, colour_a, colour_b) * self.rng.uniform(0.85, 1.15)
        return pixels + self.rng.normal(0, 8, pixels.shape)

    def image(self, key, size, gray=False):
        image = Image.fromarray(np.clip(self.pixels(key, *size), 0, 255).astype(np.uint8))
        return image.convert("L") if gray else image

    def encode(self, key, size, fmt="JPEG", gray=False):
        buffer = io.BytesIO()
        self.image(key, size, gray).save(buffer, format=fmt, quality=90)
        return buffer.getvalue()

    def save(self, path, key, size, gray=False):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fmt = "PNG" if path.lower().endswith(".png") else "JPEG"
        with open(path, "wb") as f:
            f.write(self.encode(key, size, fmt, gray))


class HardPatternPainter(PatternPainter):
    """An identity is two of the shared palette colours plus a stripe angle and period; the stripes fill a random box
    over a background of a random palette colour, so mean colours mix identities and a model must learn to look."""

    def new_pattern(self, rng):
        return rng.choice(len(PALETTE), 2, replace=False), rng.uniform(0, np.pi), rng.uniform(8.0, 20.0)

    def pixels(self, key, height, width):
        colour_pair, angle, period = self.pattern(key)
        rng = self.rng
        angle, period = angle + rng.normal(0, 0.03), period * rng.uniform(0.95, 1.05)
        ys, xs = np.mgrid[0:height, 0:width]
        phase = rng.uniform(0, 2 * np.pi)
        stripes = (np.sin(2 * np.pi / period * (xs * np.cos(angle) + ys * np.sin(angle)) + phase) > 0)[..., None]
        pixels = np.broadcast_to(PALETTE[rng.randint(len(PALETTE))] * rng.uniform(0.4, 1.0), (height, width, 3))
        box_h, box_w = int(height * rng.uniform(0.6, 0.9)), int(width * rng.uniform(0.6, 0.9))
        top, left = rng.randint(height - box_h + 1), rng.randint(width - box_w + 1)
        box = (ys >= top) & (ys < top + box_h) & (xs >= left) & (xs < left + box_w)
        pixels = np.where(box[..., None], np.where(stripes, *PALETTE[colour_pair]), pixels)
        return pixels * rng.uniform(0.7, 1.3) + rng.normal(0, 8, pixels.shape)


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


def make_market1501(out, paint, scale):
    """Train ids 1-6; test ids 10-14 (query on camera 1 or 2; gallery on cameras 3-5 plus one image on the query's
    camera, which the protocol ignores), distractors (pid 0, kept) and junk (pid -1, dropped by the reader).
    `scale` multiplies both counts (test ids then start at 10 x scale)."""
    root, size = os.path.join(out, "Market-1501-v15.09.15"), (64, 32)
    for pid in range(1, 6 * scale + 1):
        for n, cam in enumerate((1, 2, 3, 4)):
            paint.save(f"{root}/bounding_box_train/{pid:04d}_c{cam}s1_{n:06d}_00.jpg", ("market", pid), size)
    for pid in range(10 * scale, 15 * scale):
        paint.save(f"{root}/query/{pid:04d}_c{1 + pid % 2}s1_000100_00.jpg", ("market", pid), size)
        for n, cam in enumerate((3, 4, 5)):
            paint.save(f"{root}/bounding_box_test/{pid:04d}_c{cam}s2_{n:06d}_00.jpg", ("market", pid), size,
                       gray=(pid, cam) == (10 * scale, 5))
        paint.save(f"{root}/bounding_box_test/{pid:04d}_c{1 + pid % 2}s3_000200_00.jpg", ("market", pid), size)
    for n, cam in enumerate((2, 6)):
        paint.save(f"{root}/bounding_box_test/0000_c{cam}s1_{n:06d}_00.jpg", ("market", 0, n), size)
        paint.save(f"{root}/bounding_box_test/-1_c{cam}s1_{n:06d}_00.jpg", ("market", -1, n), size)


def make_dukemtmc(out, paint, scale):
    root, size = os.path.join(out, "DukeMTMC-reID"), (64, 32)
    for pid in range(1, 5 * scale + 1):
        for cam in (1, 2, 3):
            paint.save(f"{root}/bounding_box_train/{pid:04d}_c{cam}_f{pid * 100 + cam:07d}.jpg", ("duke", pid), size)
    for pid in range(20 * scale, 25 * scale):
        paint.save(f"{root}/query/{pid:04d}_c{1 + pid % 8}_f0000001.jpg", ("duke", pid), size)
        for cam in (7, 8):
            paint.save(f"{root}/bounding_box_test/{pid:04d}_c{cam}_f{cam:07d}.jpg", ("duke", pid), size)


def make_msmt17(out, paint, scale):
    """MSMT17_V2 lists; test pids restart at 0, as in the real lists."""
    root, size = os.path.join(out, "MSMT17_V2"), (64, 32)

    def add(subdir, key, pid, cams):
        lines = []
        for n, cam in enumerate(cams):
            rel = f"{pid:04d}/{pid:04d}_{n:03d}_{cam:02d}_0303morning_{n:04d}_0.jpg"
            paint.save(f"{root}/{subdir}/{rel}", key, size)
            lines.append(f"{rel} {pid}")
        return lines

    train_ids = 4 * scale
    train = [line for pid in range(train_ids) for line in add("mask_train_v2", ("msmt", pid), pid, (1, 2, 3))]
    write_lines(f"{root}/list_train.txt", train)
    write_lines(f"{root}/list_val.txt", add("mask_train_v2", ("msmt", train_ids), train_ids, (5, 6)))
    query, gallery = [], []
    for pid in range(5 * scale):
        lines = add("mask_test_v2", ("msmt-test", pid), pid, (1, 7, 8, 9))
        query.append(lines[0])
        gallery.extend(lines[1:])
    write_lines(f"{root}/list_query.txt", query)
    write_lines(f"{root}/list_gallery.txt", gallery)


def make_veri(out, paint, scale):
    root, size = os.path.join(out, "veri"), (48, 64)
    for pid in range(1, 5 * scale + 1):
        for cam in (1, 2, 3):
            paint.save(f"{root}/image_train/{pid:04d}_c{cam:03d}_{cam * 1000:08d}_0.jpg", ("veri", pid), size)
    for pid in range(95 + 5 * scale, 95 + 10 * scale):  # 100-104 at scale 1; VeRi-776 ids stop at 776
        paint.save(f"{root}/image_query/{pid:04d}_c{1 + pid % 3:03d}_00000100_0.jpg", ("veri", pid), size)
        for cam in (5, 6, 20):
            paint.save(f"{root}/image_test/{pid:04d}_c{cam:03d}_{cam:08d}_0.jpg", ("veri", pid), size)


def make_vehicleid(out, paint, scale):
    root, size = os.path.join(out, "vehicleid"), (48, 64)
    image_id, train, test = 0, [], []
    vehicles = [(vid, train) for vid in range(1, 5 * scale + 1)]
    vehicles += [(vid, test) for vid in range(50 * scale, 62 * scale)]
    for vid, lines in vehicles:
        for _ in range(3):
            image_id += 1
            paint.save(f"{root}/image/{image_id:07d}.jpg", ("vehicleid", vid), size)
            lines.append(f"{image_id:07d} {vid}")
    write_lines(f"{root}/train_test_split/train_list.txt", train)
    for name, test_vehicles in (("800", 4), ("1600", 8), ("2400", 12), ("13164", 12)):
        write_lines(f"{root}/train_test_split/test_list_{name}.txt", test[:3 * test_vehicles * scale])


def make_veriwild(out, paint, scale):
    root, size = os.path.join(out, "VERI-Wild"), (48, 64)
    info = ["id/image;Camera ID;Time;Model;Type;Color"]
    image_id, splits = 0, {"train": [], "query": [], "gallery": []}
    test_start = 30 * scale
    for vid in list(range(1, 5 * scale + 1)) + list(range(test_start, test_start + 5 * scale)):
        for n in range(3):
            image_id += 1
            cam = 1 + (vid + n) % 4
            paint.save(f"{root}/images/{vid:05d}/{image_id:06d}.jpg", ("veriwild", vid), size)
            info.append(f"{vid:05d}/{image_id:06d};{cam};2018-03-11 11:{n:02d}:00;Audi;SUV;white")
            split = "train" if vid < test_start else ("query" if n == 0 else "gallery")
            splits[split].append(f"{vid:05d}/{image_id:06d}" + (".jpg" if split == "gallery" else ""))
    write_lines(f"{root}/train_test_split/vehicle_info.txt", info)
    write_lines(f"{root}/train_test_split/train_list.txt", splits["train"])
    for ids in ("3000", "5000", "10000"):
        write_lines(f"{root}/train_test_split/test_{ids}_id_query.txt", splits["query"])
        write_lines(f"{root}/train_test_split/test_{ids}_id.txt", splits["gallery"])


def make_sop(out, paint, scale):
    root, size = os.path.join(out, "Stanford_Online_Products"), (48, 48)
    lists = {"train.txt": [], "test.txt": []}
    for label in range(1, 12 * scale + 1):
        name = "train.txt" if label <= 6 * scale else "test.txt"
        for n in range(3):
            rel = f"{'bicycle' if label % 2 else 'chair'}_final/{label * 1000:012d}_{n}.JPG"
            paint.save(f"{root}/{rel}", ("sop", label), size)
            lists[name].append(f"{rel},{label}")
    for name, lines in lists.items():
        write_lines(f"{root}/{name}", lines)


def make_faces(out, paint, scale):
    """Per set: 40 x scale pairs alternating same / different identity, as image files + a file list (extra tokens
    on each line, as the originals have) + `_label.npy`, and the same pairs as an insightface `.bin`."""
    size, rng = (48, 48), np.random.RandomState(paint.seed)
    identities = FACE_IDENTITIES * scale
    for name in FACE_SETS:
        lines, encoded, issame = [], [], []
        for pair in range(FACE_PAIRS * scale):
            first = rng.randint(identities)
            second = first if pair % 2 == 0 else (first + 1 + rng.randint(identities - 1)) % identities
            for slot, identity in enumerate((first, second)):
                rel = f"{name}/{2 * pair + slot:05d}." + ("png" if (pair, slot) == (1, 1) else "jpg")
                paint.save(os.path.join(out, "faces_emore_val", rel), ("face", identity), size)
                with open(os.path.join(out, "faces_emore_val", rel), "rb") as f:
                    encoded.append(f.read())
                lines.append(f"{rel} {identity}")
            issame.append(pair % 2 == 0)
        write_lines(os.path.join(out, "faces_emore_val", f"{name}.filelist"), lines)
        np.save(os.path.join(out, "faces_emore_val", f"{name}_label.npy"), np.array(issame))
        os.makedirs(os.path.join(out, "faces_emore"), exist_ok=True)
        write_verification_bin(os.path.join(out, "faces_emore", f"{name}.bin"), encoded, issame)


def make_ms1m(out, paint, scale):
    """`ms1mv3/<identity>/*.jpg` folders, and the insightface release folder `ms1m-retinaface-t1/train.rec`."""
    size, identities = (48, 48), range(8 * scale)
    for identity in identities:
        for n in range(4):
            paint.save(os.path.join(out, "ms1mv3", f"id_{identity:05d}", f"{n}.jpg"), ("face-train", identity), size)
    rec_dir = os.path.join(out, "ms1m-retinaface-t1")
    images = [[paint.encode(("face-train", identity), size) for _ in range(3)] for identity in identities]
    write_labelled_images(os.path.join(rec_dir, "train.rec"), os.path.join(rec_dir, "train.idx"), images)


MAKERS = (make_market1501, make_dukemtmc, make_msmt17, make_veri, make_vehicleid, make_veriwild, make_sop, make_faces,
          make_ms1m)


def make_mini_datasets(out_dir, seed=0, scale=1, hard=False):
    """Write the miniature tree under `out_dir` (use it as `$FASTREID_DATASETS`); returns `out_dir`.

    `scale` multiplies every identity count and the face pairs; `hard` paints with HardPatternPainter."""
    if not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"make_mini_datasets: scale must be an integer in 1..{MAX_SCALE} (VeRi-776 ids stop at 776), "
                         f"got {scale!r}")
    paint = (HardPatternPainter if hard else PatternPainter)(seed)
    for make in MAKERS:
        make(out_dir, paint, scale)
    return out_dir


# ---- the OneForAll recipe's training sets (make_oneforall_datasets; the tree above is unchanged) ----

def make_personall(out, paint, scale):
    """`PersonAll/mask_train_v3/<pid>/<pid>_<n>_<cam>_....jpg` + `list_train.txt` (MSMT17-like names)."""
    root, size, lines = os.path.join(out, "PersonAll"), (64, 32), []
    for pid in range(5 * scale):
        for n, cam in enumerate((1, 2, 3, 4)):
            rel = f"{pid:04d}/{pid:04d}_{n:03d}_{cam:02d}_0303morning_{n:04d}_0.jpg"
            paint.save(f"{root}/mask_train_v3/{rel}", ("personall", pid), size)
            lines.append(f"{rel} {pid}")
    write_lines(f"{root}/list_train.txt", lines)


def make_veriall(out, paint, scale):
    for vid in range(5 * scale):
        for n in range(4):
            paint.save(os.path.join(out, "veriall", f"{vid:05d}", f"{n}.jpg"), ("veriall", vid), (48, 64))


def make_classification_sets(out, paint, scale, num_classes=3, train_per_class=4, test_per_class=2):
    """The 20 classification sets of the recipe, each in its layout family (see
    allinone/data/datasets/classification_sets.py): `num_classes x scale` classes, painted per class."""
    classes = num_classes * scale

    def save(path, set_name, label):
        paint.save(path, (set_name, label), (32, 32))

    def folder_set(folder, splits, names):
        for split, count in splits:
            for label, name in enumerate(names):
                for n in range(count):
                    save(f"{out}/{folder}/{split}/{name}/{n:04d}.jpg", folder, label)

    counts = (train_per_class, test_per_class)
    int_names = [str(c) for c in range(classes)]
    word_names = [f"class_{c:02d}" for c in range(classes)]
    for folder, train, test, names in (
            ("intern_test/cifar100", "train", "test", int_names), ("intern_test/cifar10", "train", "test", int_names),
            ("intern_test/svhn", "train", "test", int_names), ("Decathlon/daimlerpedcls", "train", "val", word_names),
            ("Decathlon/omniglot", "train", "val", word_names), ("Decathlon/ucf101", "train", "val", word_names),
            ("intern_test/patchcamelyon", "train", "valid", word_names),
            ("intern_test/fer2013", "train", "test", word_names),
            ("intern_test/oxford102flower/Oxford_102_Flower/dataset", "train", "valid",
             [str(c + 1) for c in range(classes)])):
        folder_set(folder, ((train, counts[0]), (test, counts[1])), names)

    # GTSRB: training folders of *.ppm, test images listed in a ';' csv
    gtsrb = f"{out}/intern_test/gtsrb/GTSRB_official"
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for label in range(classes):
        for n in range(counts[0]):
            path = f"{gtsrb}/Final_Training/Images/{label:05d}/{label:05d}_{n:05d}.ppm"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            paint.image(("gtsrb", label), (32, 32)).save(path, format="PPM")
        for n in range(counts[1]):
            name = f"{label * 100 + n:05d}.ppm"
            os.makedirs(f"{gtsrb}/Final_Test/Images", exist_ok=True)
            paint.image(("gtsrb", label), (32, 32)).save(f"{gtsrb}/Final_Test/Images/{name}", format="PPM")
            rows.append(f"{name};32;32;0;0;31;31;{label}")
    write_lines(f"{gtsrb}/Final_Test/GT-final_test.csv", rows)

    def list_set(folder, image_dir, files, line, set_name, path_of):
        """`files`: (list file, per-class count); `line(rel, label)` formats a list line."""
        for list_file, count in files:
            lines = []
            for label in range(classes):
                for n in range(count):
                    rel = path_of(label, f"{list_file.replace('/', '_')}_{n}")
                    save(f"{out}/{folder}/{image_dir}/{rel}", set_name, label)
                    lines.append(line(rel, label))
            write_lines(f"{out}/{folder}/{list_file}", lines)

    strip = lambda rel: rel[:-4]  # noqa: E731  (lists that name images without the extension)
    list_set("ILSVRC2012", "", (("train_list.txt", counts[0]), ("val_list.txt", counts[1])),
             lambda rel, label: f"{rel} {label}", "imagenet",
             lambda label, n: f"{'train' if 'train' in n else 'val'}/n{label:08d}/{n}.JPEG")
    list_set("intern_test/fgvcaircraft/fgvc-aircraft-2013b/data", "images",
             [(f"images_variant_{s}.txt", c) for s, c in (("train", 2), ("val", 2), ("test", counts[1]))],
             lambda rel, label: f"{strip(rel)} Boeing 7{label}7-{label}00", "aircraft",
             lambda label, n: f"{label:02d}{zlib.crc32(n.encode()) % 10 ** 5:05d}.jpg")
    list_set("intern_test/dtd", "images", (("labels/train1.txt", 2), ("labels/val1.txt", 2), ("labels/test1.txt", 2)),
             lambda rel, label: rel, "dtd", lambda label, n: f"texture_{label:02d}/{n}.jpg")
    list_set("intern_test/oxfordpet/Oxford_IIIT_Pet", "images",
             (("annotations/trainval.txt", counts[0]), ("annotations/test.txt", counts[1])),
             lambda rel, label: f"{strip(rel)} {label + 1} {1 + label % 2} {label // 2 + 1}", "pet",
             lambda label, n: f"breed_{label:02d}_{n}.jpg")
    list_set("intern_test/food101/food-101", "images", (("meta/train.txt", counts[0]), ("meta/test.txt", counts[1])),
             lambda rel, label: strip(rel), "food101", lambda label, n: f"dish_{label:02d}/{n}.jpg")
    list_set("intern_test/sun397", "SUN397", (("Training_01.txt", counts[0]), ("Testing_01.txt", counts[1])),
             lambda rel, label: "/" + rel, "sun397",
             lambda label, n: f"{'ab'[label % 2]}/scene_{label:02d}/" + ("indoor/" if label == 0 else "") + f"{n}.jpg")
    list_set("intern_train/compcars/data", "image",
             (("train_test_split/classification/train.txt", counts[0]),
              ("train_test_split/classification/test.txt", counts[1])),
             lambda rel, label: rel, "compcars", lambda label, n: f"{label % 2 + 1}/{label + 10}/201{label % 3}/{n}.jpg")
    # DF20: csv with a header; FoodX251: header-less csv; TsingHuaDogs: MXNet .lst
    for folder, files, header, image_dir, fmt in (
            ("intern_train/df20", ("DF20-train_metadata.csv", "DF20-public_test_metadata.csv"),
             "image_path,class_id,species", "images", lambda rel, label: f"{rel},{label},species {label}"),
            ("intern_train/foodx251", ("annot/train_info.csv", "annot/val_info.csv"), None, ("train_set", "val_set"),
             lambda rel, label: f"{rel},{label}")):
        for split, (file, count) in enumerate(zip(files, counts)):
            rows = [header] if header else []
            folder_images = image_dir if isinstance(image_dir, str) else image_dir[split]
            for label in range(classes):
                for n in range(count):
                    rel = f"{folder.split('/')[-1]}_{split}_{label}_{n}.jpg"
                    save(f"{out}/{folder}/{folder_images}/{rel}", folder, label)
                    rows.append(fmt(rel, label))
            write_lines(f"{out}/{folder}/{file}", rows)
    dogs = f"{out}/intern_train/tsinghuadogs/low-resolution"
    for file, count in zip(("train.lst", "val.lst"), counts):
        rows = []
        for label in range(classes):
            for n in range(count):
                rel = f"{label + 200}-n{label:06d}-breed/{file[:-4]}_{n}.jpg"
                save(f"{dogs}/{rel}", "dogs", label)
                rows.append(f"{len(rows)}\t{label}.000000\t{rel}")
        write_lines(f"{dogs}/{file}", rows)


def make_oneforall_datasets(out_dir, seed=0, scale=1, hard=False):
    """The OneForAll recipe's training layouts not in `make_mini_datasets` (PersonAll, VeriAll and the 20
    classification sets) under `out_dir`; combine both for the recipe's 24 tasks. Returns `out_dir`."""
    if not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"make_oneforall_datasets: scale must be an integer in 1..{MAX_SCALE}, got {scale!r}")
    paint = (HardPatternPainter if hard else PatternPainter)(seed + 1)
    for make in (make_personall, make_veriall, make_classification_sets):
        make(out_dir, paint, scale)
    return out_dir
