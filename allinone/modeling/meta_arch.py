"""One backbone shared by several tasks, one head per task, all tasks' images in a single backbone pass."""
import paddle
import paddle.nn as nn


class MultiTaskModel(nn.Layer):
    """`model({task: images or {"images": ..., "targets": ...}})` -> `{task: output}`.

    Each task is routed to the head `task_to_head[task]` (identity by default, so task 'task3' uses
    heads.task3). Eval outputs are [b, D] features; in training each head gets its targets and returns its output
    dict. `fuse_tasks=False` runs the backbone once per task instead of once on the concatenated batch (same
    numbers; kept for benchmarking the two).
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

    def forward(self, inputs):
        tasks = list(inputs)
        images = [_images_of(task, inputs[task]) for task in tasks]
        if self.fuse_tasks:
            sizes = [batch.shape[0] for batch in images]
            features = paddle.split(self.backbone(paddle.concat(images, axis=0)), sizes, axis=0)
        else:
            features = [self.backbone(batch) for batch in images]
        outputs = {}
        for task, feature in zip(tasks, features):
            head = self.head_for(task)
            outputs[task] = head(feature, inputs[task] if isinstance(inputs[task], dict) else None)
        return outputs


def _images_of(task, batch):
    if isinstance(batch, dict):
        if "images" not in batch:
            raise KeyError(f"inputs['{task}'] has no 'images' entry; keys: {sorted(batch)}")
        return batch["images"]
    return batch
