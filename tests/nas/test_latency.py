"""Sub-network cost: the analytic parameter count equals the extracted ViT's, the analytic FLOPs equal the matrix
products counted on a real forward of the extracted ViT, and Paddle Inference latencies order sub-networks by size
(a 96-wide ViT at 64x64, large enough for compute to dominate; round robin, median of 60 runs)."""
import random

import numpy as np
import paddle
import pytest

import oneforall.chip_training  # noqa: F401
from allinone.config import load_config
from allinone.modeling import build_model
from oneforall.search_space import Architecture
from oneforall.gpnas.evaluation import kendall_tau
from oneforall.gpnas.search import LatencyPredictor
from oneforall.subnet_codes import subnet_code
from oneforall.latency import LatencyMeter, backbone_cost, extracted_model
from oneforall.subnet_export import subnet_state_dict

MEDIUM = ["Model.backbone.embed_dim=96", "Model.backbone.head_dim=8", "Model.backbone.choices.embed_dim=[96]",
          "Model.backbone.img_size=[64,64]"]


def supernet(overrides=()):
    cfg = load_config("configs/oneforall/tiny_chip_supernet.yaml", list(overrides))
    for head in cfg.Model.heads.values():
        head.num_classes = 0
    paddle.seed(0)
    return cfg, build_model(cfg).eval()


def counted_flops(model, images):
    """2 x multiply-accumulates of every Linear and Conv2D of a real forward, plus the attention products
    (q k^T and attention x v, 2 x tokens^2 x inner width per block), measured from the layers' input shapes."""
    macs = []

    def linear_hook(layer, inputs, output):
        macs.append(int(np.prod(inputs[0].shape[:-1])) * layer.weight.shape[0] * layer.weight.shape[1])

    def conv_hook(layer, inputs, output):
        out_positions = int(np.prod(output.shape[2:]))
        macs.append(out_positions * int(np.prod(layer.weight.shape)))

    def attention_hook(layer, inputs, output):
        tokens = inputs[0].shape[1]
        macs.append(2 * tokens * tokens * layer.num_heads * layer.head_dim)

    handles = []
    for name, layer in model.backbone.named_sublayers():
        if isinstance(layer, paddle.nn.Linear):
            handles.append(layer.register_forward_post_hook(linear_hook))
        elif isinstance(layer, paddle.nn.Conv2D):
            handles.append(layer.register_forward_post_hook(conv_hook))
        elif name.endswith(".attn"):
            handles.append(layer.register_forward_post_hook(attention_hook))
    with paddle.no_grad():
        model.backbone(images)
    for handle in handles:
        handle.remove()
    return 2 * sum(macs)


@pytest.mark.parametrize("step", [0, 1, 2])
def test_analytic_params_and_flops_equal_the_extracted_vit_counted(step):
    cfg, model = supernet()
    space = model.backbone.search_space
    arch = [space.largest(), space.smallest(), space.sample(7)][step]
    cost = backbone_cost(model.backbone, arch)
    assert cost["params"] == sum(int(v.numel()) for v in subnet_state_dict(model.backbone, arch).values())
    plain = extracted_model(cfg, model, arch)
    images = paddle.zeros([1, 3, 32, 32])
    assert cost["flops"] == counted_flops(plain, images)


@pytest.fixture(scope="module")
def timed_pool():
    """24 random sub-networks of a 96-wide ViT at 64x64 (large enough for compute to dominate), spread over the
    FLOPs range (half lean small, half lean large), timed with Paddle Inference round robin, median of 60 runs:
    (flops [24], latency_ms [24], codes [24])."""
    cfg, model = supernet(MEDIUM)
    space, backbone = model.backbone.search_space, model.backbone
    rng = random.Random(0)

    def draw(lean):
        """A sub-network whose every choice is the largest with probability `lean`, else the smallest or random."""
        def pick(values):
            return max(values) if rng.random() < lean else (min(values) if rng.random() < 0.5 else rng.choice(values))
        depth = pick(space.depth)
        return Architecture(depth, tuple(pick(space.num_heads) for _ in range(depth)),
                            tuple(pick(space.mlp_ratio) for _ in range(depth)), (backbone.embed_dim,) * depth,
                            space=space)

    pool = [draw(lean) for lean in (0.15, 0.85) * 12]
    flops = np.array([backbone_cost(backbone, arch)["flops"] for arch in pool])
    meter = LatencyMeter(threads=1, warmup=5, runs=60, batch_size=2, device="cpu")
    latency = np.array(meter.measure(cfg, model, pool))
    return flops, latency, np.array([subnet_code(arch) for arch in pool])


def test_a_bigger_subnetwork_is_slower_in_at_least_9_of_10_random_pairs_30_percent_apart_in_flops(timed_pool):
    flops, latencies, _ = timed_pool
    apart = [(i, j) for i in range(len(flops)) for j in range(len(flops)) if flops[i] >= 1.3 * flops[j]]
    assert len(apart) >= 10
    pairs = random.Random(1).sample(apart, 10)
    ordered = sum(latencies[big] > latencies[small] for big, small in pairs)
    ratios = [(round(flops[big] / flops[small], 2), round(latencies[big] / latencies[small], 2)) for big, small in pairs]
    assert ordered >= 9, f"(FLOPs ratio, latency ratio) of the pairs: {ratios}"


@pytest.mark.parametrize("predictor", ["baseline-fast", "ridge"])
def test_the_latency_predictor_ranks_held_out_codes(timed_pool, predictor):
    """Fitted on 12 measured codes, the predicted latency orders the 12 others (Kendall tau), and its milliseconds
    stay on the measured scale."""
    _, latency, codes = timed_pool
    rows = np.random.RandomState(0).permutation(len(codes))
    fit, held = rows[:12], rows[12:]
    model = LatencyPredictor(predictor).fit(codes[fit], latency[fit])
    tau = kendall_tau(latency[held], model.predict(codes[held]))
    assert tau >= 0.5, tau
    milliseconds = model.predict_ms(codes[held])
    assert latency[fit].min() <= milliseconds.min() and milliseconds.max() <= latency[fit].max()
    assert kendall_tau(milliseconds, model.predict(codes[held])) > 0.99
