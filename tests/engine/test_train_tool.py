"""tools/train.py end to end: evaluation during training (the Eval table) and --eval-only on a checkpoint."""
from engine_tools import run_train, user_error_code

EVAL = ["-o", "Train.max_iter=4", "-o", "Train.checkpoint_period=0", "-o", "Train.eval_period=2",
        "-o", "Train.eval_datasets=Market1501,SOP"]


def test_training_evaluates_the_configured_test_sets_every_eval_period_and_eval_only_reproduces_it(
        tiny_config, mini_root, tmp_path):
    trained = run_train(tiny_config, tmp_path, mini_root, *EVAL)
    assert trained.returncode == 0, trained.stderr[-3000:]
    log = (tmp_path / "log_rank0.txt").read_text()
    assert "evaluation after 2 iterations" in log and "evaluation after 4 iterations" in log
    final_block = log.split("evaluation after 4 iterations:")[1]
    assert "task3.market1501.mAP:" in final_block and "task4.sop.Recall@1:" in final_block
    final_map = final_block.split("task3.market1501.mAP:")[1].split()[0]

    evaluated = run_train(tiny_config, tmp_path / "eval", mini_root, *EVAL, "--eval-only",
                          "--resume", str(tmp_path / "model_final.pdparams"))
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    market_map = [line for line in evaluated.stdout.splitlines() if line.startswith("Market1501") and " mAP " in line]
    assert market_map and abs(float(market_map[0].split()[3]) - float(final_map)) < 0.01


def test_eval_only_without_weights_is_an_error(tiny_config, mini_root, tmp_path):
    result = run_train(tiny_config, tmp_path, mini_root, "--eval-only")
    assert result.returncode == user_error_code()
    assert "--eval-only needs weights" in result.stderr


def test_the_demo_echoes_iteration_total_loss_lr_speed_and_eta_of_the_real_log_lines(tiny_config, mini_root, tmp_path):
    import demo  # tools/demo.py (tools/ is on sys.path, tests/conftest.py)

    trained = run_train(tiny_config, tmp_path, mini_root, "-o", "Train.max_iter=2", "-o", "Train.log_period=1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    lines = [line for line in (tmp_path / "log_rank0.txt").read_text().splitlines() if "iter 2/2" in line]
    summary = demo.progress_summary(lines[0])
    assert summary.startswith("iter 2/2  total_loss: ") and "  lr: " in summary and "  eta: " in summary
    assert "images/s: " in summary and len(summary) < 100
