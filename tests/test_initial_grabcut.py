"""GrabCut pieces of the initial routes: true-box quality, box from a map, seeds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.data.example import make_example
from core.initial.grabcut import box_from_map, grabcut_from_map, grabcut_interactive, seed_mask


def iou(a, b) -> float:
    a, b = a != 0, b != 0
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("gc"), n=8, size=96)


def test_true_box_gives_good_masks(example):
    ious = []
    for s in example:
        image, gt = s.load_image(), s.load_mask() != 0
        ys, xs = np.nonzero(gt)
        fg = grabcut_interactive(image, box=(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        ious.append(iou(fg, gt))
    assert np.mean(ious) > 0.8, ious


def test_box_from_map_and_seeds():
    m = np.zeros((50, 60), np.float32)
    m[10:20, 15:40] = 1.0
    m[45, 2] = 1.0  # a speck: not part of the main components
    box = box_from_map(m, 0.5, 0.0)
    assert box == (15, 10, 40, 20)
    x0, y0, x1, y1 = box_from_map(m, 0.5, 0.1)
    assert (x0, y0, x1, y1) == (9, 5, 46, 25)
    gc = seed_mask(m, box, prob_fg=0.5)
    assert (gc[:10] == cv2.GC_BGD).all() and (gc[10:20, 15:40] == cv2.GC_PR_FGD).all()
    assert box_from_map(np.zeros((5, 5)), 0.5, 0.1) is None


def test_grabcut_from_map_on_a_blurred_gt(example):
    s = example[1]
    image, gt = s.load_image(), s.load_mask() != 0
    coarse = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 6)
    coarse /= coarse.max()
    fg, box = grabcut_from_map(image, coarse, box_threshold=0.2, box_margin=0.05, prob_fg=0.3)
    assert box is not None and iou(fg, gt) > 0.8
