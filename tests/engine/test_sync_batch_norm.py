"""Batch norm with statistics over all ranks, in 2 real CPU processes (Paddle's launcher, gloo): each rank holds half
of a batch, and outputs, input gradients, parameter gradients (summed over ranks) and running statistics equal those
of one process running plain BatchNorm2D on the whole batch."""
import os

import numpy as np
import paddle
import paddle.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = """
import sys
import numpy as np
import paddle
import paddle.distributed as dist
from test_sync_batch_norm import build, inputs, run
from allinone.modeling.sync_batch_norm import CrossRankBatchNorm2D, synchronise_batch_norm

dist.init_parallel_env()
rank = dist.get_rank()
model = synchronise_batch_norm(build())
assert isinstance(model[1], CrossRankBatchNorm2D) and model[4] is model[1]
images, weights = inputs()
half = slice(3 * rank, 3 * rank + 3)  # rank 0: rows 0-2, rank 1: rows 3-5
out = run(model, images[half], weights[half])
for name in list(out):
    if name.startswith("grad."):
        grad = paddle.to_tensor(out[name])
        dist.all_reduce(grad)
        out[name] = grad.numpy()
np.savez(f"{sys.argv[1]}.rank{rank}.npz", **out)
"""


def build():
    """conv -> BN -> ReLU -> conv -> the same BN again (one layer under two names, as the traffic aux heads)."""
    paddle.seed(0)
    norm = nn.BatchNorm2D(4)
    return nn.Sequential(nn.Conv2D(3, 4, 3, padding=1), norm, nn.ReLU(), nn.Conv2D(4, 4, 1), norm)


def inputs():
    rng = np.random.RandomState(0)
    images = rng.normal(1.0, 2.0, [6, 3, 5, 7]).astype("float32")
    weights = rng.normal(0.0, 1.0, [6, 4, 5, 7]).astype("float32")
    return images, weights


def run(model, images, weights):
    """Training forward and backward of sum(outputs * weights): outputs, gradients, running statistics."""
    model.train()
    x = paddle.to_tensor(images, stop_gradient=False)
    y = model(x)
    (y * paddle.to_tensor(weights)).sum().backward()
    out = {"y": y.numpy(), "x_grad": x.grad.numpy()}
    out.update({f"grad.{name}": param.grad.numpy() for name, param in model.named_parameters()
                if not param.stop_gradient})
    out.update({f"state.{name}": value.numpy() for name, value in model.state_dict().items()})
    return out


def test_two_processes_normalise_like_one_process_on_the_whole_batch(tmp_path, launch):
    (tmp_path / "worker.py").write_text(WORKER)
    launch(tmp_path / "worker.py", tmp_path / "out", pythonpath=[HERE])

    images, weights = inputs()
    expected = run(build(), images, weights)
    ranks = [dict(np.load(tmp_path / f"out.rank{rank}.npz")) for rank in range(2)]
    for key in ("y", "x_grad"):
        np.testing.assert_allclose(np.concatenate([r[key] for r in ranks]), expected[key], rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    names = [key for key in expected if key.startswith(("grad.", "state."))]
    assert sorted(names) == sorted(key for key in ranks[0] if key.startswith(("grad.", "state.")))
    assert "state.1._variance" in names and "grad.1.weight" in names
    for rank in ranks:
        for key in names:
            np.testing.assert_allclose(rank[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_one_process_keeps_the_plain_layer():
    from allinone.modeling.sync_batch_norm import synchronise_batch_norm

    model = build()
    assert synchronise_batch_norm(model) is model and type(model[1]) is nn.BatchNorm2D
