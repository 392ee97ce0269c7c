"""Every reader on the miniature tree: counts, id and camera rules, junk handling, and the splits."""
import os

import numpy as np
import pytest

import allinone.data  # noqa: F401  (registers the data sets)
from allinone.registry import DATASETS


def build(name, root, **args):
    return DATASETS.build({"name": name, "root": root, **args})


# name: train images, query images, gallery images, test ids, cameras in query + gallery
REID_COUNTS = {
    "Market1501": (24, 5, 22, 6, 6),
    "DukeMTMC": (15, 5, 10, 5, 5),
    "MSMT17": (12, 5, 15, 5, 4),
    "VeRi": (15, 5, 15, 5, 6),
    "LargeVehicleID": (15, 24, 12, 12, 36),
    "LargeVeRiWild": (15, 5, 10, 5, 4),
}


@pytest.mark.parametrize("name", sorted(REID_COUNTS))
def test_reid_reader_counts_on_the_mini_tree(mini_root, name):
    dataset = build(name, mini_root)
    train, query, gallery, ids, cams = REID_COUNTS[name]
    assert (len(dataset.train), len(dataset.query), len(dataset.gallery)) == (train, query, gallery)
    assert len({pid for _, pid, _ in dataset.query + dataset.gallery}) == ids
    assert len({cam for _, _, cam in dataset.query + dataset.gallery}) == cams
    assert all(os.path.isfile(path) for path, _, _ in dataset.train + dataset.query + dataset.gallery)


@pytest.mark.parametrize("name", sorted(REID_COUNTS))
def test_every_reid_query_has_a_match_on_another_camera(mini_root, name):
    dataset = build(name, mini_root)
    for _, pid, cam in dataset.query:
        assert any(g_pid == pid and g_cam != cam for _, g_pid, g_cam in dataset.gallery)


def test_market1501_drops_junk_keeps_distractors_and_shifts_cameras(mini_root):
    dataset = build("Market1501", mini_root)
    gallery_pids = [pid for _, pid, _ in dataset.gallery]
    assert -1 not in gallery_pids and gallery_pids.count(0) == 2
    path, pid, camid = next(item for item in dataset.query if item[1] == 10)
    assert os.path.basename(path) == "0010_c1s1_000100_00.jpg" and camid == 0
    assert all(isinstance(pid, int) and isinstance(cam, int) for _, pid, cam in dataset.query)


def test_market1501_reads_the_root_itself_without_the_versioned_folder(mini_root, tmp_path):
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        os.symlink(os.path.join(mini_root, "Market-1501-v15.09.15", sub), tmp_path / sub)
    assert len(build("Market1501", str(tmp_path)).query) == 5


