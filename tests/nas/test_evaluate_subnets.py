"""python -m oneforall.evaluate_subnets on a trained tiny chip supernet and the miniature tree: the scores equal an
extracted plain ViT's on the same test sets, the competition JSON is what oneforall.gpnas reads, a rerun (also after
a SIGKILL) continues without redoing finished codes, and a file of another supernet is refused."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import OrderedDict

import pytest

from engine_tools import ROOT, tool_env, user_error_code

PYTHON = sys.executable


def evaluate_cmd(config, weights, output, *args):
    return [PYTHON, "-m", "oneforall.evaluate_subnets", "--config", config, "--model_path", weights,
            "--output", str(output), "--quiet", *args]


def run_evaluate(mini_root, *cmd_args):
    return subprocess.run(evaluate_cmd(*cmd_args), cwd=ROOT, env=tool_env(mini_root), capture_output=True, text=True,
                          timeout=300)


def records(output):
    with open(os.path.join(output, "measurements.json"), encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=OrderedDict)["archs"]


def test_scores_equal_the_extracted_subnetwork_and_the_competition_json_reads_in_gpnas(supernet, mini_root, tmp_path):
    config, weights, _ = supernet
    result = run_evaluate(mini_root, config, weights, tmp_path, "--sample", "3", "--seed", "4", "--no_latency")
    assert result.returncode == 0, result.stderr[-3000:]
    measured = records(tmp_path)
    assert len(measured) == 3
    from oneforall import gpnas
    ranking = gpnas.read_ranking_json(str(tmp_path / "CCF_UFO_train.json"), ranked=True)
    assert list(ranking.codes) == list(measured)

    # the first code, extracted as a plain ViT and evaluated with the same suite, scores the same
    import oneforall.chip_training  # noqa: F401
    from allinone.config import load_config
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint
    from oneforall.evaluate_subnets import COMPETITION_TEST_SETS, competition_suite
    from oneforall.latency import backbone_cost, extracted_model
    from oneforall.subnet_codes import subnet_from_code

    cfg = load_config(config)
    for head in cfg.Model.heads.values():
        head.num_classes = 0
    model = build_model(cfg)
    load_checkpoint(model, weights)
    model.eval()
    code, record = next(iter(measured.items()))
    arch = subnet_from_code(code, model.backbone)
    plain = extracted_model(cfg, model, arch)
    assert type(plain.backbone).__name__ == "VisionTransformer"
    suite = competition_suite(cfg, root=mini_root)
    results = suite(plain)
    for task, entry in COMPETITION_TEST_SETS.items():
        key = next(k for k in results if k.endswith(f".{suite.prepared[entry][0].dataset_name}.metric"))
        assert record["scores"][task] == pytest.approx(results[key], abs=1e-4), task
    assert record["params"] == backbone_cost(model.backbone, arch)["params"]


def test_a_rerun_continues_without_redoing_finished_codes_even_after_a_kill(supernet, mini_root, tmp_path):
    config, weights, _ = supernet
    first = run_evaluate(mini_root, config, weights, tmp_path, "--sample", "2", "--no_latency")
    assert first.returncode == 0, first.stderr[-3000:]
    before = records(tmp_path)
    process = subprocess.Popen(evaluate_cmd(config, weights, tmp_path, "--sample", "60", "--no_latency"), cwd=ROOT,
                               env=tool_env(mini_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            try:
                if len(records(tmp_path)) >= 5:
                    break
            except (ValueError, OSError):
                pytest.fail("the measurements file was torn while it was being written")
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    killed = records(tmp_path)
    assert 5 <= len(killed) < 60
    for code, record in before.items():  # the first run's codes were not redone
        assert killed[code] == record
    again = run_evaluate(mini_root, config, weights, tmp_path, "--sample", "60", "--no_latency")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(killed)} already measured" in again.stdout
    final = records(tmp_path)
    assert len(final) == 60
    for code, record in killed.items():
        assert final[code] == record


def test_a_measurements_file_of_another_supernet_is_refused(supernet, mini_root, tmp_path):
    config, weights, other_weights = supernet
    assert run_evaluate(mini_root, config, weights, tmp_path, "--sample", "1", "--no_latency").returncode == 0
    refused = run_evaluate(mini_root, config, other_weights, tmp_path, "--sample", "1", "--no_latency")
    assert refused.returncode == user_error_code()
    assert "measured with another supernet" in refused.stderr and "weights_sha256" in refused.stderr
    other_settings = run_evaluate(mini_root, config, weights, tmp_path, "--sample", "1", "--latency_runs", "3")
    assert other_settings.returncode == user_error_code() and "another settings" in other_settings.stderr


def test_codes_from_a_file_are_checked_before_any_evaluation(supernet, mini_root, tmp_path):
    config, weights, _ = supernet
    codes = tmp_path / "codes.txt"
    codes.write_text("# two codes\nj111231321311311221231121111231000000\nj11123132131131122123112111123100000x\n")
    result = run_evaluate(mini_root, config, weights, tmp_path / "out", "--archs", str(codes), "--no_latency")
    assert result.returncode != 0 and "position 36" in result.stderr
    assert not (tmp_path / "out" / "measurements.json").exists()
