"""The cost of a sub-network: parameters and FLOPs counted analytically, latency measured with Paddle Inference on
the sub-network exported as a plain ViT (what would be deployed), with fixed threads, warm-up and the median of
several runs.

FLOPs are 2 x the multiply-accumulates of the matrix products of one image (patch embedding, q/k/v, attention
scores and weighted sum, projection, FFN); norms, softmax, GELU and the head are left out. Parameters are those of
the extracted backbone (the heads are the same for every sub-network).
"""
import os
import statistics
import tempfile
import time

import numpy as np


def backbone_cost(backbone, arch):
    """{'params': int, 'flops': int} of sub-network `arch` of the elastic `backbone` (per image)."""
    patch = backbone.patch_embed
    channels, kh, kw = patch.in_chans, patch.patch_size, patch.patch_size
    grid_h, grid_w = backbone.patch_embed.grid_size
    width, head_dim = int(backbone.embed_dim), int(backbone.head_dim)
    patches = int(grid_h) * int(grid_w)
    tokens = patches + 1
    qkv_bias = backbone.blocks[0].attn.qkv.bias is not None
    params = channels * kh * kw * width + width  # patch embedding
    params += width + tokens * width + 2 * width  # cls token, position embedding, final norm
    macs = patches * channels * kh * kw * width
    for layer in range(arch.depth):
        inner = int(arch.num_heads[layer]) * head_dim
        hidden = int(width * arch.mlp_ratios[layer])
        params += 4 * width  # two LayerNorms
        params += width * 3 * inner + (3 * inner if qkv_bias else 0) + inner * width + width  # qkv, proj
        params += width * hidden + hidden + hidden * width + width  # fc1, fc2
        macs += tokens * (width * 3 * inner + inner * width + 2 * width * hidden)  # projections and FFN
        macs += 2 * tokens * tokens * inner  # q k^T and attention x v
    return {"params": int(params), "flops": int(2 * macs)}


def extracted_model(cfg, model, arch):
    """The plain model (allinone's per-layer ViT + the same heads) of sub-network `arch` of `model`'s elastic
    backbone, with the sliced weights, in eval mode: what `python -m oneforall.extract` writes, in memory."""
    from allinone.config import Config
    from allinone.modeling import build_model

    from .subnet_export import subnet_backbone_config, subnet_state_dict

    plain = cfg.to_dict()
    plain["Model"]["backbone"] = subnet_backbone_config(model.backbone, arch)
    extracted = build_model(Config(plain, source=f"{cfg.source} (sub-network)"))
    state = {f"backbone.{key}": value for key, value in subnet_state_dict(model.backbone, arch).items()}
    state.update({key: value for key, value in model.state_dict().items() if not key.startswith("backbone.")})
    extracted.set_state_dict(state)
    return extracted.eval()


class LatencyMeter:
    """Latency of exported models under fixed conditions: `threads` CPU threads (or the first GPU when Paddle has
    one and `device` allows it), `warmup` runs, then the median of `runs` timed runs on a fixed random batch of
    `batch_size` images."""

    def __init__(self, threads=1, warmup=5, runs=20, batch_size=1, device="auto"):
        import paddle

        self.threads, self.warmup, self.runs, self.batch_size = int(threads), int(warmup), int(runs), int(batch_size)
        if min(self.threads, self.runs, self.batch_size) < 1 or self.warmup < 0:
            raise ValueError(f"latency: threads, runs and batch_size must be >= 1 and warmup >= 0, got {self.threads}, "
                             f"{self.runs}, {self.batch_size}, {self.warmup}")
        has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        if device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"latency device must be auto, cpu or gpu, got {device!r}")
        if device == "gpu" and not has_gpu:
            raise ValueError("latency device 'gpu' asked for, but Paddle sees no GPU")
        self.device = "gpu" if device == "gpu" or (device == "auto" and has_gpu) else "cpu"

    def describe(self):
        return {"device": self.device, "threads": self.threads, "warmup": self.warmup, "runs": self.runs,
                "batch_size": self.batch_size}

    def predictor(self, prefix):
        import paddle.inference as inference

        model_file = next(prefix + ext for ext in (".json", ".pdmodel") if os.path.isfile(prefix + ext))
        config = inference.Config(model_file, prefix + ".pdiparams")
        if self.device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self.threads)
        config.disable_glog_info()
        return inference.create_predictor(config)

    def measure_exported(self, prefixes, image_size):
        """Median milliseconds of one batch through each exported model (path prefixes), measured round robin:
        every round runs each model once, so a change of load on a shared machine hits all of them alike."""
        predictors = [self.predictor(prefix) for prefix in prefixes]
        height, width = image_size
        images = np.random.RandomState(0).uniform(-1, 1, [self.batch_size, 3, height, width]).astype("float32")
        outputs = []
        for predictor in predictors:
            predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(images)
            outputs.append(predictor.get_output_handle(predictor.get_output_names()[0]))
        times = [[] for _ in predictors]
        for round_index in range(self.warmup + self.runs):
            for predictor, output, kept in zip(predictors, outputs, times):
                start = time.perf_counter()
                predictor.run()
                output.copy_to_cpu()  # waits for the result (GPU)
                if round_index >= self.warmup:
                    kept.append((time.perf_counter() - start) * 1000.0)
        return [statistics.median(kept) for kept in times]

    def measure(self, cfg, model, archs, task=None):
        """Median milliseconds of each sub-network in `archs` of `model`: extracted, exported (backbone + the head
        of `task`, default the first head) to a temporary folder, run with Paddle Inference round robin."""
        from allinone.engine.export import export_task

        with tempfile.TemporaryDirectory(prefix="latency_") as folder:
            prefixes = []
            for index, arch in enumerate(archs):
                extracted = extracted_model(cfg, model, arch)
                task = task or next(iter(extracted.heads))
                _, prefix = export_task(extracted, task, os.path.join(folder, str(index)))
                prefixes.append(prefix)
            return self.measure_exported(prefixes, tuple(model.backbone.img_size))


__all__ = ["LatencyMeter", "backbone_cost", "extracted_model"]
