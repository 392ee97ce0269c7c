"""python -m oneforall.gpnas search on measurements of a real tiny supernet (evaluate_subnets with latency), and the
pieces of the search: the Pareto front, the rank-fraction accuracy, the quantile mapping of latency scores."""
import json
import subprocess
import sys

import numpy as np
import pytest

from engine_tools import ROOT, tool_env
from oneforall.gpnas.search import mean_rank_fraction, pareto_front, read_measurements, search


def test_the_pareto_front_keeps_exactly_the_undominated_rows():
    rng = np.random.RandomState(0)
    accuracy, latency = rng.uniform(size=200), rng.uniform(size=200)
    front = pareto_front(accuracy, latency)
    dominated = [i for i in range(200) if any((accuracy[j] >= accuracy[i]) and (latency[j] <= latency[i])
                                              and (accuracy[j] > accuracy[i] or latency[j] < latency[i])
                                              for j in range(200))]
    assert sorted(front) == sorted(set(range(200)) - set(dominated))
    assert list(latency[front]) == sorted(latency[front]) and list(accuracy[front]) == sorted(accuracy[front])


def test_mean_rank_fraction_is_one_for_the_best_on_every_task_and_zero_for_the_worst():
    scores = np.array([[3.0, 30.0], [1.0, 10.0], [2.0, 20.0]])
    np.testing.assert_allclose(mean_rank_fraction(scores), [1.0, 0.0, 0.5])


@pytest.fixture(scope="module")
def measured(supernet, mini_root, tmp_path_factory):
    config, weights, _ = supernet
    output = tmp_path_factory.mktemp("measured")
    result = subprocess.run([sys.executable, "-m", "oneforall.evaluate_subnets", "--config", config, "--model_path",
                             weights, "--output", str(output), "--quiet", "--sample", "24", "--latency_runs", "5",
                             "--latency_group", "24"], cwd=ROOT, env=tool_env(mini_root), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return output / "measurements.json"


def test_search_returns_the_best_predicted_architectures_within_the_budget_with_a_plot(measured, tmp_path):
    measurements = read_measurements(str(measured))
    assert len(measurements) == 24 and np.all(measurements.latency_ms > 0)
    budget = float(np.median(measurements.latency_ms))
    result = subprocess.run([sys.executable, "-m", "oneforall.gpnas", "search", "--measurements", str(measured),
                             "--budget-ms", str(budget), "--predictor", "ridge", "--candidates", "2000",
                             "--plot", str(tmp_path / "front.png"), "--out", str(tmp_path / "search.json")],
                            cwd=ROOT, env=tool_env("."), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    answer = json.loads((tmp_path / "search.json").read_text())
    assert 1 <= len(answer["chosen"]) <= 5
    assert all(entry["predicted_latency_ms"] <= budget for entry in answer["chosen"])
    chosen_accuracy = [entry["predicted_accuracy"] for entry in answer["chosen"]]
    assert chosen_accuracy == sorted(chosen_accuracy, reverse=True)
    assert answer["chosen"][0]["arch"] in result.stdout

    # the same search in Python: nothing within the budget beats the first choice
    found = search(measurements, budget, predictor="ridge", candidates=2000)
    within = found.latency_ms <= budget
    assert found.accuracy[found.chosen[0]] == found.accuracy[within].max()
    assert found.codes[found.chosen[0]] == answer["chosen"][0]["arch"]


def test_search_refuses_measurements_without_latency(supernet, mini_root, tmp_path):
    config, weights, _ = supernet
    subprocess.run([sys.executable, "-m", "oneforall.evaluate_subnets", "--config", config, "--model_path", weights,
                    "--output", str(tmp_path), "--quiet", "--sample", "4", "--no_latency"], cwd=ROOT,
                   env=tool_env(mini_root), check=True, capture_output=True, timeout=300)
    result = subprocess.run([sys.executable, "-m", "oneforall.gpnas", "search", "--measurements",
                             str(tmp_path / "measurements.json"), "--budget-ms", "1"], cwd=ROOT, env=tool_env("."),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "lack latencies" in result.stderr
