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


NEW_STRUCTURES = ("network", "rules", "budget", "task-specific")


def test_every_family_is_deterministic_per_seed(benchmark_tool):
    tool = benchmark_tool
    codes = tool.sample_codes(200, np.random.default_rng(3))
    for family in tool.FAMILIES:
        first, again = tool.noise_free_scores(codes, family, 7), tool.noise_free_scores(codes, family, 7)
        np.testing.assert_array_equal(first, again, err_msg=family)
        assert not np.allclose(first, tool.noise_free_scores(codes, family, 8)), family


def linear_fit_share(tool, codes, scores):
    """Share of each task's score variance [T] that a linear model on the per-layer one-hot choices explains."""
    X = np.hstack([tool.choice_onehot(tool.Features(codes)), np.ones((len(codes), 1))])
    residual = scores - X @ np.linalg.lstsq(X, scores, rcond=None)[0]
    return 1 - residual.var(0) / scores.var(0)


def test_new_structures_are_not_the_per_layer_additive_kind(benchmark_tool):
    """`rules` (steps on counts and positions) and `network` (tanh units) leave a part that no per-layer additive
    model explains; `additive` is explained exactly."""
    tool = benchmark_tool
    codes = tool.sample_codes(3000, np.random.default_rng(0))
    assert linear_fit_share(tool, codes, tool.noise_free_scores(codes, "additive", 0)).min() > 0.999
    for family, most in (("rules", 0.85), ("network", 0.95)):
        share = linear_fit_share(tool, codes, tool.noise_free_scores(codes, family, 0))
        assert share.mean() < most, (family, share.round(2))


def test_budget_has_a_per_task_optimum_below_the_largest_architecture(benchmark_tool):
    """Non-monotone in size: on most tasks the largest architecture (12 layers, 12 heads, mlp 4 everywhere) is not
    among the best 10% of a sample, although it has the most parameters and FLOPs."""
    tool = benchmark_tool
    codes = tool.sample_codes(2000, np.random.default_rng(1))
    largest = np.array(["l" + "111" * 12])
    for seed in (0, 1):
        scores, top = tool.noise_free_scores(codes, "budget", seed), tool.noise_free_scores(largest, "budget", seed)
        below_top_decile = top[0] < np.quantile(scores, 0.9, axis=0)
        assert below_top_decile.sum() >= len(TASKS) // 2, (seed, below_top_decile)


def test_task_specific_tasks_correlate_more_weakly_than_in_the_shared_families(benchmark_tool):
    tool = benchmark_tool
    codes = tool.sample_codes(2000, np.random.default_rng(2))
    upper = np.triu_indices(len(TASKS), 1)
    for seed in (0, 1):
        weak = np.corrcoef(tool.noise_free_scores(codes, "task-specific", seed).T)[upper]
        shared = np.corrcoef(tool.noise_free_scores(codes, "network", seed).T)[upper]
        assert 0 < np.median(weak) < 0.4 and np.median(weak) < np.median(shared), (seed, np.median(weak))
        share = linear_fit_share(tool, codes, tool.noise_free_scores(codes, "task-specific", seed))
        assert share.max() > 0.95 and share.min() < 0.7, share.round(2)  # one structure per task: some linear, some not


def test_new_structures_are_calibrated_to_the_ceiling(benchmark_tool):
    """The noise rule of the other families holds for the new ones, the step-valued `rules` (ties in the clean
    score) included: the oracle's tau on a fresh sample equals the ceiling per task."""
    tool = benchmark_tool
    ceiling = np.array([tool.CEILING_TAU[task] for task in TASKS])
    for family in NEW_STRUCTURES:
        clean = tool.family_score(family, 4)(tool.Features(tool.sample_codes(8000, np.random.default_rng(13))))
        noisy = clean + np.random.default_rng(14).normal(size=clean.shape) * tool.noise_sd(family, 4)
        taus = np.array([kendalltau(clean[:, t], noisy[:, t]).statistic for t in range(len(TASKS))])
        assert np.abs(taus - ceiling).max() < 0.02, (family, taus.round(3))
