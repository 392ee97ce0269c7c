"""One backbone shared by several tasks, one head per task; tasks of one image size share one backbone pass."""
import paddle
import paddle.nn as nn


class MultiTaskModel(nn.Layer):
    """`model({task: images or {"images": ..., "targets": ..., ...}})` -> `{task: output}`, in input order.

    Each task is routed to the head `task_to_head[task]` (identity by default, so task 'task3' uses heads.task3).
    Tasks whose images have the same (H, W) go through one backbone pass on their concatenated images, with
    `segments` naming each task's rows (a task-MoE backbone routes by them); other sizes get their own pass. Each
    head gets its task's tokens and its whole task batch. Eval outputs of the retrieval heads are [b, D] features;
    in training each head returns its output dict (which may carry `"losses"`). `fuse_tasks=False` runs the
    backbone once per task (same numbers; kept for benchmarking the two).

    `embed(task, images)` is the eval embedding of one task; `forward`, FeatureExtractor and export all run
    `run_tasks`, the one path from images to head outputs.
    """

    def __init__(self, backbone, heads, task_to_head=None, fuse_tasks=True):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.LayerDict(heads)
        self.task_to_head = dict(task_to_head or {})
        unknown = {task: head for task, head in self.task_to_head.items() if head not in self.heads}
        if unknown:
            raise ValueError(f"task_to_head maps to heads that do not exist: {unknown}; heads: {list(self.heads)}")
        self.fuse_tasks = fuse_tasks

    def head_for(self, task):
        name = self.task_to_head.get(task, task)
        if name not in self.heads:
            raise KeyError(f"task '{task}' has no head: no '{name}' in heads {list(self.heads)} and no "
                           f"task_to_head entry for it")
        return self.heads[name]

    def embed(self, task, images):
        """Eval embedding [b, D] of one task's images [b, 3, H, W] (normalised as the test transform)."""
        if self.training:
            raise RuntimeError("MultiTaskModel.embed gives eval embeddings (BN running statistics); call "
                               "model.eval() first")
        return self.run_tasks({task: {"images": images}})[task]

    def forward(self, inputs):
        return self.run_tasks({task: _task_batch(task, batch) for task, batch in inputs.items()})

    def run_tasks(self, task_batches):
        """{task: {"images": [b, 3, H, W], ...}} -> {task: head output}: one backbone pass per fusion group."""
        outputs = {}
        for tasks in self.fusion_groups(task_batches):
            images = [task_batches[task]["images"] for task in tasks]
            segments = tuple((task, batch.shape[0]) for task, batch in zip(tasks, images))
            if len(tasks) == 1:
                per_task = [self.backbone(images[0], segments)]
            else:
                tokens = self.backbone(paddle.concat(images, axis=0), segments)  # sum(b), N, D
                per_task = paddle.split(tokens, [rows for _, rows in segments], axis=0)
            for task, task_tokens in zip(tasks, per_task):
                outputs[task] = self.head_for(task)(task_tokens, task_batches[task])
        return {task: outputs[task] for task in task_batches}

    def fusion_groups(self, task_batches):
        """Lists of tasks sharing one backbone pass: same image (H, W), in order of first appearance."""
        if not self.fuse_tasks:
            return [[task] for task in task_batches]
        sizes = [tuple(batch["images"].shape[2:]) for batch in task_batches.values()]
        return [[task for task, size in zip(task_batches, sizes) if size == group_size]
                for group_size in dict.fromkeys(sizes)]


def _task_batch(task, batch):
    """A task's input as a dict with "images" (a bare images tensor is accepted)."""
    if isinstance(batch, dict):
        if "images" not in batch:
            raise KeyError(f"inputs['{task}'] has no 'images' entry; keys: {sorted(batch)}")
        return batch
    return {"images": batch}
