"""How the evaluation suite turns a batch of test images into a head's outputs (`--engine` of evaluation_script.py).

* `dygraph`: `model.embed(task, images)`, op by op through Python.
* `inference`: the same computation exported once per run (`paddle.jit.save` of the task's feature extractor, as
  `ufo-export` writes it) and run by Paddle Inference: oneDNN on the CPU (fused kernels picked from the CPU's
  instruction sets, about 5x the dygraph images/s of a ViT on the project's CPU: bench/RESULTS.md), the GPU with
  TensorRT optional on a GPU. Each exported task is checked against the dygraph model on a small batch before use.
* `auto` (the script's default): `inference` on the CPU, where it was measured faster, falling back to `dygraph`
  (with a warning) for a model that cannot be exported; `dygraph` on a GPU (not measured here).

Every embedder has `prepare(tasks)` (export and check up front, so a failure comes before any inference),
`embed(task, images) -> [b, D]` (the interface of `model.embed`) and `close()`.
"""
import logging
import os
import shutil
import tempfile

import numpy as np

from ..utils.cli import UserError

logger = logging.getLogger("allinone.evaluation")

CHECK_BATCH = 2  # images compared between the exported and the dygraph model per task
CHECK_RTOL, CHECK_ATOL = 1e-4, 1e-5  # as ufo-export's check


class ExportError(UserError):
    """The model cannot be run through Paddle Inference (export failed, or its features differ from dygraph)."""


class DygraphEmbedder:
    """`model.embed` itself (a model without `embed`: its backbone followed by the head)."""

    name = "dygraph"

    def __init__(self, model, **_):
        self.model = model

    def prepare(self, tasks):
        pass

    def embed(self, task, images):
        if hasattr(self.model, "embed"):
            return self.model.embed(task, images)
        return self.model.heads[task](self.model.backbone(images))

    def close(self):
        pass


class InferenceEmbedder(DygraphEmbedder):
    """`embed(task, images)` through one Paddle Inference predictor per task, exported from `model` (its weights as
    they are now) into a private temporary folder, removed once the predictor holds the weights.

    `batch_size`: the largest batch (TensorRT's shape range); `threads`: CPU threads of each predictor (default
    OMP_NUM_THREADS); `tensorrt`: convert the exported program with Paddle's TensorRT (GPU builds with TensorRT)."""

    name = "inference"

    def __init__(self, model, batch_size=8, threads=None, tensorrt=False):
        super().__init__(model)
        import paddle

        from .distance import cpu_threads

        self.device = paddle.device.get_device()
        self.on_gpu = self.device.startswith("gpu")
        if tensorrt and not self.on_gpu:
            raise UserError("TensorRT runs on a GPU only: use --device gpu with --tensorrt, or leave --tensorrt out "
                            "(the CPU engine is oneDNN)")
        self.batch_size, self.tensorrt = int(batch_size), bool(tensorrt)
        self.threads = int(threads or cpu_threads())
        self._predictors = {}

    def prepare(self, tasks):
        for task in tasks:
            self.predictor(task)

    def predictor(self, task):
        if task not in self._predictors:
            was_training = self.model.training
            folder = tempfile.mkdtemp(prefix="ufo-inference-")
            try:
                self._predictors[task] = self._export_and_check(task, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                if was_training:
                    self.model.train()
        return self._predictors[task]

    def _export_and_check(self, task, folder):
        from ..engine.export import export_task

        what = f"--engine inference: task '{task}' of the model ({type(self.model.backbone).__name__})"
        try:
            extractor, prefix = export_task(self.model, task, folder)
            predictor = self._create(prefix, folder)
        except Exception as err:  # noqa: BLE001  (any failure of the conversion is reported the same way)
            raise ExportError(f"{what} cannot be exported for Paddle Inference ({type(err).__name__}: "
                              f"{last_line(err)}); evaluate it with --engine dygraph") from None
        difference = self._check(extractor, predictor)
        logger.info("task %s exported for Paddle Inference (%s, %s%d threads); max abs difference to dygraph %.2g",
                    task, self.device, "TensorRT, " if self.tensorrt else "", self.threads, difference)
        return predictor

    def _create(self, prefix, folder):
        from paddle import inference

        height, width = self.model.backbone.img_size
        if self.tensorrt:
            prefix = tensorrt_program(prefix, os.path.join(folder, "tensorrt"), self.batch_size, height, width)
        config = inference.Config(prefix + ".json", prefix + ".pdiparams")
        config.disable_glog_info()
        if self.on_gpu:
            config.enable_use_gpu(256, int(self.device.split(":")[1]) if ":" in self.device else 0)
        else:
            config.disable_gpu()
            (config.enable_onednn if hasattr(config, "enable_onednn") else config.enable_mkldnn)()
            config.set_cpu_math_library_num_threads(self.threads)
        return inference.create_predictor(config)

    def _check(self, extractor, predictor):
        """Largest |exported - dygraph| on a fixed random batch; an ExportError if beyond ufo-export's tolerance."""
        import paddle

        height, width = self.model.backbone.img_size
        images = np.random.RandomState(0).uniform(-1, 1, [CHECK_BATCH, 3, height, width]).astype("float32")
        with paddle.no_grad():
            expected = extractor(paddle.to_tensor(images)).numpy()
            got = predictor.run([paddle.to_tensor(images)])[0].numpy()
        difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=CHECK_RTOL, atol=CHECK_ATOL):
            raise ExportError(f"--engine inference: the exported task '{extractor.task}' gives features that differ "
                              f"from the dygraph model's (shapes {got.shape} vs {expected.shape}, max abs difference "
                              f"{difference:.3g}); evaluate it with --engine dygraph")
        return difference

    def embed(self, task, images):
        return self.predictor(task).run([images])[0]

    def close(self):
        self._predictors.clear()


