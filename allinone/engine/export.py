"""Export one task's feature extractor (backbone + that task's head, eval mode) for Paddle Inference."""
import os

import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

MODEL_PREFIX = "inference"  # files: inference.json (program) and inference.pdiparams (weights)


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
    predictor = inference.create_predictor(config)
    predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(np.ascontiguousarray(images))
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def check_export(extractor, prefix, images, rtol=1e-4, atol=1e-5):
    """Compare Paddle Inference features with the dygraph extractor's on `images`; raise naming the largest
    difference if they disagree. Returns that difference."""
    with paddle.no_grad():
        expected = extractor(paddle.to_tensor(images)).numpy()
    got = predictor_features(prefix, images)
    difference = float(np.abs(got - expected).max())
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
        raise AssertionError(f"exported model {prefix}: Paddle Inference features differ from the dygraph model's "
                             f"(shapes {got.shape} vs {expected.shape}, max abs difference {difference:.3g})")
    return difference
