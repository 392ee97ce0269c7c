"""One-to-one matching of detection queries to ground-truth boxes: the cost matrix of DINO (focal class cost, L1 and
GIoU on normalised boxes) and a minimum-cost assignment solver (shortest augmenting paths with potentials)."""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .boxes import cxcywh_to_xyxy, generalized_iou


def linear_assignment(cost):
    """Minimum-cost one-to-one assignment of a [n, m] cost matrix: (rows, cols), rows ascending, min(n, m) pairs.

    The Hungarian method in its shortest-augmenting-path form: one row is added at a time and the cheapest
    alternating path (in reduced costs, kept non-negative by the row/column potentials) to a free column is flipped.
    O(n^2 m) with numpy over the columns.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"linear_assignment needs a 2-D cost matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("linear_assignment: the cost matrix has NaN or infinite entries")
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    rows, cols = cost.shape
    if rows == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    row_potential = np.zeros(rows + 1)
    col_potential = np.zeros(cols + 1)
    owner = np.zeros(cols + 1, dtype=np.int64)  # 1-based row matched to column j (0: free); column 0 is the root
    previous = np.zeros(cols + 1, dtype=np.int64)  # column before j on the shortest path
    for row in range(1, rows + 1):
        owner[0] = row
        column = 0
        distance = np.full(cols + 1, np.inf)
        visited = np.zeros(cols + 1, dtype=bool)
        while True:
            visited[column] = True
            current_row = owner[column]
            free = ~visited[1:]
            reduced = cost[current_row - 1] - row_potential[current_row] - col_potential[1:]
            better = free & (reduced < distance[1:])
            distance[1:][better] = reduced[better]
            previous[1:][better] = column
            candidates = np.where(free, distance[1:], np.inf)
            next_column = int(np.argmin(candidates)) + 1
            delta = candidates[next_column - 1]
            row_potential[owner[visited]] += delta
            col_potential[visited] -= delta
            distance[1:][free] -= delta
            column = next_column
            if owner[column] == 0:
                break
        while column:  # flip the path
            before = previous[column]
            owner[column] = owner[before]
            column = before
    assigned = np.nonzero(owner[1:])[0]
    row_index, col_index = owner[1:][assigned] - 1, assigned
    if transposed:
        row_index, col_index = col_index, row_index
    order = np.argsort(row_index, kind="stable")
    return row_index[order].astype(np.int64), col_index[order].astype(np.int64)


def focal_class_cost(probs, alpha=0.25, gamma=2.0):
    """Per-entry class cost of the focal loss: the positive minus the negative term at probability `probs`."""
    positive = alpha * (1 - probs) ** gamma * (-paddle.log(probs + 1e-8))
    negative = (1 - alpha) * probs ** gamma * (-paddle.log(1 - probs + 1e-8))
    return positive - negative


class HungarianMatcher(nn.Layer):
    """Per image, the query <-> ground-truth pairing minimising class * focal cost + bbox * L1 + giou * (1 - GIoU)."""

    def __init__(self, class_cost=2.0, bbox_cost=5.0, giou_cost=2.0, alpha=0.25, gamma=2.0):
        super().__init__()
        self.class_cost, self.bbox_cost, self.giou_cost = class_cost, bbox_cost, giou_cost
        self.alpha, self.gamma = alpha, gamma

    @paddle.no_grad()
    def cost_matrices(self, boxes, logits, gt_boxes, gt_classes):
        """[num_queries, num_gt] cost per image (numpy); boxes [B, Q, 4] cxcywh, logits [B, Q, C]."""
        costs = []
        for image in range(boxes.shape[0]):
            if gt_boxes[image].shape[0] == 0:
                costs.append(np.zeros([boxes.shape[1], 0], dtype=np.float32))
                continue
            probs = F.sigmoid(logits[image])
            labels = gt_classes[image].reshape([-1]).astype("int64")
            class_cost = focal_class_cost(paddle.gather(probs, labels, axis=1), self.alpha, self.gamma)
            target = gt_boxes[image].astype(boxes.dtype)
            l1 = (boxes[image].unsqueeze(1) - target.unsqueeze(0)).abs().sum(-1)
            giou = generalized_iou(cxcywh_to_xyxy(boxes[image]).unsqueeze(1), cxcywh_to_xyxy(target).unsqueeze(0))
            total = self.bbox_cost * l1 + self.class_cost * class_cost + self.giou_cost * (1 - giou)
            costs.append(total.numpy())
        return costs

    def forward(self, boxes, logits, gt_boxes, gt_classes):
        """A list of (query indices, gt indices) int64 arrays, one pair per image."""
        return [linear_assignment(cost) for cost in self.cost_matrices(boxes, logits, gt_boxes, gt_classes)]


__all__ = ["HungarianMatcher", "focal_class_cost", "linear_assignment"]
