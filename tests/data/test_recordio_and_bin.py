"""Round trips of the two binary formats: insightface's RecordIO face set and its verification `.bin`."""
import io
import struct

import numpy as np
import pytest
from PIL import Image

from allinone.data import read_image
from allinone.data.datasets import read_verification_bin, write_verification_bin
from allinone.data.recordio import MAGIC, RecordIOError, read_labelled_images, write_labelled_images


def encoded(colour, fmt="JPEG"):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def test_recordio_round_trip_keeps_images_and_identities(tmp_path):
    images = [[encoded((200, 0, 0)), encoded((190, 10, 0), "PNG")], [encoded((0, 0, 200))]]
    write_labelled_images(str(tmp_path / "train.rec"), str(tmp_path / "train.idx"), images)
    items = read_labelled_images(str(tmp_path / "train.rec"), str(tmp_path / "train.idx"))
    assert [identity for _, identity in items] == [0, 0, 1]
    assert [ref.read_bytes() for ref, _ in items] == images[0] + images[1]
    assert read_image(items[2][0]).size == (16, 12)


def test_recordio_without_identity_table_reads_labels_from_headers(tmp_path):
    with open(tmp_path / "train.rec", "wb") as rec, open(tmp_path / "train.idx", "w") as idx:
        for key, label in enumerate((3.0, 5.0)):
            payload = struct.pack("<IfQQ", 0, label, key, 0) + encoded((key * 100, 0, 0))
            idx.write(f"{key + 1}\t{rec.tell()}\n")
            rec.write(struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4))
    items = read_labelled_images(str(tmp_path / "train.rec"), str(tmp_path / "train.idx"))
    assert [identity for _, identity in items] == [3, 5]


def test_recordio_bad_magic_names_the_file_and_offset(tmp_path):
    (tmp_path / "train.rec").write_bytes(b"\0" * 64)
    (tmp_path / "train.idx").write_text("0\t8\n")
    with pytest.raises(RecordIOError, match=r"train\.rec: bad magic 0x0 at byte 8"):
        read_labelled_images(str(tmp_path / "train.rec"), str(tmp_path / "train.idx"))


def test_recordio_bad_index_line_names_the_line(tmp_path):
    (tmp_path / "train.rec").write_bytes(b"")
    (tmp_path / "train.idx").write_text("0\t0\nthree\n")
    with pytest.raises(RecordIOError, match=r"train\.idx, line 2"):
        read_labelled_images(str(tmp_path / "train.rec"), str(tmp_path / "train.idx"))


def test_verification_bin_round_trip(tmp_path):
    images = [encoded((i * 40, 0, 0)) for i in range(4)]
    write_verification_bin(str(tmp_path / "lfw.bin"), images, [True, False])
    read_images, issame = read_verification_bin(str(tmp_path / "lfw.bin"))
    assert read_images == images and issame.tolist() == [True, False] and issame.dtype == bool


def test_verification_bin_with_numpy_byte_arrays_is_read(tmp_path):
    import pickle

    image = encoded((1, 2, 3))
    with open(tmp_path / "cfp_fp.bin", "wb") as f:
        pickle.dump(([np.frombuffer(image, dtype=np.uint8)] * 2, np.array([True])), f)
    images, issame = read_verification_bin(str(tmp_path / "cfp_fp.bin"))
    assert images == [image, image] and issame.tolist() == [True]
