"""core.metrics against values computed by hand on tiny masks."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from core.metrics import ConfusionMatrix, boundary_fscore, boundary_map, evaluate_masks, image_iou

# 3 classes; (2, 1) is ignored in the ground truth; pred (2, 2) = 255 is "no answer".
GT = np.array([[0, 0, 1], [1, 1, 2], [2, 255, 0]], np.uint8)
PRED = np.array([[0, 1, 1], [1, 0, 2], [2, 2, 255]], np.uint8)
# counted pairs (gt, pred): (0,0) (0,1) (1,1) (1,1) (1,0) (2,2) (2,2) (0,255)
# class 0: tp 1, gt 3, pred 2 -> 1/4;  class 1: tp 2, gt 3, pred 3 -> 2/4;  class 2: tp 2, gt 2, pred 2 -> 1


def test_confusion_matrix_by_hand():
    cm = ConfusionMatrix(3).update(PRED, GT)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [1, 2, 0], [0, 0, 2]])
    np.testing.assert_allclose(cm.iou(), [0.25, 0.5, 1.0])
    assert cm.miou() == pytest.approx((0.25 + 0.5 + 1.0) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 8)
    assert cm.total() == 8


def test_absent_class_is_nan_and_left_out_of_miou():
    cm = ConfusionMatrix(4).update(PRED, GT)
    iou = cm.iou()
    assert math.isnan(iou[3])
    assert cm.miou() == pytest.approx((0.25 + 0.5 + 1.0) / 3)


def test_accumulates_over_images():
    b = np.array([[1, 1], [0, 0]], np.uint8)
    cm = ConfusionMatrix(3).update(PRED, GT).update(b, b)
    np.testing.assert_allclose(cm.iou(), [3 / 6, 4 / 6, 1.0])
    assert cm.pixel_accuracy() == pytest.approx(9 / 12)
    other = ConfusionMatrix(3).update(b, b)
    merged = ConfusionMatrix(3).update(PRED, GT).merge(other)
    np.testing.assert_array_equal(merged.matrix, cm.matrix)


def test_prediction_resized_nearest():
    small = np.array([[0, 1], [1, 2]], np.uint8)
    gt = np.kron(small, np.ones((3, 3), np.uint8))
    cm = ConfusionMatrix(3).update(small, gt)
    assert cm.miou() == 1.0 and cm.total() == 36
    assert image_iou(small, gt) == 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="ground truth.*\\[5\\]"):
        ConfusionMatrix(3).update(GT, np.full((3, 3), 5, np.uint8))
    with pytest.raises(ValueError, match="prediction.*\\[4\\]"):
        ConfusionMatrix(3).update(np.full((3, 3), 4, np.uint8), GT)
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="2-D"):
        ConfusionMatrix(3).update(np.zeros((3, 3, 1), np.uint8), GT)
    with pytest.raises(ValueError, match="integer"):
        ConfusionMatrix(3).update(np.zeros((3, 3), np.float32), GT)
    assert math.isnan(ConfusionMatrix(2).miou()) and math.isnan(ConfusionMatrix(2).pixel_accuracy())


def test_image_iou_by_hand():
    # gt foreground (valid): (0,2) (1,0) (1,1) (1,2) (2,0); pred foreground: (0,1) (0,2) (1,0) (1,2) (2,0)
    # union 6; same-class intersection (0,2) (1,0) (1,2) (2,0) = 4
    assert image_iou(PRED, GT) == pytest.approx(4 / 6)
    assert image_iou(np.array([[2, 1]], np.uint8), np.array([[1, 1]], np.uint8)) == pytest.approx(0.5)
    assert image_iou(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)) == 1.0
    assert image_iou(np.ones((2, 2), np.uint8), np.zeros((2, 2), np.uint8)) == 0.0


def test_boundary_map():
    m = np.array([[0, 0, 1, 1]], np.uint8)
    np.testing.assert_array_equal(boundary_map(m), [[False, True, True, False]])


def test_boundary_fscore_by_hand():
    gt = np.array([[0, 0, 1, 1]], np.uint8)  # boundary pixels 1, 2
    pred = np.array([[0, 1, 1, 1]], np.uint8)  # boundary pixels 0, 1
    assert boundary_fscore(pred, gt, tolerance=0) == pytest.approx(0.5)  # P = 1/2, R = 1/2
    assert boundary_fscore(pred, gt, tolerance=1) == pytest.approx(1.0)
    assert boundary_fscore(gt, gt, tolerance=0) == 1.0
    flat = np.zeros((1, 4), np.uint8)
    assert boundary_fscore(flat, flat) == 1.0
    assert boundary_fscore(flat, gt) == 0.0 and boundary_fscore(gt, flat) == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        boundary_fscore(gt, gt, tolerance=-1)


def test_boundary_fscore_ignores_the_ignore_band():
    gt = np.array([[0, 0, 255, 1, 1]], np.uint8)  # boundary 1, 2, 3; 2 is ignored -> {1, 3}
    pred = np.array([[0, 0, 0, 1, 1]], np.uint8)  # boundary 2, 3; valid -> {3}
    # precision 1/1; recall |{1, 3} & {2, 3}| / 2 = 1/2 -> F = 2/3
    assert boundary_fscore(pred, gt, tolerance=0) == pytest.approx(2 / 3)


def test_evaluate_masks_by_hand(caplog):
    b = np.array([[1, 1], [0, 0]], np.uint8)
    pred = {"a": PRED, "b": b, "extra": b}
    gt = {"a": GT, "b": b, "lonely": b}
    with caplog.at_level(logging.WARNING):
        r = evaluate_masks(pred, gt, 3, ["background", "x", "y"])
    assert "lonely" in caplog.text and "extra" in caplog.text
    assert r.n_images == 2
    assert r.per_class_iou == pytest.approx({"background": 0.5, "x": 4 / 6, "y": 1.0})
    assert r.miou == pytest.approx((0.5 + 4 / 6 + 1.0) / 3)
    assert r.pixel_accuracy == pytest.approx(0.75)
    assert r.per_image_iou == pytest.approx({"a": 4 / 6, "b": 1.0})
    assert r.mean_image_iou == pytest.approx((4 / 6 + 1.0) / 2)
    r0 = evaluate_masks(pred, gt, 3, tolerance=0)
    assert r0.boundary_f == pytest.approx((boundary_fscore(PRED, GT, 0) + 1.0) / 2)
    d = json.loads(json.dumps(r.to_dict()))
    assert {"miou", "per_class_iou", "mean_image_iou", "n_images", "pixel_accuracy", "boundary_f"} <= set(d)
    assert d["missing_pred"] == ["lonely"] and d["missing_gt"] == ["extra"]


def test_evaluate_masks_infers_classes_and_reports_nan_as_none():
    r = evaluate_masks({"a": PRED}, {"a": GT})
    assert list(r.per_class_iou) == ["class_0", "class_1", "class_2"]
    assert r.miou == pytest.approx((0.25 + 0.5 + 1.0) / 3)
    r4 = evaluate_masks({"a": PRED}, {"a": GT}, 4)
    assert r4.to_dict()["per_class_iou"]["class_3"] is None


def test_evaluate_masks_errors():
    with pytest.raises(ValueError, match="share no image"):
        evaluate_masks({"a": GT}, {"b": GT}, 3)
    with pytest.raises(ValueError, match="image 'a'.*outside"):
        evaluate_masks({"a": GT}, {"a": GT}, 2)
    with pytest.raises(ValueError, match="2 class names given for 3"):
        evaluate_masks({"a": GT}, {"a": GT}, 3, ["a", "b"])


def test_fast_enough_on_large_masks():
    import time

    rng = np.random.default_rng(0)
    gt = {f"i{k}": (rng.random((480, 640)) < 0.3).astype(np.uint8) for k in range(10)}
    pred = {k: np.roll(v, 3, axis=1) for k, v in gt.items()}
    t = time.perf_counter()
    r = evaluate_masks(pred, gt, 2)
    assert time.perf_counter() - t < 5.0 and r.n_images == 10
