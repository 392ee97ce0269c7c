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


def test_ours_writes_a_submission_and_a_report_of_its_choices(benchmark, tmp_path, capsys):
    out = str(tmp_path / "submit.json")
    assert main(["fit-predict", "--train", benchmark["train"], "--test", benchmark["test"], "--out", out]) == 0
    log = capsys.readouterr().out
    predicted, truth = read_ranking_json(out), read_ranking_json(benchmark["test_truth"])
    taus = [kendalltau(predicted.ranks[:, t], truth.ranks[:, t]).statistic for t in range(len(TASKS))]
    assert np.mean(taus) > 0.5
    with open(tmp_path / "submit.report.json") as f:
        report = json.load(f)
    assert [entry["task"] for entry in report["tasks"]] == list(TASKS)
    for entry in report["tasks"]:
        assert entry["cv_tau"] >= entry["best_single"]["cv_tau"] >= entry["baseline_cv_tau"]
        assert abs(sum(member["weight"] for member in entry["model"]) - 1) < 1e-9
        assert f"{entry['task']:<11} cv tau {entry['cv_tau']:.4f}" in log


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
    assert main(["cv", "--train", benchmark["train"], "--predictor", "ridge", "--encoding", "binary"]) == 2
    assert "unknown encoding 'binary'" in capsys.readouterr().err


def test_encoding_override_of_ours_is_refused(benchmark, capsys):
    assert main(["cv", "--train", benchmark["train"], "--encoding", "onehot"]) == 2
    assert "chooses its encodings" in capsys.readouterr().err


@pytest.mark.parametrize("edit, expected", [
    (lambda data: data["arch7"].update(arch=data["arch3"]["arch"]), "entries 'arch3' and 'arch7' have the same"),
    (lambda data: data["arch7"].update(sop_rank=data["arch3"]["sop_rank"]), "both have sop_rank"),
    (lambda data: [entry.update(cplfw_rank=0) for entry in data.values()], "'cplfw_rank' is 0 for every entry"),
])
def test_training_files_that_do_not_rank_are_refused_by_every_command(benchmark, tmp_path, capsys, edit, expected):
    with open(benchmark["train"]) as f:
        data = json.load(f)
    edit(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "submit.json"
    for argv in (["cv", "--predictor", "baseline-fast"],
                 ["fit-predict", "--predictor", "baseline-fast", "--test", benchmark["test"], "--out", str(out)]):
        assert main(argv + ["--train", str(bad)]) == 2
        assert expected in capsys.readouterr().err
    assert not out.exists()


def test_an_unwritable_submission_path_fails_before_the_fit(benchmark, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = str(blocker / "submit.json")
    assert main(["fit-predict", "--train", benchmark["train"], "--test", benchmark["test"], "--out", out]) == 2
    captured = capsys.readouterr()
    assert "--out" in captured.err and "chosen per task" not in captured.out


def test_a_json_key_given_twice_is_refused(benchmark, tmp_path, capsys):
    text = open(benchmark["train"]).read()
    doubled = text.replace('"arch2": {"cplfw_rank"', '"arch2": {"cplfw_rank": 3, "cplfw_rank"', 1)
    assert doubled != text
    bad = tmp_path / "bad.json"
    bad.write_text(doubled)
    assert main(["cv", "--train", str(bad), "--predictor", "baseline-fast"]) == 2
    assert "key 'cplfw_rank' appears twice" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--threads", "0"], ["--threads", "-2"], ["--folds", "1"]])
def test_nonsense_counts_are_refused(benchmark, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["cv", "--train", benchmark["train"]] + option)
    assert stop.value.code == 2 and "expected an integer >=" in capsys.readouterr().err


def test_score_prints_the_kendall_tau_of_a_submission_per_task(benchmark, tmp_path, capsys):
    submission = str(tmp_path / "submit.json")
    assert main(["fit-predict", "--train", benchmark["train"], "--test", benchmark["test"], "--out", submission,
                 "--predictor", "baseline-fast"]) == 0
    capsys.readouterr()
    assert main(["score", "--pred", submission, "--truth", benchmark["test_truth"]]) == 0
    taus = parse_cv_output(capsys.readouterr().out)
    predicted, truth = read_ranking_json(submission), read_ranking_json(benchmark["test_truth"])
    for column, task in enumerate(TASKS):
        assert taus[task] == pytest.approx(kendalltau(predicted.ranks[:, column], truth.ranks[:, column]).statistic,
                                           abs=1e-4)
    assert main(["score", "--pred", submission, "--truth", benchmark["train"]]) == 2
    assert "is in only one of them" in capsys.readouterr().err
    assert main(["score", "--pred", benchmark["test"], "--truth", benchmark["test_truth"]]) == 2
    assert "gives every architecture the same cplfw_rank (0)" in capsys.readouterr().err
