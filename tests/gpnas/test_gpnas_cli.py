"""`python -m oneforall.gpnas`: cv prints per-task and mean Kendall tau; fit-predict writes a schema-exact
submission; malformed input fails with a message naming the entry and field."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.model_selection import KFold

from oneforall.gpnas import (TASKS, PaddleSlimGPNAS, cross_validated_kendall_tau, encode, read_ranking_json)
from oneforall.gpnas.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_cv_output(text):
    rows = [line.split() for line in text.splitlines() if line.startswith("  ")]
    return {name: float(value) for name, value in rows}


def test_cv_prints_every_task_and_their_mean(benchmark, capsys):
    assert main(["cv", "--train", benchmark["train"], "--predictor", "baseline-fast", "--folds", "3"]) == 0
    taus = parse_cv_output(capsys.readouterr().out)
    assert list(taus) == list(TASKS) + ["mean"]
    assert taus["mean"] == pytest.approx(np.mean([taus[task] for task in TASKS]), abs=1e-4)


def test_cv_tau_is_the_mean_over_shuffled_folds_of_held_out_kendall_tau(benchmark):
    train = read_ranking_json(benchmark["train"])
    x, y = encode(train.codes, "convert_x"), train.ranks[:, 3]
    expected = np.mean([kendalltau(PaddleSlimGPNAS().fit(x[fit], y[fit]).predict(x[held]), y[held]).statistic
                        for fit, held in KFold(4, shuffle=True, random_state=7).split(x)])
    taus = cross_validated_kendall_tau(train, "baseline-fast", folds=4, seed=7, progress=False)
    assert taus["msmt17"] == pytest.approx(expected, abs=1e-12)


def test_fit_predict_writes_the_test_file_with_ranks_0_to_n_minus_1(benchmark, tmp_path):
    out = tmp_path / "submit.json"
    subprocess.run([sys.executable, "-m", "oneforall.gpnas", "fit-predict", "--train", benchmark["train"],
                    "--test", benchmark["test"], "--out", str(out), "--predictor", "baseline-slow"],
                   check=True, capture_output=True, cwd=REPO)
    with open(benchmark["test"]) as f:
        test = json.load(f)
    with open(out) as f:
        submission = json.load(f)
    assert list(submission) == list(test)
    for entry_id, entry in submission.items():
        assert list(entry) == list(test[entry_id])
        assert entry["arch"] == test[entry_id]["arch"]
    for task in TASKS:
        ranks = [entry[f"{task}_rank"] for entry in submission.values()]
        assert all(type(rank) is int for rank in ranks)
        assert sorted(ranks) == list(range(len(test)))


def test_ours_ranks_unseen_architectures_far_better_than_chance(benchmark, tmp_path):
    out = str(tmp_path / "submit.json")
    assert main(["fit-predict", "--train", benchmark["train"], "--test", benchmark["test"], "--out", out]) == 0
    predicted, truth = read_ranking_json(out), read_ranking_json(benchmark["test_truth"])
    taus = [kendalltau(predicted.ranks[:, t], truth.ranks[:, t]).statistic for t in range(len(TASKS))]
    assert np.mean(taus) > 0.5


def test_malformed_train_json_fails_naming_entry_and_field(benchmark, tmp_path, capsys):
    with open(benchmark["train"]) as f:
        data = json.load(f)
    data["arch5"]["dukemtmc_rank"] = "high"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["cv", "--train", str(bad), "--predictor", "baseline-fast"]) == 2
    message = capsys.readouterr().err
    assert "entry 'arch5'" in message and "field 'dukemtmc_rank'" in message


def test_unknown_encoding_fails_with_the_known_names(benchmark, capsys):
    assert main(["cv", "--train", benchmark["train"], "--encoding", "binary"]) == 2
    assert "unknown encoding 'binary'" in capsys.readouterr().err
