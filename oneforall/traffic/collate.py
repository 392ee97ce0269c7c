"""Batching of traffic samples, and numpy batches -> the model's paddle inputs."""
import numpy as np
import paddle

from allinone.data.common import collate as allinone_collate


def stack_collate(samples):
    """Equal-sized samples: arrays stacked, numbers as arrays, strings as lists."""
    return allinone_collate(samples)


def detection_collate(samples):
    """Images zero-padded bottom/right to the batch's largest H and W with `pad_mask` (1 = real pixel); boxes and
    classes stay per-image lists."""
    height = max(s["images"].shape[1] for s in samples)
    width = max(s["images"].shape[2] for s in samples)
    images = np.zeros([len(samples), 3, height, width], np.float32)
    pad_mask = np.zeros([len(samples), height, width], np.float32)
    for i, sample in enumerate(samples):
        _, h, w = sample["images"].shape
        images[i, :, :h, :w] = sample["images"]
        pad_mask[i, :h, :w] = 1
    per_image = ("gt_boxes", "gt_classes")
    batch = allinone_collate([{k: v for k, v in s.items() if k not in per_image and k != "images"}
                              for s in samples])
    batch.update(images=images, pad_mask=pad_mask, gt_boxes=[s["gt_boxes"] for s in samples],
                 gt_classes=[s["gt_classes"] for s in samples])
    return batch


def to_model_batch(batch):
    """numpy arrays -> paddle tensors (lists of arrays -> lists of tensors); strings and others unchanged."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, np.ndarray):
            out[key] = paddle.to_tensor(value)
        elif isinstance(value, paddle.Tensor):
            out[key] = value
        elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            out[key] = [paddle.to_tensor(v) for v in value]
        else:
            out[key] = value
    return out


__all__ = ["detection_collate", "stack_collate", "to_model_batch"]
