"""Expert parallelism: the task -> ranks mapping, and 2 real CPU processes (Paddle's launcher, gloo) that give the
outputs and the (summed) gradients of one process on the same rows."""
import os

import numpy as np
import paddle
import pytest
from oneforall_tools import build_moe, load_reference_config, original_rank_states

from oneforall.expert_parallel import TaskRankMap
from oneforall.moe_checkpoint import convert_original_ranks

HERE = os.path.dirname(os.path.abspath(__file__))
# rows of each rank, in row order: different layouts and sizes on the two ranks
LAYOUTS = [(("face", 3), ("person", 1)), (("veri", 2), ("person", 1))]

WORKER = """
import sys
import numpy as np
import paddle
import paddle.distributed as dist
from test_expert_parallel import LAYOUTS, build_model, rank_inputs, run_model

dist.init_parallel_env()
rank = dist.get_rank()
model = build_model()
owners = model.enable_expert_parallel()
images, weights = rank_inputs(rank)
outputs = run_model(model, images, LAYOUTS[rank], weights)
for name, param in model.named_parameters():
    if param.stop_gradient:
        continue
    grad = param.grad.clone() if param.grad is not None else paddle.zeros_like(param)
    outputs["local." + name] = float(grad.abs().sum())  # before the sum: where the expert ran
    dist.all_reduce(grad)  # what data-parallel training does with every gradient
    outputs["grad." + name] = grad.numpy()
np.savez(f"{sys.argv[1]}.rank{rank}.npz", **outputs)
"""


def build_model():
    config = load_reference_config()
    model = build_moe(config, gate="soft", drop_path_rate=0.0)
    model.set_state_dict(convert_original_ranks(original_rank_states(config), model.tasks))
    return model


def rank_inputs(rank):
    """The rank's images (task rows in its layout order) and fixed loss weights for its tokens."""
    inputs = dict(np.load(os.path.join(HERE, "..", "fixtures", "spec", "reference", "oneforall", "B_inputs.npz")))
    used = {"person": 0}
    rows = []
    for source in range(rank + 1):
        for task, count in LAYOUTS[source]:
            start = used.get(task, 0)
            if source == rank:
                rows.append(inputs[task][start:start + count])
            used[task] = start + count
    images = np.concatenate(rows)
    weights = np.random.RandomState(rank).standard_normal([images.shape[0], 5, 64]).astype("float32")
    return paddle.to_tensor(images), paddle.to_tensor(weights)


def run_model(model, images, segments, weights):
    """Training forward (soft gates: deterministic) + backward of sum(tokens * weights); eval forward (hard gates)."""
    model.train()
    tokens = model(images, segments)
    (tokens * weights).sum().backward()
    model.eval()
    with paddle.no_grad():
        eval_tokens = model(images, segments)
    return {"train": tokens.numpy(), "eval": eval_tokens.numpy()}


def test_task_rank_map_routes_like_the_original_and_checks_divisibility():
    released = {"face": 8, "person": 4, "veri": 4, "sop": 4, "task1": 1, "task2": 2, "task3": 1}
    tasks = list(released) + [f"t{i}" for i in range(48 - sum(released.values()))]
    mapping = TaskRankMap(tasks, 48, released)
    assert mapping.owners["face"] == tuple(range(8)) and mapping.owners["person"] == (8, 9, 10, 11)
    assert mapping.owners["task2"] == (21, 22) and mapping.owners[tasks[-1]] == (47,)
    assert mapping.destination(13, "face") == 2 and mapping.destination(30, "person") == 10
    assert mapping.destination(23, "task2") == 21 and mapping.destination(24, "task2") == 22
    wrapped = TaskRankMap(["face", "person", "veri"], 2)
    assert wrapped.owners == {"face": (0,), "person": (1,), "veri": (0,)}
    with pytest.raises(ValueError, match="task 'person' has 3 ranks, which does not divide the world size 4"):
        TaskRankMap(["face", "person"], 4, {"person": 3})


