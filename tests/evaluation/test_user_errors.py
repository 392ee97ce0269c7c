"""evaluation_script.py on a user's ordinary mistakes: each ends in one `error:` line naming the culprit and exit
code 2 (no traceback), or is refused instead of silently accepted. Runs the script's `main` in this process (the
subprocess form is covered by test_evaluation_script.py)."""
import importlib.util
import logging
import os
import shutil

import numpy as np
import pytest

from allinone.config import ConfigError, load_config
from allinone.evaluation.suite import select_test_sets
from allinone.utils.cli import USER_ERROR

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_CONFIG = os.path.join(REPO, "configs", "allinone", "tiny_eval.yaml")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("evaluation_script", os.path.join(REPO, "evaluation_script.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def loggers_restored():
    """The script configures the project's loggers; give later tests theirs back."""
    names = ("allinone", "oneforall", "allinone.evaluation")
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate,
                    logging.getLogger(name).level) for name in names}
    yield
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate, logger.level = propagate, level


@pytest.fixture
def faces_root(mini_root, tmp_path):
    """A copy of the miniature face sets, free to break."""
    shutil.copytree(os.path.join(mini_root, "faces_emore_val"), tmp_path / "faces_emore_val")
    return tmp_path


@pytest.fixture(scope="module")
def tiny_weights(spec_reference):
    return os.path.join(spec_reference, "tiny_upstream.pdparams")


def run_main(script, capsys, monkeypatch, root, *args, config=TINY_CONFIG):
    monkeypatch.setenv("FASTREID_DATASETS", str(root))
    code = script.main(["--config", config, "--device", "cpu", *args])
    err = capsys.readouterr().err
    return code, err


def assert_one_error_line(code, err, *fragments):
    assert code == USER_ERROR, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err[-2000:]
    for fragment in fragments:
        assert fragment in last, (fragment, last)


def first_face_image(root):
    return os.path.join(root, "faces_emore_val", "lfw", "00000.jpg")


def zero_bytes(path):
    open(path, "wb").close()


def garbage(path):
    with open(path, "wb") as f:
        f.write(b"\x00\x01 definitely not an image" * 10)


