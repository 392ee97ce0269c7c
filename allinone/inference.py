"""Features for a list of images with a built model, as the evaluation computes them (notebook-friendly)."""
import numpy as np
import paddle
from tqdm import tqdm


class FeatureExtractor:
    """`FeatureExtractor(model, task="task1").extract(paths)` -> float32 [N, D]: `model.embed(task, images)` (the
    task's head through task_to_head, post-BN, not normalised) after the evaluation's test transform (PIL bicubic
    resize to the backbone's img_size, (x - 127.5) / 127.5). Faces use task1, persons and vehicles task3, products
    task4. `head=` is the former name of `task` (a head name is a task routed to itself)."""

    def __init__(self, model, task=None, batch_size=8, num_workers=0, show_progress=False, head=None):
        if task is not None and head is not None:
            raise TypeError("FeatureExtractor: give task or head, not both")
        if head is not None and model.task_to_head.get(head, head) != head:
            raise ValueError(f"FeatureExtractor(head='{head}'): task_to_head routes '{head}' to head "
                             f"'{model.task_to_head[head]}'; pass task= to use that routing")
        task = task or head or "task1"
        model.head_for(task)  # a KeyError naming the heads if the task has none
        self.model, self.task = model, task
        self.batch_size, self.num_workers, self.show_progress = batch_size, num_workers, show_progress

    @property
    def head(self):
        return self.model.task_to_head.get(self.task, self.task)

    def extract(self, images, desc=None):
        """`images`: file paths (or encoded image bytes), in the order of the returned rows. `desc` labels the
        progress bar (images/s)."""
        from .data import build_test_loader, build_test_transform

        images = list(images)
        if not images:
            return np.zeros([0, self.model.backbone.embed_dim], "float32")
        transform = build_test_transform(self.model.backbone.img_size)
        # every image on this process, also under a multi-process launch (the loader would shard by rank)
        loader = build_test_loader(images, transform, self.batch_size, self.num_workers, rank=0, world_size=1)
        was_training = self.model.training
        self.model.eval()
        features = []
        try:
            with paddle.no_grad(), tqdm(total=len(images), unit="img", desc=desc or f"features ({self.task})",
                                        disable=not self.show_progress) as progress:
                for batch in loader:
                    features.append(self.model.embed(self.task, batch["images"]).numpy())
                    progress.update(len(features[-1]))
        finally:
            if was_training:
                self.model.train()
        return np.concatenate(features)
