"""tools/make_gpnas_benchmark.py writes reproducible files in the competition schema with learnable ranks."""
import filecmp
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kendalltau

from oneforall.gpnas import TASKS, read_ranking_json

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_train_ranks_are_a_permutation_per_task_and_test_ranks_are_zero(benchmark):
    train, test = read_ranking_json(benchmark["train"]), read_ranking_json(benchmark["test"])
    assert train.ids[:2] == ["arch1", "arch2"] and len(train) == 160 and len(test) == 300
    for column in range(len(TASKS)):
        assert sorted(train.ranks[:, column]) == list(range(160))
    assert not test.ranks.any()
    assert len(set(train.codes) | set(test.codes)) == 460


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, make_benchmark):
    first, again, other = (make_benchmark(tmp_path / name, 20, 10, seed) for name, seed in
                           (("a", 3), ("b", 3), ("c", 4)))
    assert filecmp.cmp(first["train"], again["train"], shallow=False)
    assert not filecmp.cmp(first["train"], other["train"], shallow=False)


def test_tasks_share_a_signal_but_rank_differently(benchmark):
    truth = read_ranking_json(benchmark["test_truth"]).ranks
    correlation = np.corrcoef(truth.T)[np.triu_indices(len(TASKS), 1)]
    assert correlation.min() > 0 and correlation.max() < 0.99


def test_training_file_does_not_depend_on_the_test_size(tmp_path, make_benchmark):
    small, large = make_benchmark(tmp_path / "small", 20, 10), make_benchmark(tmp_path / "large", 20, 50)
    assert filecmp.cmp(small["train"], large["train"], shallow=False)


def test_readme_form_with_a_positional_output_directory(tmp_path):
    """`python tools/make_gpnas_benchmark.py output/gpnas` as README.md shows it."""
    result = subprocess.run([sys.executable, os.path.join("tools", "make_gpnas_benchmark.py"), str(tmp_path / "gpnas"),
                             "--train", "12", "--test", "5", "--family", "depth"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert len(read_ranking_json(str(tmp_path / "gpnas" / "CCF_UFO_train.json"), ranked=True)) == 12


def test_every_family_writes_a_ranked_benchmark_with_correlated_tasks_and_learnable_ranks(tmp_path, benchmark_tool):
    tool = benchmark_tool
    for family in tool.FAMILIES:
        train_path = tool.make_benchmark(str(tmp_path / family), 200, 10, seed=1, family=family)[0]
        train = read_ranking_json(train_path, ranked=True)
        clean = tool.noise_free_scores(train.codes, family, seed=1)
        taus = [kendalltau(clean[:, t], train.ranks[:, t]).statistic for t in range(len(TASKS))]
        assert 0.05 < min(taus) and max(taus) > 0.8, (family, taus)  # cplfw noisiest, some task nearly clean
        correlation = np.corrcoef(clean.T)[np.triu_indices(len(TASKS), 1)]
        assert correlation.mean() > 0.2, family


def test_families_differ_in_structure(benchmark_tool):
    tool = benchmark_tool
    codes = tool.sample_codes(300, np.random.default_rng(0))
    scores = {family: tool.noise_free_scores(codes, family, seed=0)[:, 3] for family in tool.FAMILIES}
    assert kendalltau(scores["additive"], scores["interactions"]).statistic < 0.5


def test_unknown_family_and_a_missing_directory_are_refused(tmp_path, capsys, benchmark_tool):
    for argv, expected in (([str(tmp_path), "--family", "cubic"], "invalid choice: 'cubic'"),
                           ([], "give the output directory once")):
        with pytest.raises(SystemExit) as stop:
            benchmark_tool.main(argv)
        assert stop.value.code == 2 and expected in capsys.readouterr().err


def test_noise_is_calibrated_so_the_oracle_reaches_the_ceiling_on_unseen_architectures(benchmark_tool):
    """The noise-free score ranks a fresh sample (not the calibration's) with the ceiling's tau per task, also for
    a bounded score (saturating: tanh) and heavy-tailed noise, where the Gaussian formula would miss by 0.1."""
    tool = benchmark_tool
    assert abs(np.mean(list(tool.CEILING_TAU.values())) - 0.7991) < 1e-3  # the best public mean score
    for family in ("saturating", "heavy-tailed"):
        score, distribution = tool.family_score(family, 5), tool.FAMILIES[family][2]
        clean = score(tool.Features(tool.sample_codes(8000, np.random.default_rng(11))))
        noisy = clean + tool.draw_noise(np.random.default_rng(12), clean.shape, distribution) * tool.noise_sd(family, 5)
        taus = np.array([kendalltau(clean[:, t], noisy[:, t]).statistic for t in range(len(TASKS))])
        ceiling = np.array([tool.CEILING_TAU[task] for task in TASKS])
        assert np.abs(taus - ceiling).max() < 0.02, (family, taus.round(3))
    doubled, single = tool.noise_sd("noisy", 2), tool.noise_sd("mixed", 2)
    np.testing.assert_allclose(doubled, 2 * single)
