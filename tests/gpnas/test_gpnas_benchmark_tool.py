"""tools/make_gpnas_benchmark.py writes reproducible files in the competition schema with learnable ranks."""
import filecmp

import numpy as np

from oneforall.gpnas import TASKS, read_ranking_json


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
