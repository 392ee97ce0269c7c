"""Competition JSON: exact schema on read and write, errors naming entry and field, ranks 0..N-1."""
import json

import numpy as np
import pytest

from oneforall.gpnas import RankingSet, SchemaError, read_ranking_json, scores_to_ranks, write_ranking_json

ARCH1 = "l231131331121121331111211121331321321"
ARCH2 = "j111231321311311221231121111231000000"
ARCH3 = "k" + "111" * 11 + "000"
ARCH1_ENTRY = {"cplfw_rank": 9, "market1501_rank": 361, "dukemtmc_rank": 426, "msmt17_rank": 433, "veri_rank": 327,
               "vehicleid_rank": 480, "veriwild_rank": 425, "sop_rank": 367, "arch": ARCH1}


def write_json(tmp_path, data):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_reads_the_spec_example_entry(tmp_path):
    data = read_ranking_json(write_json(tmp_path, {"arch1": ARCH1_ENTRY}))
    assert data.ids == ["arch1"]
    assert list(data.codes) == [ARCH1]
    assert data.ranks.tolist() == [[9, 361, 426, 433, 327, 480, 425, 367]]


def test_write_then_read_gives_the_same_file_content(tmp_path):
    source = write_json(tmp_path, {"arch1": ARCH1_ENTRY, "arch2": dict(ARCH1_ENTRY, sop_rank=0, arch=ARCH2)})
    copy = str(tmp_path / "copy.json")
    write_ranking_json(copy, read_ranking_json(source))
    with open(source) as a, open(copy) as b:
        assert json.load(a) == json.load(b)


def test_written_entries_keep_the_competition_field_order(tmp_path):
    path = str(tmp_path / "out.json")
    write_ranking_json(path, RankingSet(["arch7"], np.array([ARCH1]), np.arange(8)[None]))
    with open(path) as f:
        assert list(json.load(f)["arch7"]) == list(ARCH1_ENTRY)


@pytest.mark.parametrize("entry, field, expected", [
    ({k: v for k, v in ARCH1_ENTRY.items() if k != "veri_rank"}, "'veri_rank'", "missing field"),
    (dict(ARCH1_ENTRY, speed=1), "'speed'", "unexpected field"),
    (dict(ARCH1_ENTRY, sop_rank="12"), "field 'sop_rank'", "non-negative integer"),
    (dict(ARCH1_ENTRY, cplfw_rank=1.5), "field 'cplfw_rank'", "non-negative integer"),
    (dict(ARCH1_ENTRY, arch=ARCH1[:-1] + "0"), "field 'arch'", "position 36"),
])
def test_schema_errors_name_the_entry_and_the_field(tmp_path, entry, field, expected):
    path = write_json(tmp_path, {"arch1": ARCH1_ENTRY, "arch2": entry})
    with pytest.raises(SchemaError, match="entry 'arch2'") as err:
        read_ranking_json(path)
    assert field in str(err.value) and expected in str(err.value) and "train.json" in str(err.value)


def test_a_file_that_is_not_an_object_of_entries_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match="keyed by architecture id"):
        read_ranking_json(write_json(tmp_path, [ARCH1_ENTRY]))


def test_scores_become_integer_ranks_0_to_n_minus_1_per_task():
    ranks = scores_to_ranks(np.array([[0.3, 5.0], [-1.0, 5.0], [2.0, 1.0]]))
    assert ranks.tolist() == [[1, 1], [0, 2], [2, 0]]


def ranked_pair(**changes):
    """arch1 and a second architecture ranked one place higher on every task, with `changes` applied."""
    second = {field: rank + 1 for field, rank in ARCH1_ENTRY.items() if field != "arch"}
    second.update(arch=ARCH2)
    second.update(changes)
    return {"arch1": ARCH1_ENTRY, "arch2": second}


@pytest.mark.parametrize("data, ranked, expected", [
    (ranked_pair(arch=ARCH1), False, "entries 'arch1' and 'arch2' have the same architecture"),
    (dict(ranked_pair(market1501_rank=361), arch3=dict(ranked_pair()["arch2"], arch=ARCH3, market1501_rank=0,
                                                         sop_rank=0, cplfw_rank=0)), True,
     "entries 'arch1' and 'arch2' both have market1501_rank 361"),
    ({"arch1": ARCH1_ENTRY}, True, "at least 2 ranked architectures"),
])
def test_files_that_cannot_be_meant_are_refused(tmp_path, data, ranked, expected):
    with pytest.raises(SchemaError, match=expected):
        read_ranking_json(write_json(tmp_path, data), ranked=ranked)


def test_equal_ranks_are_fine_in_a_test_file_but_not_in_a_training_file(tmp_path):
    zeros = {field: 0 for field in ARCH1_ENTRY if field != "arch"}
    path = write_json(tmp_path, {"arch1": dict(zeros, arch=ARCH1), "arch2": dict(zeros, arch=ARCH2)})
    assert not read_ranking_json(path).ranks.any()
    with pytest.raises(SchemaError, match="'cplfw_rank' is 0 for every entry"):
        read_ranking_json(path, ranked=True)
    assert read_ranking_json(write_json(tmp_path, ranked_pair()), ranked=True).ranks[1, 0] == 10


@pytest.mark.parametrize("second_entry_text, key", [
    ('"arch1": ' + json.dumps(dict(ARCH1_ENTRY, arch=ARCH2)), "arch1"),
    ('"arch2": ' + json.dumps(dict(ARCH1_ENTRY, arch=ARCH2))[:-1] + ', "sop_rank": 3}', "sop_rank"),
])
def test_a_key_given_twice_is_refused_not_overwritten(tmp_path, second_entry_text, key):
    path = tmp_path / "twice.json"
    path.write_text('{"arch1": ' + json.dumps(ARCH1_ENTRY) + ", " + second_entry_text + "}")
    with pytest.raises(SchemaError, match=f"key '{key}' appears twice"):
        read_ranking_json(str(path))
