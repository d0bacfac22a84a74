"""Segmentation quality: confusion matrix, (m)IoU, pixel accuracy, per-image IoU, boundary F-score.

Every measure takes ``(H, W)`` uint8 class-index masks, resizes the prediction to the ground
truth by nearest neighbour, and ignores ground-truth pixels of value 255.
"""

from core.metrics.boundary import boundary_fscore, boundary_map
from core.metrics.confusion import ConfusionMatrix
from core.metrics.evaluate import EvalResult, evaluate_masks
from core.metrics.image_iou import image_iou

__all__ = ["ConfusionMatrix", "EvalResult", "boundary_fscore", "boundary_map", "evaluate_masks", "image_iou"]
