"""Box format conversions and generalised IoU on paddle tensors (boxes in the last axis)."""
import paddle


def cxcywh_to_xyxy(boxes):
    cx, cy, w, h = boxes.unbind(-1)
    return paddle.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def xyxy_to_cxcywh(boxes):
    x1, y1, x2, y2 = boxes.unbind(-1)
    return paddle.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def generalized_iou(a, b, eps=1e-10):
    """GIoU of xyxy boxes, broadcasting a and b against each other."""
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    inter_w = (paddle.minimum(ax2, bx2) - paddle.maximum(ax1, bx1)).clip(min=0)
    inter_h = (paddle.minimum(ay2, by2) - paddle.maximum(ay1, by1)).clip(min=0)
    inter = inter_w * inter_h
    union = area_a + area_b - inter
    iou = inter / (union + eps)
    hull = ((paddle.maximum(ax2, bx2) - paddle.minimum(ax1, bx1))
            * (paddle.maximum(ay2, by2) - paddle.minimum(ay1, by1)))
    return iou - (hull - union) / (hull + eps)


def inverse_sigmoid(x, eps=1e-5):
    x = x.clip(min=0.0, max=1.0)
    return paddle.log(x.clip(min=eps) / (1 - x).clip(min=eps))


__all__ = ["cxcywh_to_xyxy", "generalized_iou", "inverse_sigmoid", "xyxy_to_cxcywh"]