def test_root_defaults_to_the_fastreid_datasets_variable(mini_root, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", mini_root)
    assert DATASETS.build({"name": "VeRi"}).root == mini_root


def test_msmt17_trains_on_list_train_alone_unless_combineall_adds_list_val(mini_root):
    train_only, combined = build("MSMT17", mini_root), build("MSMT17", mini_root, combineall=True)
    assert (len(train_only.train), len({pid for _, pid, _ in train_only.train})) == (12, 4)
    assert (len(combined.train), len({pid for _, pid, _ in combined.train})) == (14, 5)
    assert combined.train[:12] == train_only.train


def test_msmt17_takes_the_camera_from_the_third_field(mini_root):
    dataset = build("MSMT17", mini_root)
    path, pid, camid = dataset.query[0]
    assert path.endswith("mask_test_v2/0000/0000_000_01_0303morning_0000_0.jpg") and (pid, camid) == (0, 0)


def test_msmt17_version_1_reads_the_v1_folders(copy_of):
    root = copy_of("MSMT17_V2")
    os.rename(os.path.join(root, "MSMT17_V2"), os.path.join(root, "MSMT17_V1"))
    for v2, v1 in (("mask_train_v2", "train"), ("mask_test_v2", "test")):
        os.rename(os.path.join(root, "MSMT17_V1", v2), os.path.join(root, "MSMT17_V1", v1))
    assert len(build("MSMT17", root, version=1).gallery) == 15


def test_vehicleid_gallery_holds_one_image_per_vehicle_and_camid_is_the_image_id(mini_root):
    dataset = build("LargeVehicleID", mini_root)
    assert sorted(pid for _, pid, _ in dataset.gallery) == list(range(50, 62))
    path, _, camid = dataset.query[0]
    assert int(os.path.basename(path)[:-4]) == camid


def test_vehicleid_split_is_seeded_and_each_seed_partitions_the_test_list(mini_root):
    dataset = build("LargeVehicleID", mini_root, seed=3)
    assert dataset.split(3) == (dataset.query, dataset.gallery)
    query, gallery = dataset.split(4)
    assert (query, gallery) != (dataset.query, dataset.gallery)
    assert sorted(query + gallery) == sorted(dataset.test_items)


@pytest.mark.parametrize("name, vehicles", [("SmallVehicleID", 4), ("MediumVehicleID", 8), ("VehicleID", 12)])
def test_vehicleid_sizes_read_their_own_test_list(mini_root, name, vehicles):
    assert len(build(name, mini_root).gallery) == vehicles


def test_veriwild_takes_cameras_from_vehicle_info(mini_root):
    dataset = build("LargeVeRiWild", mini_root)
    path, pid, camid = dataset.query[0]
    assert path.endswith("VERI-Wild/images/00030/000016.jpg") and (pid, camid) == (30, 1 + 30 % 4)


def test_sop_keeps_string_labels_and_queries_the_whole_test_set(mini_root):
    dataset = build("SOP", mini_root)
    assert (len(dataset.train), len(dataset.query), dataset.gallery) == (18, 18, [])
    assert dataset.query[0][1:] == ("7", "0") and dataset.query[0][0].endswith("bicycle_final/000000007000_0.JPG")


@pytest.mark.parametrize("name, dataset_name", [("CALFW", "calfw"), ("CPLFW", "cplfw"), ("LFW", "lfw"),
                                                ("CFP_FF", "cfp_ff"), ("CFPFP", "cfp_fp"), ("AgeDB_30", "agedb_30"),
                                                ("VGG2_FP", "vgg2_fp")])
def test_face_sets_read_the_filelist_in_order_with_pair_labels(mini_root, name, dataset_name):
    dataset = build(name, mini_root)
    assert dataset.dataset_name == dataset_name and dataset.source.endswith(".filelist")
    assert len(dataset.images) == 80 and dataset.issame.dtype == bool and dataset.issame.tolist() == [True, False] * 20
    assert dataset.images[3] == os.path.join(mini_root, "faces_emore_val", dataset_name, "00003.png")


def test_face_sets_read_the_insightface_bin_when_there_is_no_filelist(mini_root, copy_of):
    from_bin = build("LFW", copy_of("faces_emore"))
    from_filelist = build("LFW", mini_root)
    assert from_bin.source.endswith(os.path.join("faces_emore", "lfw.bin"))
    assert np.array_equal(from_bin.issame, from_filelist.issame)
    with open(from_filelist.images[5], "rb") as f:
        assert from_bin.images[5] == f.read()


def test_ms1mv3_reads_identity_folders_with_folder_names_as_ids(mini_root):
    dataset = build("MS1MV3", mini_root)
    assert len(dataset.train) == 32 and dataset.train[0][1:] == ("id_00000", "0") and dataset.query == []


def test_ms1mv3_reads_insightface_recordio_when_train_rec_is_there(mini_root):
    dataset = build("MS1MV3", mini_root, folder="ms1m-retinaface-t1")
    assert len(dataset.train) == 24 and [pid for _, pid, _ in dataset.train] == [i // 3 for i in range(24)]
    assert str(dataset.train[0][0]).startswith(os.path.join(mini_root, "ms1m-retinaface-t1", "train.rec@"))
