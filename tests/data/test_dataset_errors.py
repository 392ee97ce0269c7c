"""Readers validate what they read: each broken layout is an error naming the path (and line) and what was expected."""
import os
import shutil

import numpy as np
import pytest

import allinone.data  # noqa: F401
from allinone.data.datasets import DatasetLayoutError
from allinone.registry import DATASETS


def build(name, root, **args):
    return DATASETS.build({"name": name, "root": root, **args})


def append_line(path, line):
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def test_missing_folder_names_the_path_and_the_layout(copy_of):
    root = copy_of("Market-1501-v15.09.15")
    shutil.rmtree(os.path.join(root, "Market-1501-v15.09.15", "query"))
    with pytest.raises(DatasetLayoutError, match=r"missing folder .*Market-1501-v15\.09\.15/query; expected layout"):
        build("Market1501", root)


def test_missing_list_file_names_it(copy_of):
    root = copy_of("MSMT17_V2")
    os.remove(os.path.join(root, "MSMT17_V2", "list_val.txt"))
    assert len(build("MSMT17", root).train) == 12  # list_val.txt is read only with combineall
    with pytest.raises(DatasetLayoutError, match=r"missing file .*MSMT17_V2/list_val\.txt"):
        build("MSMT17", root, combineall=True)


def test_a_file_name_breaking_the_id_rule_is_reported_not_guessed(copy_of):
    root = copy_of("veri")
    shutil.copy(os.path.join(root, "veri", "image_query", "0100_c002_00000100_0.jpg"),
                os.path.join(root, "veri", "image_query", "car_c02.jpg"))
    with pytest.raises(DatasetLayoutError, match=r"car_c02\.jpg: file name does not follow the rule"):
        build("VeRi", root)


def test_a_pid_outside_the_published_range_is_an_error(copy_of):
    root = copy_of("Market-1501-v15.09.15")
    query = os.path.join(root, "Market-1501-v15.09.15", "query")
    shutil.copy(os.path.join(query, "0010_c1s1_000100_00.jpg"), os.path.join(query, "1600_c1s1_000100_00.jpg"))
    with pytest.raises(DatasetLayoutError, match=r"1600_c1s1_000100_00\.jpg: pid 1600 outside 0\.\.1501"):
        build("Market1501", root)


def test_an_unparsable_list_line_names_the_file_and_line(copy_of):
    root = copy_of("MSMT17_V2")
    append_line(os.path.join(root, "MSMT17_V2", "list_query.txt"), "0001/0001_000_01_x.jpg")
    with pytest.raises(DatasetLayoutError, match=r"list_query\.txt, line 6: expected '<relative path> <pid>'"):
        build("MSMT17", root)


def test_a_non_integer_id_in_a_list_names_the_field(copy_of):
    root = copy_of("vehicleid")
    append_line(os.path.join(root, "vehicleid", "train_test_split", "train_list.txt"), "0000099 car7")
    with pytest.raises(DatasetLayoutError, match=r"train_list\.txt, line 16: vid must be an integer, got 'car7'"):
        build("LargeVehicleID", root)


def test_a_veriwild_image_missing_from_vehicle_info_is_an_error(copy_of):
    root = copy_of("VERI-Wild")
    append_line(os.path.join(root, "VERI-Wild", "train_test_split", "test_10000_id.txt"), "00030/999999.jpg")
    with pytest.raises(DatasetLayoutError, match=r"test_10000_id\.txt, line 11: image 999999 is not in vehicle_info"):
        build("LargeVeRiWild", root)


def test_a_sop_line_without_exactly_one_comma_is_an_error(copy_of):
    root = copy_of("Stanford_Online_Products")
    append_line(os.path.join(root, "Stanford_Online_Products", "test.txt"), "chair_final/x.JPG 3")
    with pytest.raises(DatasetLayoutError, match=r"test\.txt, line 19: expected '<relative image path>,<label>'"):
        build("SOP", root)


def test_face_set_with_neither_filelist_nor_bin_lists_what_it_looked_for(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"faces_emore_val/lfw\.filelist .* or .*faces_emore/lfw\.bin"):
        build("LFW", str(tmp_path))


def test_face_labels_must_have_one_entry_per_pair(copy_of):
    root = copy_of("faces_emore_val")
    np.save(os.path.join(root, "faces_emore_val", "cplfw_label.npy"), np.ones(39, dtype=bool))
    with pytest.raises(DatasetLayoutError, match=r"cplfw\.filelist: 80 images but 39 pair labels"):
        build("CPLFW", root)


def test_a_corrupt_bin_is_an_error_naming_it(tmp_path):
    os.makedirs(tmp_path / "faces_emore")
    (tmp_path / "faces_emore" / "agedb_30.bin").write_bytes(b"not a pickle")
    with pytest.raises(DatasetLayoutError, match=r"agedb_30\.bin: not an insightface verification \.bin"):
        build("AgeDB_30", str(tmp_path))


def test_a_bin_holding_other_python_objects_is_refused(tmp_path):
    import pickle

    os.makedirs(tmp_path / "faces_emore")
    with open(tmp_path / "faces_emore" / "lfw.bin", "wb") as f:
        pickle.dump(([os.system], [True]), f)
    with pytest.raises(DatasetLayoutError, match=r"unexpected object"):
        build("LFW", str(tmp_path))