def test_two_processes_equal_one(tmp_path, launch):
    (tmp_path / "worker.py").write_text(WORKER)
    launch(tmp_path / "worker.py", tmp_path / "out", pythonpath=[HERE])

    model = build_model()
    parts = [rank_inputs(rank) for rank in range(2)]
    images = paddle.concat([images for images, _ in parts])
    weights = paddle.concat([weights for _, weights in parts])
    expected = run_model(model, images, LAYOUTS[0] + LAYOUTS[1], weights)
    results = [dict(np.load(tmp_path / f"out.rank{rank}.npz")) for rank in range(2)]
    for key in ("train", "eval"):
        np.testing.assert_allclose(np.concatenate([r[key] for r in results]), expected[key], rtol=1e-6, atol=1e-6)
    grads = {name: (param.grad.numpy() if param.grad is not None else np.zeros(param.shape, "float32"))
             for name, param in model.named_parameters() if not param.stop_gradient}
    assert sorted(grads) == sorted(k[len("grad."):] for k in results[0] if k.startswith("grad."))
    # each task's expert ran only on its owner (veri: rank 0, person: rank 1), although both ranks had their rows
    for task, owner in (("face", 0), ("person", 1), ("veri", 0)):
        key = f"local.blocks.1.mlp.specific_experts.{task}.fc1.weight"
        assert results[owner][key] > 0 and results[1 - owner][key] == 0, task
    for name, grad in grads.items():
        for result in results:
            np.testing.assert_allclose(result["grad." + name], grad, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("world, ranks_per_task, layouts", [
    (2, {}, [(("face", 3), ("person", 1)), (("veri", 2), ("person", 1))]),
    (4, {"a": 2, "b": 4}, [(("a", 2), ("b", 3), ("c", 1)), (("c", 2), ("a", 1)), (("b", 1),),
                           (("a", 1), ("b", 0), ("c", 2), ("a", 2))]),
])
def test_alltoall_route_plan_delivers_every_row_to_its_owner_and_back(world, ranks_per_task, layouts):
    """The all-to-all exchange simulated on row labels: every row reaches the owner of its task (as the segments the
    owner expects), and comes back to its own position. (CPU has no all-to-all; the NCCL call follows this plan.)"""
    from oneforall.expert_parallel import RoutePlan
    tasks = sorted({task for layout in layouts for task, _ in layout})
    mapping = TaskRankMap(tasks, world, ranks_per_task)
    plans = [RoutePlan(mapping, layouts, rank) for rank in range(world)]
    labels = [[(rank, row, task) for task, rows in layouts[rank] for row in range(rows)] for rank in range(world)]
    for rank in range(world):  # row numbers inside the rank's batch
        labels[rank] = [(rank, index, task) for index, (_, _, task) in enumerate(labels[rank])]
    chunks = []
    for rank, plan in enumerate(plans):  # what each rank sends to each destination
        outgoing = [labels[rank][row] for row in plan.send_order]
        bounds = np.cumsum([0] + plan.send_splits)
        chunks.append([outgoing[bounds[d]:bounds[d + 1]] for d in range(world)])
    returned = [[[] for _ in range(world)] for _ in range(world)]
    for rank, plan in enumerate(plans):
        arrived = [chunks[source][rank] for source in range(world)]
        assert [len(part) for part in arrived] == plan.receive_splits
        for source, (part, segments) in enumerate(zip(arrived, plan.receive)):
            expected_tasks = [task for task, rows in segments for _ in range(rows)]
            assert [task for _, _, task in part] == expected_tasks
            assert all(mapping.destination(source, task) == rank for task in expected_tasks)
            returned[source][rank] = [("out", label) for label in part]
    for rank, plan in enumerate(plans):
        back = [item for destination in range(world) for item in returned[rank][destination]]
        assert [back[position] for position in plan.return_order] == [("out", label) for label in labels[rank]]
