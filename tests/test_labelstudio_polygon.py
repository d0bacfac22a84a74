"""``PolygonControl``: masks <-> polygons in percent coordinates."""

import numpy as np
import pytest

from core.classmap import ClassMap
from labelstudio_backend.controls import PolygonControl

CMAP = ClassMap.from_names(["cat", "dog"])


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_one_polygon_per_part_in_percent():
    mask = np.zeros((50, 80), np.uint8)
    mask[10:30, 10:30] = 1
    mask[35:45, 50:75] = 1  # a second part of the same class
    mask[5:15, 60:70] = 2
    ctl = PolygonControl(from_name="poly", to_name="image", labels=("cat", "dog"))
    results = ctl.to_results(mask, CMAP.names, score=0.5)
    assert sorted(r["value"]["polygonlabels"][0] for r in results) == ["cat", "cat", "dog"]
    for r in results:
        assert r["type"] == "polygonlabels" and r["value"]["closed"] is True
        pts = np.array(r["value"]["points"])
        assert pts.shape[1] == 2 and len(pts) >= 3
        assert (pts >= 0).all() and (pts <= 100).all()


def test_round_trip_iou():
    yy, xx = np.mgrid[0:64, 0:96]
    mask = (((yy - 30) / 20.0) ** 2 + ((xx - 45) / 30.0) ** 2 <= 1).astype(np.uint8)
    ctl = PolygonControl(from_name="poly", to_name="image", labels=("cat", "dog"))
    back = ctl.to_mask(ctl.to_results(mask, CMAP.names, 1.0), CMAP)
    assert back.shape == mask.shape
    assert _iou(back == 1, mask == 1) > 0.95


def test_specks_are_dropped():
    mask = np.zeros((20, 20), np.uint8)
    mask[3, 3] = 1
    ctl = PolygonControl(from_name="poly", to_name="image", labels=("cat",))
    assert ctl.to_results(mask, CMAP.names, 1.0) == []


def test_polygon_needs_three_points():
    ctl = PolygonControl(from_name="poly", to_name="image", labels=("cat",))
    bad = {
        "from_name": "poly",
        "type": "polygonlabels",
        "original_width": 10,
        "original_height": 10,
        "value": {"points": [[1, 1], [2, 2]], "polygonlabels": ["cat"]},
    }
    with pytest.raises(ValueError, match="at least 3 points"):
        ctl.to_mask([bad], CMAP)