def tensorrt_program(prefix, trt_prefix, max_batch, height, width):
    """Convert the exported program with Paddle's TensorRT (PIR-TRT, float32, batch 1..max_batch); returns the
    converted program's prefix. Needs a GPU build of Paddle with TensorRT (not testable on the CPU host)."""
    try:
        import paddle.tensorrt
        from paddle.tensorrt.export import Input, TensorRTConfig
    except ImportError as err:
        raise UserError(f"--tensorrt needs a Paddle build with TensorRT ({err})") from None
    shape = [3, height, width]
    trt_config = TensorRTConfig(inputs=[Input(min_input_shape=[1] + shape, optim_input_shape=[max_batch] + shape,
                                              max_input_shape=[max_batch] + shape, name="images")])
    trt_config.save_model_dir = trt_prefix
    paddle.tensorrt.convert(prefix, trt_config)
    return trt_prefix


def last_line(err):
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


EMBEDDERS = {"dygraph": DygraphEmbedder, "inference": InferenceEmbedder}
ENGINES = ("auto",) + tuple(EMBEDDERS)


def build_embedder(engine, model, tasks, batch_size=8, tensorrt=False):
    """The embedder of `engine` for `model`, prepared for `tasks`. 'auto': inference on the CPU (dygraph when the
    model cannot be exported, with a warning), dygraph on a GPU (unless `tensorrt`)."""
    if engine not in ENGINES:
        raise UserError(f"--engine must be one of {list(ENGINES)}, got {engine!r}")
    if tensorrt and engine == "dygraph":
        raise UserError("--tensorrt runs the exported model: use it with --engine inference (or auto)")
    if engine == "auto":
        import paddle

        engine = "inference" if tensorrt or not paddle.device.get_device().startswith("gpu") else "dygraph"
        if engine == "inference":
            try:
                return build_embedder(engine, model, tasks, batch_size, tensorrt)
            except ExportError as err:
                logger.warning("%s; evaluating through dygraph instead", str(err).split("; evaluate it with")[0])
                engine = "dygraph"
    kwargs = {"batch_size": batch_size, "tensorrt": tensorrt} if engine == "inference" else {}
    embedder = EMBEDDERS[engine](model, **kwargs)
    embedder.prepare(tasks)
    return embedder
