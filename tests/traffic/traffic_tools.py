"""Helpers shared by the traffic tests."""


def tiny_model_config(seg_classes=5, cls_classes=7, det_classes=4):
    """A 3-block, 64-d traffic model (patch 8, 3x3 windows) with a 2+2-layer, 20-query DINO."""
    return {
        "backbone": {"name": "WindowedViT", "img_size": 64, "patch_size": 8, "embed_dim": 64, "depth": 3,
                     "num_heads": 2, "mlp_ratio": 2.0, "window_size": 3},
        "heads": {
            "segmentation": {"name": "TrafficSegmentationHead", "patch_size": 8, "num_classes": seg_classes,
                             "embed_dim": 64, "channels": 32, "block_index": 2, "aux_indices": [0, 1, 2, 2]},
            "fgvc": {"name": "TrafficClassificationHead", "in_dim": 64, "hidden_dim": 16, "num_classes": cls_classes},
            "trafficsign": {"name": "TrafficDetectionHead", "num_classes": det_classes, "num_top_queries": 10,
                            "hidden_dim": 32, "num_queries": 20, "in_channels": [64] * 4, "num_heads": 4,
                            "num_encoder_layers": 2, "num_decoder_layers": 2, "dim_feedforward": 64,
                            "num_denoising": 10},
        },
    }



import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import yaml  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
TINY_CONFIG = os.path.join(ROOT, "configs", "traffic", "tiny_cpu.yaml")


def tool_env(root, threads=1):
    env = dict(os.environ, FASTREID_DATASETS=str(root), OMP_NUM_THREADS=str(threads), PYTHON=PYTHON,
               PYTHONPATH=ROOT)
    for var in [name for name in env if name.startswith("PADDLE_")]:
        del env[var]  # a test run inside a launched job must not join it
    return env


def write_config(path, edit):
    """tiny_cpu.yaml resolved, changed by `edit(dict)`, written to `path` (a standalone YAML)."""
    from allinone.config import load_config

    data = load_config(TINY_CONFIG).to_dict()
    edit(data)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return str(path)


def train_command(config, output_dir, *args):
    return [PYTHON, os.path.join(ROOT, "tools", "train.py"), "-c", str(config), "-o",
            f"Global.output_dir={output_dir}", *args]


def run_train(config, output_dir, root, *args, timeout=300):
    return subprocess.run(train_command(config, output_dir, *args), cwd=ROOT, env=tool_env(root),
                          capture_output=True, text=True, timeout=timeout)


def model_state(path):
    return {key: np.asarray(value) for key, value in paddle.load(str(path), return_numpy=True)["model"].items()}
