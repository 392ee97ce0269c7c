"""Evaluation through Paddle Inference (`--engine inference`): the same metrics as the dygraph model through the real
command line, the same features batch by batch, one error line for a model that cannot be exported, and the MKL
kernel setting of the thread set-up."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from allinone.config import load_config
from allinone.evaluation.embedders import ENGINES, ExportError, InferenceEmbedder, build_embedder
from allinone.modeling import build_model
from allinone.modeling.checkpoint import load_checkpoint
from allinone.modeling.vision_transformer import VisionTransformer
from allinone.registry import BACKBONES
from allinone.utils.cli import USER_ERROR
from allinone.utils.env import configure_mkl_kernels

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_CONFIG = os.path.join(REPO, "configs", "allinone", "tiny_eval.yaml")


@pytest.fixture(scope="module")
def tiny_weights(spec_reference):
    return os.path.join(spec_reference, "tiny_upstream.pdparams")


def run_script(data_root, *args):
    env = dict(os.environ, FASTREID_DATASETS=str(data_root), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(REPO, "evaluation_script.py"), "--config", TINY_CONFIG,
                           "--device", "cpu", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_command_line_gives_the_dygraph_metrics_through_paddle_inference(mini_root, tiny_weights, tmp_path):
    metrics = {}
    for engine in ("dygraph", "inference"):
        output = tmp_path / f"{engine}.json"
        done = run_script(mini_root, "--model_path", tiny_weights, "--engine", engine, "--output", str(output))
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"engine {engine}" in done.stdout + done.stderr
        with open(output, encoding="utf-8") as f:
            metrics[engine] = json.load(f)
    assert "exported for Paddle Inference" in done.stdout + done.stderr  # the inference run did export
    assert list(metrics["inference"]) == list(metrics["dygraph"]) and len(metrics["dygraph"]) == 53
    for key, value in metrics["dygraph"].items():
        assert metrics["inference"][key] == pytest.approx(value, abs=1e-5), key


@pytest.fixture(scope="module")
def tiny_model(tiny_weights):
    paddle.set_device("cpu")
    model = build_model(load_config(TINY_CONFIG))
    load_checkpoint(model, tiny_weights)
    model.eval()
    return model


def test_features_match_model_embed_for_every_head_and_any_batch_size(tiny_model):
    rng = np.random.RandomState(3)
    embedder = build_embedder("inference", tiny_model, list(tiny_model.heads), batch_size=8)
    assert isinstance(embedder, InferenceEmbedder)
    try:
        for task in tiny_model.heads:
            for batch in (8, 5, 1):  # the last batch of a test set is smaller
                images = paddle.to_tensor(rng.uniform(-1, 1, [batch, 3, 32, 32]).astype("float32"))
                with paddle.no_grad():
                    expected = tiny_model.embed(task, images).numpy()
                got = embedder.embed(task, images).numpy()
                assert got.shape == expected.shape
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    finally:
        embedder.close()


def fresh_tiny_model(weights):
    model = build_model(load_config(TINY_CONFIG))
    load_checkpoint(model, weights)
    model.eval()
    return model


def test_the_predictor_runs_its_exported_copy_not_the_dygraph_model(tiny_weights):
    model = fresh_tiny_model(tiny_weights)
    images = paddle.to_tensor(np.random.RandomState(4).uniform(-1, 1, [4, 3, 32, 32]).astype("float32"))
    with paddle.no_grad():
        expected = model.embed("task3", images).numpy()
    embedder = build_embedder("inference", model, ["task3"])
    model.backbone.pos_embed.set_value(paddle.zeros_like(model.backbone.pos_embed))  # the dygraph model changes
    np.testing.assert_allclose(embedder.embed("task3", images).numpy(), expected, rtol=0, atol=1e-5)


def test_an_exported_model_that_disagrees_with_dygraph_is_refused(tiny_weights):
    from allinone.engine.export import TaskFeatureExtractor

    model = fresh_tiny_model(tiny_weights)
    embedder = InferenceEmbedder(model)
    predictor = embedder.predictor("task1")
    model.heads["task1"].bottleneck[0].bias.set_value(paddle.full_like(model.heads["task1"].bottleneck[0].bias, 0.5))
    with pytest.raises(ExportError, match="differ from the dygraph model's"):
        embedder._check(TaskFeatureExtractor(model, "task1"), predictor)


def test_exporting_keeps_the_models_training_mode(tiny_model):
    tiny_model.train()
    try:
        InferenceEmbedder(tiny_model).prepare(["task1"])
        assert tiny_model.training
    finally:
        tiny_model.eval()


class UnexportableViT(VisionTransformer):
    """A ViT whose forward keeps (name, tensor) pairs in a list under a test of the batch size (as the task-MoE
    ViT splits its batch per task): fine in dygraph, not convertible to a static program with a free batch size."""

    def embed_tokens(self, x, segments=None):
        parts, rows = [], x.shape[0]
        if rows:
            parts.append(("all", x))
        return super().embed_tokens(parts[0][1], segments)


BACKBONES.register(UnexportableViT, name="TestUnexportableViT")


def unexportable_config(tmp_path):
    path = tmp_path / "unexportable.yaml"
    path.write_text(f"_base_: {TINY_CONFIG}\nModel:\n  backbone:\n    name: TestUnexportableViT\n", encoding="utf-8")
    return str(path)


def test_a_model_that_cannot_be_exported_is_one_error_line(mini_root, tiny_weights, tmp_path, capsys, monkeypatch):
    from allinone.commands.evaluate import main

    monkeypatch.setenv("FASTREID_DATASETS", str(mini_root))
    code = main(["--config", unexportable_config(tmp_path), "--device", "cpu", "--model_path", tiny_weights,
                 "--engine", "inference", "--test_datasets", "LFW"])
    err = capsys.readouterr().err
    assert code == USER_ERROR, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: --engine inference: task 'task1'") and "cannot be exported" in last
    assert "UnexportableViT" in last and "--engine dygraph" in last


def test_auto_falls_back_to_dygraph_for_a_model_that_cannot_be_exported(tiny_weights, tmp_path):
    model = build_model(load_config(unexportable_config(tmp_path)))
    load_checkpoint(model, tiny_weights)
    model.eval()
    with pytest.raises(ExportError):
        build_embedder("inference", model, ["task1"])
    assert build_embedder("auto", model, ["task1"]).name == "dygraph"


def test_the_command_line_offers_the_embedders_engines():
    from allinone.commands.evaluate import ENGINES as CLI_ENGINES

    assert tuple(CLI_ENGINES) == tuple(ENGINES)


def cpuinfo(tmp_path, vendor, flags):
    path = tmp_path / "cpuinfo"
    text = "".join(f"processor\t: {i}\nvendor_id\t: {vendor}\nmodel name\t: some CPU\nflags\t\t: {flags}\n\n"
                   for i in range(2))
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("vendor, flags, expected", [
    ("AuthenticAMD", "fpu sse2 avx avx2 fma avx512f", "5"),
    ("AuthenticAMD", "fpu sse2 avx", None),          # no AVX2: MKL's AVX2 kernels would not run
    ("GenuineIntel", "fpu sse2 avx avx2 avx512f", None),  # Intel: MKL picks its kernels itself
])
def test_mkl_takes_its_avx2_kernels_on_amd_only(tmp_path, monkeypatch, vendor, flags, expected):
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    assert configure_mkl_kernels(cpuinfo(tmp_path, vendor, flags)) == expected
    assert os.environ.get("MKL_DEBUG_CPU_TYPE") == expected


def test_the_thread_set_up_leaves_mkl_alone_once_paddle_is_loaded(monkeypatch):
    from allinone.utils.env import configure_threads

    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    configure_threads(1)  # paddle is imported in this process: MKL's kernels are already chosen
    assert "MKL_DEBUG_CPU_TYPE" not in os.environ


def test_a_users_mkl_setting_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "")
    assert configure_mkl_kernels(cpuinfo(tmp_path, "AuthenticAMD", "avx2")) == ""
