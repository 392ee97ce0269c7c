"""The competition JSON files: read and write `{"arch1": {"cplfw_rank": int, ..., "sop_rank": int, "arch": code}}`.

Train files carry ranks 0..N-1 per task, test files carry zeros, and a submission is the test file with every
rank filled in. Reading checks the schema entry by entry so that an error names the entry and the field, and
refuses what would silently give a wrong result: a key twice in the JSON, an architecture twice, and in a ranked
(training) file a rank given to two architectures of the same task.
"""
import json
from dataclasses import dataclass
from typing import List

import numpy as np
from scipy.stats import rankdata

from .arch import ArchCodeError, parse_arch_code

TASKS = ("cplfw", "market1501", "dukemtmc", "msmt17", "veri", "vehicleid", "veriwild", "sop")
RANK_FIELDS = tuple(f"{task}_rank" for task in TASKS)
ENTRY_FIELDS = RANK_FIELDS + ("arch",)


class SchemaError(ValueError):
    """A JSON file that does not follow the competition schema; the message names the file, entry and field."""


@dataclass
class RankingSet:
    """Architectures with their per-task ranks, in file order: ids [N], codes [N], ranks [N, 8] (TASKS order)."""

    ids: List[str]
    codes: np.ndarray
    ranks: np.ndarray

    def __len__(self):
        return len(self.ids)


def _refuse_duplicate_keys(path):
    """A json object hook that raises on a key given twice (json.load would keep the last one silently)."""
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise SchemaError(f"{path}: key {key!r} appears twice in one JSON object")
            seen.add(key)
        return dict(pairs)
    return hook


def read_ranking_json(path, ranked=False):
    """Read a train or test file of the competition into a `RankingSet`. `ranked=True` (training files) also
    requires every task's ranks to be distinct, so that they order the architectures."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=_refuse_duplicate_keys(path))
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise SchemaError(f"{path}: not UTF-8 text ({err})") from None
    if not isinstance(data, dict) or not data:
        raise SchemaError(f"{path}: expected a non-empty JSON object keyed by architecture id ('arch1', ...)")
    ids, codes, ranks = [], [], []
    for entry_id, entry in data.items():
        where = f"{path}: entry {entry_id!r}"
        if not isinstance(entry, dict):
            raise SchemaError(f"{where}: expected an object with fields {list(ENTRY_FIELDS)}")
        missing = [field for field in ENTRY_FIELDS if field not in entry]
        extra = [field for field in entry if field not in ENTRY_FIELDS]
        if missing or extra:
            problem = f"missing field {missing[0]!r}" if missing else f"unexpected field {extra[0]!r}"
            raise SchemaError(f"{where}: {problem}; expected exactly {list(ENTRY_FIELDS)}")
        for field in RANK_FIELDS:
            value = entry[field]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SchemaError(f"{where}, field {field!r}: expected a non-negative integer, got {value!r}")
        try:
            parse_arch_code(entry["arch"])
        except ArchCodeError as err:
            raise SchemaError(f"{where}, field 'arch': {err}") from None
        ids.append(entry_id)
        codes.append(entry["arch"])
        ranks.append([entry[field] for field in RANK_FIELDS])
    ranking_set = RankingSet(ids, np.array(codes), np.array(ranks, dtype=np.int64))
    _check_distinct_codes(path, ranking_set)
    if ranked:
        _check_distinct_ranks(path, ranking_set)
    return ranking_set


def _check_distinct_codes(path, ranking_set):
    first_entry = {}
    for entry_id, code in zip(ranking_set.ids, ranking_set.codes):
        if code in first_entry:
            raise SchemaError(f"{path}: entries {first_entry[code]!r} and {entry_id!r} have the same architecture "
                              f"{code}; each architecture must appear once")
        first_entry[code] = entry_id


def _check_distinct_ranks(path, ranking_set):
    if len(ranking_set) < 2:
        raise SchemaError(f"{path}: a training file needs at least 2 ranked architectures, got {len(ranking_set)}")
    for column, field in enumerate(RANK_FIELDS):
        values = ranking_set.ranks[:, column]
        if np.all(values == values[0]):
            raise SchemaError(f"{path}: field {field!r} is {values[0]} for every entry; a training file needs "
                              f"distinct ranks (0..N-1) per task")
        order = np.argsort(values, kind="stable")
        repeated = np.flatnonzero(np.diff(values[order]) == 0)
        if len(repeated):
            a, b = order[repeated[0]], order[repeated[0] + 1]
            raise SchemaError(f"{path}: entries {ranking_set.ids[a]!r} and {ranking_set.ids[b]!r} both have "
                              f"{field} {values[a]}; a training file needs distinct ranks (0..N-1) per task")


def write_ranking_json(path, ranking_set):
    """Write a `RankingSet` in the competition schema (field order: the eight ranks, then 'arch')."""
    data = {}
    for entry_id, code, row in zip(ranking_set.ids, ranking_set.codes, ranking_set.ranks):
        entry = {field: int(rank) for field, rank in zip(RANK_FIELDS, row)}
        entry["arch"] = str(code)
        data[entry_id] = entry
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def scores_to_ranks(scores):
    """Integer ranks 0..N-1 per column of a score array [N, T] (higher score -> higher rank; ties by order)."""
    scores = np.asarray(scores)
    return np.stack([rankdata(column, method="ordinal") - 1 for column in scores.T], axis=1).astype(np.int64)
