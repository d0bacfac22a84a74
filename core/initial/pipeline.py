"""Per-image recipes of the map-based routes (cam, grabcut, fused), at working size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.initial.cam import cam_probs, crf
from core.initial.config import InitConfig
from core.initial.grabcut import centre_box, grabcut_from_map
from core.initial.probs import onehot
from core.initial.scores import colour_confidence, margin_confidence, mask_iou

KINDS = ("cam", "grabcut", "fused")

MIX = 0.6
"""Hard masks become probabilities as ``MIX * one-hot + (1 - MIX) * CAM probabilities``."""


def _assign(fg: np.ndarray, cams: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Class mask: foreground pixels take the label whose CAM is highest there."""
    if len(classes) == 1:
        return (fg * classes[0]).astype(np.uint8)
    best = np.asarray(classes, dtype=np.uint8)[cams.argmax(0)]
    return np.where(fg, best, 0).astype(np.uint8)


def image_probs(
    image: np.ndarray,
    cams: np.ndarray,
    classes: Sequence[int],
    num_classes: int,
    kind: str,
    cfg: InitConfig,
    *,
    centre: bool = False,
) -> tuple[np.ndarray, float, dict]:
    """Probabilities ``(K, h, w)`` and a confidence in [0, 1] for one working-size image.

    Args:
        image: ``(h, w, 3) uint8``.
        cams: ``(len(classes), h, w)`` coarse maps in [0, 1] of the image's labels.
        classes: the image's label indices.
        kind: ``cam`` (CAM -> dense CRF), ``grabcut`` (GrabCut from the map's box, seeded by the
            map), ``fused`` (GrabCut and CRF'd CAM averaged, optionally CRF'd again).
        centre: the map is a plain box (no box margin, no CAM probabilities worth fusing).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown per-image recipe {kind!r}; valid: {list(KINDS)}")
    p_cam = cam_probs(cams, classes, num_classes, cfg.bg_power)
    extra: dict = {}
    if kind == "cam":
        q = crf(image, p_cam, cfg)
        return q, margin_confidence(q), extra
    coarse = cams.max(0)
    fg, box = grabcut_from_map(
        image,
        coarse,
        box_threshold=cfg.box_threshold,
        box_margin=0.0 if centre else cfg.box_margin,
        prob_fg=cfg.prob_fg_threshold,
        sure_fg=cfg.sure_fg_threshold,
        iters=cfg.grabcut_iters,
        seed=cfg.seed,
        fixed_box=(centre_box(image.shape[:2], cfg.centre_box) if cfg.box_mode != "map" and not centre else None),
        union=cfg.box_mode == "union",
    )
    extra["box"] = box
    hard = onehot(_assign(fg, cams, classes), num_classes)
    if kind == "grabcut":
        probs = MIX * hard + (1.0 - MIX) * p_cam
        return probs.astype(np.float32), colour_confidence(image, fg), extra
    q = crf(image, p_cam, cfg)
    fused = cfg.fuse_weight * hard + (1.0 - cfg.fuse_weight) * q
    if cfg.fuse_crf:
        fused = crf(image, fused.astype(np.float32), cfg)
    score = mask_iou(fg, q.argmax(0) != 0)
    return fused.astype(np.float32), score, extra


RecipeJob = tuple[np.ndarray, np.ndarray, tuple[int, ...], int, str, InitConfig, bool]
"""One image's per-image work: ``(working image (h, w, 3) uint8, coarse maps (len(classes), h, w),
classes, num_classes, recipe, config, centre)``; the arguments of ``image_probs``."""


def image_probs_job(job: RecipeJob) -> tuple[np.ndarray, float]:
    """``image_probs`` on one packed job (a module-level function, so worker processes can run it):
    the working-size probabilities ``(K, h, w) float32`` and the confidence in [0, 1]."""
    work, cams, classes, num_classes, kind, cfg, centre = job
    probs, score, _ = image_probs(work, cams, classes, num_classes, kind, cfg, centre=centre)
    return probs, score
