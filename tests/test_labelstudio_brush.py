"""``BrushControl``: masks <-> Label Studio brush RLE (label-studio-sdk's codec)."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from core.classmap import ClassMap
from labelstudio_backend.controls import BrushControl
from labelstudio_backend.controls.brush import region_to_rle, rle_to_region

CMAP = ClassMap.from_names(["cat", "dog"])


def _mask() -> np.ndarray:
    m = np.zeros((37, 53), np.uint8)  # odd, non-square: catches transposed sizes
    m[5:20, 3:30] = 1
    m[25:35, 40:50] = 2
    m[0, 0] = 255  # ignore: never emitted
    return m


def test_results_one_per_class_with_sizes_and_labels():
    ctl = BrushControl(from_name="tag", to_name="image", labels=("cat", "dog"))
    results = ctl.to_results(_mask(), CMAP.names, score=0.75)
    assert [r["value"]["brushlabels"] for r in results] == [["cat"], ["dog"]]
    for r in results:
        assert r["type"] == "brushlabels" and r["from_name"] == "tag" and r["to_name"] == "image"
        assert (r["original_width"], r["original_height"]) == (53, 37)
        assert r["value"]["format"] == "rle" and r["score"] == 0.75
        assert all(isinstance(v, int) for v in r["value"]["rle"])


def test_rle_decodes_with_the_sdk_to_the_same_mask():
    mask = _mask()
    ctl = BrushControl(from_name="tag", to_name="image", labels=("cat", "dog"))
    for r in ctl.to_results(mask, CMAP.names, score=1.0):
        alpha = decode_rle(r["value"]["rle"]).reshape(37, 53, 4)[:, :, 3]
        idx = CMAP.index(r["value"]["brushlabels"][0])
        assert np.array_equal(alpha == 255, mask == idx)


def test_round_trip_through_to_mask():
    mask = _mask()
    ctl = BrushControl(from_name="tag", to_name="image", labels=("cat", "dog"))
    back = ctl.to_mask(ctl.to_results(mask, CMAP.names, 1.0), CMAP)
    expected = mask.copy()
    expected[expected == 255] = 0
    assert np.array_equal(back, expected)


def test_results_of_other_controls_are_ignored():
    ctl = BrushControl(from_name="tag", to_name="image", labels=("cat",))
    assert ctl.to_mask([{"from_name": "other", "type": "brushlabels", "value": {}}], CMAP) is None


def test_unknown_label_names_the_fix():
    ctl = BrushControl(from_name="tag", to_name="image", labels=("cat",))
    r = ctl.result(
        {"format": "rle", "rle": region_to_rle(np.ones((4, 4), bool)), "brushlabels": ["bird"]},
        width=4,
        height=4,
        score=1.0,
    )
    with pytest.raises(ValueError, match="'bird'.*add <Label"):
        ctl.to_mask([r], CMAP)


def test_rle_of_wrong_size_is_refused():
    rle = region_to_rle(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="original_width x original_height"):
        rle_to_region(rle, width=5, height=4)


def test_bad_mask_is_refused():
    ctl = BrushControl(from_name="tag", to_name="image", labels=("cat",))
    with pytest.raises(ValueError, match="uint8"):
        ctl.to_results(np.zeros((4, 4), np.int64), CMAP.names, 1.0)
