"""Export one task's feature extractor (backbone + that task's head, eval mode) for Paddle Inference and, through
paddle2onnx, for ONNX Runtime; check either against the dygraph model on the same images."""
import os

import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from ..utils.cli import UserError

MODEL_PREFIX = "inference"  # files: inference.json (program) and inference.pdiparams (weights)
ONNX_FILE = "inference.onnx"
ONNX_OPSET = 13
FORMATS = ("paddle", "onnx")


class ExportUnavailableError(UserError):
    """The ONNX path needs paddle2onnx and onnxruntime; the message says which is missing and what to install."""


class TaskFeatureExtractor(nn.Layer):
    """images [B, 3, H, W] (normalised as the test transform) -> `model.embed(task, images)` [B, D]."""

    def __init__(self, model, task):
        super().__init__()
        model.head_for(task)  # a KeyError naming the heads if the task has none
        self.model, self.task = model, task

    def forward(self, images):
        return self.model.embed(self.task, images)


def export_task(model, task, output_dir):
    """paddle.jit.save the eval-mode extractor of `task` to `output_dir/inference.*` (batch size left free);
    returns the dygraph extractor (for comparisons) and the path prefix."""
    extractor = TaskFeatureExtractor(model, task)
    extractor.eval()
    height, width = model.backbone.img_size
    prefix = os.path.join(output_dir, MODEL_PREFIX)
    paddle.jit.save(extractor, prefix, input_spec=[InputSpec([None, 3, height, width], "float32", name="images")])
    return extractor, prefix


def predictor_features(prefix, images):
    """Features of `images` (float32 numpy [B, 3, H, W]) from the exported files through Paddle Inference."""
    import paddle.inference as inference

    model_file = next(prefix + ext for ext in (".json", ".pdmodel") if os.path.isfile(prefix + ext))
    config = inference.Config(model_file, prefix + ".pdiparams")
    config.disable_gpu()
    config.disable_glog_info()  # no "--- Running PIR pass [...]" line per optimisation pass
    predictor = inference.create_predictor(config)
    predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(np.ascontiguousarray(images))
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def _require(module, package):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ExportUnavailableError(
            f"--format onnx needs {package} ({err}); install it with `pip install paddle2onnx==2.1.0 "
            f"onnxruntime==1.32.0` (the versions tested with paddlepaddle 3.3.1 and numpy < 2, see docs/deploy.md)"
        ) from None


def require_onnx_tools():
    """Fail early (one user error) when paddle2onnx or onnxruntime is missing."""
    _require("paddle2onnx", "paddle2onnx")
    _require("onnxruntime", "onnxruntime")


def export_onnx(prefix, onnx_path=None, opset=ONNX_OPSET):
    """Convert the Paddle Inference files at `prefix` to ONNX (batch size left free); returns the .onnx path.
    paddle2onnx's after-conversion clean-up is off (`optimize_tool="none"`): its default (polygraphy) pip-installs
    packages while exporting, and onnxoptimizer 0.3.13 lacks a pass it asks for; ONNX Runtime optimises the graph
    when it loads it anyway."""
    os.environ.setdefault("POLYGRAPHY_AUTOINSTALL_DEPS", "0")
    paddle2onnx = _require("paddle2onnx", "paddle2onnx")
    onnx_path = onnx_path or os.path.join(os.path.dirname(prefix), ONNX_FILE)
    paddle2onnx.export(prefix + ".json", prefix + ".pdiparams", onnx_path, opset_version=opset,
                       enable_onnx_checker=True, optimize_tool="none")
    if not os.path.isfile(onnx_path):
        raise RuntimeError(f"paddle2onnx wrote no {onnx_path}")
    return onnx_path


def onnx_session(onnx_path, num_threads=None):
    """An onnxruntime CPU session of the exported file."""
    ort = _require("onnxruntime", "onnxruntime")
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    return ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])


def onnx_features(onnx_path, images):
    """Features of `images` (float32 numpy [B, 3, H, W]) from the exported .onnx file through ONNX Runtime."""
    session = onnx_session(onnx_path)
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(images)})[0]


def check_export(extractor, prefix, images, rtol=1e-4, atol=1e-5, onnx_path=None):
    """Compare the exported model's features (Paddle Inference at `prefix`, or ONNX Runtime when `onnx_path` is
    given) with the dygraph extractor's on `images`; raise naming the largest difference if they disagree.
    Returns that difference."""
    with paddle.no_grad():
        expected = extractor(paddle.to_tensor(images)).numpy()
    if onnx_path:
        runtime, path, got = "ONNX Runtime", onnx_path, onnx_features(onnx_path, images)
    else:
        runtime, path, got = "Paddle Inference", prefix, predictor_features(prefix, images)
    difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
        raise AssertionError(f"exported model {path}: {runtime} features differ from the dygraph model's "
                             f"(shapes {got.shape} vs {expected.shape}, max abs difference {difference:.3g})")
    return difference