def truncated(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


@pytest.mark.parametrize("damage", [zero_bytes, garbage, truncated, os.remove])
def test_a_broken_or_missing_test_image_is_one_error_line_naming_it(script, capsys, monkeypatch, faces_root,
                                                                      tiny_weights, damage):
    damage(first_face_image(faces_root))
    code, err = run_main(script, capsys, monkeypatch, faces_root, "--model_path", tiny_weights,
                         "--test_datasets", "LFW")
    assert_one_error_line(code, err, "lfw/00000.jpg")


@pytest.mark.parametrize("args, message", [
    (["--batchsize", "-1"], "argument --batchsize: expected an integer >= 1, got -1"),
    (["--batchsize", "0"], "argument --batchsize: expected an integer >= 1, got 0"),
    (["--num_workers", "-1"], "argument --num_workers: expected an integer >= 0, got -1"),
])
def test_nonsense_counts_are_refused_by_the_command_line(script, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--model_path", "x.pdparams", *args])
    assert exit_info.value.code == USER_ERROR
    assert message in capsys.readouterr().err


def test_gpu_on_a_cpu_build_is_one_error_line(script, capsys, monkeypatch, mini_root, tiny_weights):
    import paddle

    if paddle.device.is_compiled_with_cuda():
        pytest.skip("this Paddle build has CUDA")
    monkeypatch.setenv("FASTREID_DATASETS", mini_root)
    code = script.main(["--config", TINY_CONFIG, "--device", "gpu", "--model_path", tiny_weights])
    assert_one_error_line(code, capsys.readouterr().err, "device 'gpu'", "no CUDA", "--device cpu")


def test_an_empty_config_is_one_error_line_naming_it(script, capsys, monkeypatch, mini_root, tiny_weights, tmp_path):
    empty = tmp_path / "blank.yaml"
    empty.write_text("")
    code, err = run_main(script, capsys, monkeypatch, mini_root, "--model_path", tiny_weights, config=str(empty))
    assert_one_error_line(code, err, str(empty), "the config is empty")


@pytest.mark.parametrize("output", ["a_file/metrics.json", "/sys/allinone_no_such_dir/metrics.json"])
def test_an_output_path_that_cannot_be_written_stops_before_inference(script, capsys, monkeypatch, mini_root,
                                                                      tiny_weights, tmp_path, output):
    (tmp_path / "a_file").write_text("a file, not a folder")
    output = output if os.path.isabs(output) else str(tmp_path / output)
    code, err = run_main(script, capsys, monkeypatch, mini_root, "--model_path", tiny_weights, "--output", output)
    assert_one_error_line(code, err, f"--output {output}: cannot write there")
    assert "images/s" not in err  # nothing was evaluated


def test_a_checkpoint_that_does_not_fit_is_summarised_and_the_full_list_written_to_a_file(
        script, capsys, monkeypatch, mini_root, tiny_weights, tmp_path):
    import paddle

    state = paddle.load(tiny_weights)
    renamed = {f"model.{key}": value for key, value in state.items()}  # every key under another prefix
    path = str(tmp_path / "renamed.pdparams")
    paddle.save(renamed, path)
    output = tmp_path / "out" / "metrics.json"
    code, err = run_main(script, capsys, monkeypatch, mini_root, "--model_path", path, "--test_datasets", "LFW",
                         "--output", str(output))
    assert code == USER_ERROR and "Traceback" not in err
    message = err[err.index("error: "):]
    assert f"{len(state)} key(s) of the model missing from the file, e.g. ['backbone." in message
    assert f"{len(state)} key(s) in the file unknown to the model, e.g. ['model.backbone." in message
    assert len(message) < 1000  # not every key: 46 here, 310 for the released model
    key_file = tmp_path / "out" / "metrics.keys.txt"
    assert str(key_file) in message
    lines = key_file.read_text().splitlines()
    assert sum(line.startswith("missing\t") for line in lines) == len(state)
    assert sum(line.startswith("unexpected\tmodel.") for line in lines) == len(state)


def test_non_finite_features_stop_evaluation_naming_the_test_set_and_the_rows(script, capsys, monkeypatch, mini_root,
                                                                            tiny_weights, tmp_path):
    import paddle

    state = paddle.load(tiny_weights)
    weight = state["heads.task1.bottleneck.0.weight"].numpy()
    weight[0] = np.nan
    state["heads.task1.bottleneck.0.weight"] = paddle.to_tensor(weight)
    path = str(tmp_path / "nan.pdparams")
    paddle.save(state, path)
    code, err = run_main(script, capsys, monkeypatch, mini_root, "--model_path", path, "--test_datasets", "LFW")
    assert_one_error_line(code, err, "test set 'lfw'", "not finite", "for 80 of 80 images")


@pytest.mark.parametrize("requested, message", [
    ("", "--test_datasets is empty"),
    ("LFW,LFW", "names ['LFW'] more than once"),
    ("LFW,,SOP", "an empty name between commas"),
])
def test_an_empty_or_repeated_test_set_name_is_refused(requested, message):
    cfg = load_config(TINY_CONFIG)
    with pytest.raises(ConfigError) as err:
        select_test_sets(cfg.Eval, requested)
    assert message in str(err.value)


@pytest.mark.parametrize("threads", ["0", "-2", "1.5"])
def test_a_thread_count_below_one_is_one_error_line(script, capsys, monkeypatch, mini_root, tiny_weights, threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, err = run_main(script, capsys, monkeypatch, mini_root, "--model_path", tiny_weights,
                         "-o", f"Global.num_threads={threads}")
    assert_one_error_line(code, err, "Global.num_threads must be an integer >= 1")
