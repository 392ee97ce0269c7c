"""evaluation_script.py as a user runs it: a real subprocess on the miniature data tree with the tiny parity model."""
import json
import os
import subprocess
import sys

import pytest

from allinone.config import ConfigError, load_config
from allinone.evaluation.suite import prepare, select_test_sets
from engine_tools import launch_script  # (tests/engine, on the path by tests/conftest.py)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(REPO, "evaluation_script.py")
TINY_CONFIG = "configs/allinone/tiny_eval.yaml"

FACE = ["Accuracy", "Threshold", "metric"]
REID = ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
SOP = ["Recall@1", "Recall@10", "Recall@100", "Recall@1000", "metric"]
# the keys the original printed at the end of a full run (docs/evaluation.md), in its order
ORIGINAL_KEYS = ([f"task1.{name}.{m}" for name in ("calfw", "cplfw", "lfw", "cfp_ff", "cfp_fp", "agedb_30")
                  for m in FACE]
                 + [f"task3.{name}.{m}" for name in ("market1501", "msmt17", "veri", "vehicleid", "veriwild")
                    for m in REID]
                 + [f"task4.sop.{m}" for m in SOP])


def run_script(data_root, *args):
    env = dict(os.environ, FASTREID_DATASETS=str(data_root), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, SCRIPT, "--config", TINY_CONFIG, "--device", "cpu", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_weights(spec_reference):
    """The tiny parity model's weights (made with the original code); they load strictly into tiny_eval.yaml."""
    return os.path.join(spec_reference, "tiny_upstream.pdparams")


@pytest.fixture(scope="module")
def full_run(mini_root, tiny_weights, tmp_path_factory):
    output = tmp_path_factory.mktemp("eval") / "metrics.json"
    done = run_script(mini_root, "--model_path", tiny_weights, "--output", str(output))
    assert done.returncode == 0, done.stderr[-3000:]
    with open(output, encoding="utf-8") as f:
        return done, json.load(f)


def test_a_full_run_writes_the_original_result_keys_in_the_original_order(full_run):
    _, metrics = full_run
    assert list(metrics) == ORIGINAL_KEYS


def test_metrics_are_percentages_and_face_thresholds_lie_in_the_searched_range(full_run):
    _, metrics = full_run
    for key, value in metrics.items():
        upper = 4.0 if key.endswith(".Threshold") else 100.0
        assert 0.0 <= value <= upper, key
    # same-identity pairs of the miniature tree are painted from one identity pattern: even the tiny model beats
    # chance when pairs are read in filelist order (2i, 2i+1)
    assert metrics["task1.lfw.Accuracy"] >= 50.0


def test_the_final_table_puts_the_published_number_beside_each_measured_one(full_run):
    done, metrics = full_run
    market = [line.split() for line in done.stdout.splitlines() if line.startswith("Market1501")]
    assert [row[:3] for row in market] == [["Market1501", "task3", "Rank-1"], ["Market1501", "task3", "mAP"]]
    assert float(market[0][3]) == pytest.approx(metrics["task3.market1501.Rank-1"], abs=0.005)
    assert market[0][4] == "96.40" and market[1][4] == "92.60"


def test_a_missing_dataset_folder_stops_before_inference_naming_the_path(tiny_weights, tmp_path):
    done = run_script(tmp_path, "--model_path", tiny_weights, "--test_datasets", "Market1501")
    assert done.returncode == 2
    assert "error:" in done.stderr and str(tmp_path) in done.stderr and "expected layout" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_checkpoint_with_a_missing_key_stops_unless_partial_loading_is_allowed(mini_root, tiny_weights, tmp_path):
    import paddle

    state = paddle.load(tiny_weights)
    del state["heads.task1.bottleneck.0._mean"]
    partial = str(tmp_path / "partial.pdparams")
    paddle.save(state, partial)
    strict = run_script(mini_root, "--model_path", partial, "--test_datasets", "LFW")
    assert strict.returncode == 2 and "heads.task1.bottleneck.0._mean" in strict.stderr
    allowed = run_script(mini_root, "--model_path", partial, "--test_datasets", "LFW", "--allow_partial",
                         "--output", str(tmp_path / "lfw.json"))
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert (f"partial load; 1 key(s) of the model missing from the file, e.g. ['heads.task1.bottleneck.0._mean']; "
            f"45 key(s) fit; the full list is in {tmp_path / 'lfw.keys.txt'}") in allowed.stdout
    assert "missing\theads.task1.bottleneck.0._mean" in (tmp_path / "lfw.keys.txt").read_text()
    with open(tmp_path / "lfw.json", encoding="utf-8") as f:
        assert list(json.load(f)) == ["task1.lfw.Accuracy", "task1.lfw.Threshold", "task1.lfw.metric"]


def test_test_datasets_takes_a_comma_separated_list_in_the_given_order_including_optional_sets():
    cfg = load_config("configs/allinone/vitlarge_eval.yaml")
    assert [e.name for e in select_test_sets(cfg.Eval, "SOP,DukeMTMC,LFW")] == ["SOP", "DukeMTMC", "LFW"]
    assert len(select_test_sets(cfg.Eval, None)) == 12


def test_an_unknown_test_dataset_name_lists_the_valid_ones():
    cfg = load_config("configs/allinone/vitlarge_eval.yaml")
    with pytest.raises(ConfigError, match=r"\['Market'\].*Market1501"):
        select_test_sets(cfg.Eval, "Market")


def test_a_published_metric_the_evaluator_does_not_report_is_a_config_error_before_inference():
    cfg = load_config("configs/allinone/vitlarge_eval.yaml", ["Eval.datasets=[{name: LFW, dataset: LFW, head: task1, "
                                                              "evaluator: FaceVerificationEvaluator, "
                                                              "published: {Acc: 99.82}}]"])
    with pytest.raises(ConfigError, match=r"LFW.*\['Acc'\].*Accuracy"):
        prepare(cfg.Eval.datasets[0], "no_data_needed")


def test_scripts_test_sh_runs_under_posix_sh_and_finds_the_projects_venv(mini_root, tiny_weights, tmp_path):
    """`sh scripts/test.sh` as the README shows it: dash, no PYTHON, no virtualenv on PATH."""
    output = tmp_path / "lfw.json"
    env = dict(os.environ, FASTREID_DATASETS=str(mini_root), OMP_NUM_THREADS="1", MODEL_PATH=tiny_weights,
               CONFIG=TINY_CONFIG, PATH="/usr/bin:/bin")
    env.pop("PYTHON", None)
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(["sh", os.path.join(REPO, "scripts", "test.sh"), "--test_datasets", "LFW", "--device",
                           "cpu", "--output", str(output)], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(output, encoding="utf-8") as f:
        assert list(json.load(f)) == ["task1.lfw.Accuracy", "task1.lfw.Threshold", "task1.lfw.metric"]


def test_start_up_noise_of_paddle_faiss_and_setuptools_is_silenced(full_run):
    done, _ = full_run
    for noise in ("ccache", "faiss.loader", "AVX512", "pkg_resources", "distutils"):
        assert noise not in done.stderr + done.stdout, noise


def test_the_suite_gives_training_the_same_numbers_in_one_call(full_run, mini_root, tiny_weights):
    """What training's evaluation hook calls: EvaluationSuite(cfg, names)(model)."""
    import paddle

    from allinone import build_model, load_checkpoint
    from allinone.evaluation.suite import EvaluationSuite

    _, metrics = full_run
    cfg = load_config(TINY_CONFIG)
    suite = EvaluationSuite(cfg, "LFW,SOP", root=mini_root, print_table=False)
    paddle.set_device("cpu")
    model = build_model(cfg)
    load_checkpoint(model, tiny_weights)
    flat = suite(model)
    assert list(flat) == [key for key in ORIGINAL_KEYS if key.startswith(("task1.lfw.", "task4.sop."))]
    assert flat == pytest.approx({key: metrics[key] for key in flat}, abs=1e-6)
    assert model.training  # built in training mode: the suite evaluates in eval mode and restores the mode it found


def write_classification_set(root, model, count=8):
    """`count` images in root/tiny_classes with labels: the model's own top-1 class for the first 5, another class
    for the rest, so the expected Acc@1 is 5 / count (worked out here with FeatureExtractor, not with the suite)."""
    import numpy as np
    from PIL import Image

    from allinone.inference import FeatureExtractor

    folder = os.path.join(root, "tiny_classes")
    os.makedirs(os.path.join(folder, "images"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        paths.append(os.path.join(folder, "images", f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(paths[-1])
    scores = FeatureExtractor(model, head="task1").extract(paths)
    predicted = scores.argmax(axis=1)
    labels = [int(p) if i < 5 else int(p + 1) % scores.shape[1] for i, p in enumerate(predicted)]
    with open(os.path.join(folder, "test.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"images/{i}.png {label}\n" for i, label in enumerate(labels))
    return 5 / count * 100


def test_an_evaluator_written_only_against_the_protocol_runs_in_the_script(tiny_weights, tmp_path):
    """ClassificationEvaluator on a list-file test set; the config lives outside the checkout and builds on the
    shipped one by its project-relative path. The tiny model's task1 head gives 64 scores per image."""
    import paddle

    from allinone import build_model, load_checkpoint

    paddle.set_device("cpu")
    model = build_model(load_config(TINY_CONFIG))
    load_checkpoint(model, tiny_weights)
    model.eval()
    expected = write_classification_set(str(tmp_path), model)
    config = tmp_path / "classes.yaml"
    config.write_text("_base_: configs/allinone/tiny_eval.yaml\n"
                      "Eval:\n  datasets:\n"
                      "    - {name: TinyClasses, dataset: ImageClassification, head: task1, "
                      "evaluator: ClassificationEvaluator, dataset_args: {folder: tiny_classes, list_file: test.txt}, "
                      "published: {Acc@1: 80.0}}\n")
    output = tmp_path / "metrics.json"
    env = dict(os.environ, FASTREID_DATASETS=str(tmp_path), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, SCRIPT, "--config", str(config), "--device", "cpu", "--model_path",
                           tiny_weights, "--batchsize", "3", "--output", str(output)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(output, encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics == pytest.approx({"task1.tiny_classes.Acc@1": expected, "task1.tiny_classes.metric": expected})
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("TinyClasses"))
    assert row == ["TinyClasses", "task1", "Acc@1", f"{expected:.2f}", "80.00", f"{expected - 80:+.2f}"]


def test_two_ranks_sharing_each_test_set_give_the_metrics_of_one_process(full_run, mini_root, tiny_weights, tmp_path):
    """The suite under a real 2-process CPU launch (tests/evaluation/distributed_eval.py): each rank reads half of
    every test set, the evaluators gather the rows in data-set order, the metrics equal the single process's."""
    _, single = full_run
    output = tmp_path / "metrics.json"
    env = dict(os.environ, FASTREID_DATASETS=str(mini_root), OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    launch_script(os.path.join(REPO, "tests", "evaluation", "distributed_eval.py"), [tiny_weights, output], env,
                  tmp_path, tmp_path / "log")
    with open(output, encoding="utf-8") as f:
        result = json.load(f)
    assert result["world_size"] == 2
    metrics = result["metrics"]
    assert list(metrics) == [key for key in ORIGINAL_KEYS
                             if key.startswith(("task1.lfw.", "task3.market1501.", "task4.sop."))]
    assert metrics == pytest.approx({key: single[key] for key in metrics}, abs=1e-5)
