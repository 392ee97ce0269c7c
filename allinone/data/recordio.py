"""MXNet RecordIO (`train.rec` + `train.idx`), read and written directly, without mxnet.

A record is: uint32 magic 0xced7230a, uint32 (cflag << 29 | length), `length` bytes, zero padding to 4 bytes.
An image record's bytes start with the header struct `IfQQ` (flag, label, id, id2); when flag > 0, `flag` float32
labels follow; the rest is the encoded image. The `.idx` file lists `<key>\\t<byte offset>` per record.
insightface's face sets put a table in record 0 (flag 2, label = [first identity record, end]): records
1 .. first-1 are images, and each identity record's label is the [start, end) range of its images.
"""
import os
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = 0xCED7230A
HEADER = struct.Struct("<IfQQ")
LENGTH_MASK = (1 << 29) - 1


class RecordIOError(ValueError):
    """A malformed `.rec` / `.idx` pair; the message names the file and the record or line."""


def read_index(idx_path):
    """{key: byte offset} from a `.idx` file."""
    index = {}
    with open(idx_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            try:
                index[int(fields[0])] = int(fields[1])
            except (IndexError, ValueError):
                raise RecordIOError(f"{idx_path}, line {number}: expected '<key>\\t<offset>', got {line!r}") from None
    return index


def read_record(f, offset, rec_path):
    """The payload bytes of the record at `offset` of the open file `f`."""
    f.seek(offset)
    head = f.read(8)
    if len(head) != 8:
        raise RecordIOError(f"{rec_path}: no record at byte {offset} (file ends)")
    magic, packed = struct.unpack("<II", head)
    if magic != MAGIC:
        raise RecordIOError(f"{rec_path}: bad magic {magic:#x} at byte {offset}; not a RecordIO record")
    if packed >> 29 != 0:
        raise RecordIOError(f"{rec_path}: record at byte {offset} is split in parts (cflag {packed >> 29}); "
                            f"multi-part records are not supported")
    payload = f.read(packed & LENGTH_MASK)
    if len(payload) != packed & LENGTH_MASK:
        raise RecordIOError(f"{rec_path}: record at byte {offset} is truncated")
    return payload


def unpack_payload(payload):
    """(labels as a float32 array, image bytes) from an image record's payload."""
    flag, label, _, _ = HEADER.unpack_from(payload)
    if flag > 0:
        labels = np.frombuffer(payload, dtype="<f4", count=flag, offset=HEADER.size)
        return labels, payload[HEADER.size + 4 * flag:]
    return np.array([label], dtype=np.float32), payload[HEADER.size:]


@dataclass(frozen=True)
class RecordRef:
    """One image inside a `.rec` file; `read_image` decodes it like a path, and errors name it as `file@offset`."""

    rec_path: str
    offset: int

    def read_bytes(self):
        with open(self.rec_path, "rb") as f:
            return unpack_payload(read_record(f, self.offset, self.rec_path))[1]

    def __str__(self):
        return f"{self.rec_path}@{self.offset}"


def read_labelled_images(rec_path, idx_path):
    """[(RecordRef, identity int)] for every image of an insightface face `.rec`, in record order.

    With the identity table of record 0, the labels come from the table (one read per identity, not per image);
    without it, every record is an image and its label is read from its header.
    """
    index = read_index(idx_path)
    if not index:
        raise RecordIOError(f"{idx_path}: no records listed")
    with open(rec_path, "rb") as f:

        def offset(key):
            if key not in index:
                raise RecordIOError(f"{idx_path}: record {key} (named by the identity table) is not listed")
            return index[key]

        def labels_of(key):
            return unpack_payload(read_record(f, offset(key), rec_path))[0]

        has_table = min(index) == 0 and HEADER.unpack_from(read_record(f, index[0], rec_path))[0] > 0
        if not has_table:
            return [(RecordRef(rec_path, index[key]), int(labels_of(key)[0])) for key in sorted(index)]
        first_identity, end = (int(x) for x in labels_of(0)[:2])
        items = []
        for identity, key in enumerate(range(first_identity, end)):
            start, stop = (int(x) for x in labels_of(key)[:2])
            items.extend((RecordRef(rec_path, offset(k)), identity) for k in range(start, stop))
        return items


def write_labelled_images(rec_path, idx_path, images_by_identity):
    """Write insightface's face layout: record 0 table, image records (label = identity), identity records.

    `images_by_identity` is a list (one entry per identity) of lists of encoded image bytes.
    """
    num_images = sum(len(images) for images in images_by_identity)
    first_identity = num_images + 1
    records = [_pack([first_identity, first_identity + len(images_by_identity)], b"")]
    for identity, images in enumerate(images_by_identity):
        records.extend(_pack([float(identity)], image) for image in images)
    start = 1
    for images in images_by_identity:
        records.append(_pack([start, start + len(images)], b""))
        start += len(images)
    os.makedirs(os.path.dirname(os.path.abspath(rec_path)), exist_ok=True)
    with open(rec_path, "wb") as rec, open(idx_path, "w", encoding="utf-8") as idx:
        for key, payload in enumerate(records):
            idx.write(f"{key}\t{rec.tell()}\n")
            rec.write(struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4))


def _pack(labels, image):
    """Header (flag 0 and the label for one label, else flag = count and the labels after it) + image bytes."""
    if len(labels) == 1:
        return HEADER.pack(0, labels[0], 0, 0) + image
    return HEADER.pack(len(labels), 0.0, 0, 0) + np.asarray(labels, dtype="<f4").tobytes() + image
