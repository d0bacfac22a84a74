"""COCO output and input: pycocotools reads our files back exactly (RLE) or nearly (polygons)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from pycocotools.coco import COCO

from core.classmap import ClassMap
from core.data.example import make_example
from core.data.polygons import mask_to_polygons, polygons_to_mask
from core.formats import export_masks, load_masks
from core.io.atomic import OutputExistsError

# pycocotools' own annToMask under numpy 2 (not our code)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_ex")
    ds = make_example(root, n=12, size=64)
    return ds, {s.stem: s.load_mask() for s in ds}


def _via_pycocotools(path):
    """``{file_name: mask}`` painted from ``annToMask`` of every annotation, as a user would."""
    coco = COCO(str(path))
    out = {}
    for img in coco.dataset["images"]:
        m = np.zeros((img["height"], img["width"]), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            m[coco.annToMask(ann) > 0] = ann["category_id"]
        out[img["file_name"]] = m
    return coco, out


def _iou(a, b):
    return ((a == b) & (b > 0)).sum() / max(((a > 0) | (b > 0)).sum(), 1)


def test_rle_exact_through_pycocotools(example, tmp_path):
    ds, masks = example
    out = export_masks(masks, ds, tmp_path / "a.json", to="coco")
    coco, back = _via_pycocotools(out)
    assert set(back) == {f"{s}.png" for s in masks}
    for stem, m in masks.items():
        np.testing.assert_array_equal(back[f"{stem}.png"], m)
    img = coco.dataset["images"][0]
    assert {"id", "file_name", "width", "height"} <= set(img) and (img["width"], img["height"]) == (64, 64)
    assert [c["id"] for c in coco.dataset["categories"]] == [1, 2, 3]
    assert [c["name"] for c in coco.dataset["categories"]] == list(ds.classmap.foreground)
    ann = coco.dataset["annotations"][0]
    assert isinstance(ann["segmentation"]["counts"], str) and ann["iscrowd"] == 0
    assert len(ann["bbox"]) == 4 and ann["area"] > 0


def test_polygons_through_pycocotools_keep_holes_and_parts(example, tmp_path):
    ds, masks = example
    out = export_masks(masks, ds, tmp_path / "p.json", to="coco", polygons=True)
    coco, back = _via_pycocotools(out)
    for stem, m in masks.items():
        assert _iou(back[f"{stem}.png"], m) >= 0.98, stem
    from scipy.ndimage import binary_fill_holes

    ring = masks["ring_0002"] > 0
    hole = binary_fill_holes(ring) & ~ring
    assert hole.sum() > 20
    assert (back["ring_0002.png"][hole] == 0).all()
    assert all(isinstance(a["segmentation"], list) for a in coco.dataset["annotations"])


def _parts(mask: np.ndarray, cls: int) -> int:
    import cv2

    return cv2.connectedComponents((mask == cls).astype(np.uint8), connectivity=8)[0] - 1


def test_one_annotation_per_image_and_class_by_default(example, tmp_path):
    ds, masks = example
    out = export_masks(masks, ds, tmp_path / "a.json", to="coco")
    doc = json.loads(out.read_text())
    several = 0
    for img in doc["images"]:
        stem = img["file_name"][:-4]
        anns = [a for a in doc["annotations"] if a["image_id"] == img["id"]]
        classes = sorted(int(c) for c in np.unique(masks[stem]) if c not in (0, 255))
        assert sorted(a["category_id"] for a in anns) == classes  # one each
        assert {ds.classmap.names[a["category_id"]] for a in anns} == set(ds.by_stem()[stem].labels)
        for a in anns:
            assert a["area"] == int((masks[stem] == a["category_id"]).sum())
            several += _parts(masks[stem], a["category_id"]) > 1
        assert all("score" not in a for a in anns)  # nothing to score from
    assert several >= 1  # some annotation covers several parts: the case that differs from "parts"
    assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])


def test_parts_option_gives_one_annotation_per_connected_part(example, tmp_path):
    ds, masks = example
    out = export_masks(masks, ds, tmp_path / "a.json", to="coco", instances="parts")
    coco, back = _via_pycocotools(out)
    doc = coco.dataset
    for img in doc["images"]:
        stem = img["file_name"][:-4]
        anns = [a for a in doc["annotations"] if a["image_id"] == img["id"]]
        classes = [int(c) for c in np.unique(masks[stem]) if c not in (0, 255)]
        assert len(anns) == sum(_parts(masks[stem], c) for c in classes)
        np.testing.assert_array_equal(back[img["file_name"]], masks[stem])
    assert max(len(coco.getAnnIds(imgIds=i["id"])) for i in doc["images"]) >= 2
    with pytest.raises(ValueError, match="instances"):
        export_masks(masks, ds, tmp_path / "b.json", to="coco", instances="blobs")
    with pytest.raises(ValueError, match="COCO output only"):
        export_masks(masks, ds, tmp_path / "png", to="png", instances="parts")


def test_score_is_the_mean_probability_of_the_class_over_its_pixels(example, tmp_path):
    ds, masks = example
    stems = list(masks)[:3]
    rng = np.random.default_rng(0)
    probs = {}
    for s in stems:
        p = rng.random((ds.classmap.num_classes, *masks[s].shape)).astype(np.float32)
        probs[s] = p / p.sum(axis=0, keepdims=True)
    subset = {s: masks[s] for s in stems}
    loaders = {s: (lambda s=s: probs[s]) for s in stems[1:]}  # a loader or an array, both accepted
    loaders[stems[0]] = probs[stems[0]]
    reliability = {s: 0.25 for s in stems}
    for instances in ("class", "parts"):
        out = export_masks(
            subset,
            ds.with_samples([ds.by_stem()[s] for s in stems]),
            tmp_path / f"{instances}.json",
            to="coco",
            instances=instances,
            probs=loaders,
            image_scores=reliability,
        )
        coco = COCO(str(out))
        for ann in coco.dataset["annotations"]:
            stem = coco.imgs[ann["image_id"]]["file_name"][:-4]
            region = coco.annToMask(ann) > 0
            want = float(probs[stem][ann["category_id"]][region].mean())
            assert 0.0 <= ann["score"] <= 1.0 and ann["score"] == pytest.approx(want, abs=1e-4)
    out = export_masks(subset, ds.classmap, tmp_path / "rel.json", to="coco", image_scores=reliability)
    assert {a["score"] for a in json.loads(out.read_text())["annotations"]} == {0.25}  # fallback: reliability
    with pytest.raises(ValueError, match="probs must be"):
        export_masks(subset, ds.classmap, tmp_path / "bad.json", to="coco", probs={stems[0]: probs[stems[0]][:, :5]})
    assert not (tmp_path / "bad.json").exists()


def test_load_masks_round_trip(example, tmp_path):
    ds, masks = example
    for polygons in (False, True):
        out = export_masks(masks, ds, tmp_path / f"{polygons}.json", to="coco", polygons=polygons)
        back, cmap = load_masks(out)
        assert cmap == ds.classmap and list(back) == list(masks)
        for stem in masks:
            np.testing.assert_array_equal(back[stem], masks[stem])


@pytest.mark.parametrize("seed", range(6))
def test_polygons_exact_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 40, 2)
    m = rng.random((h, w)) < 0.5  # many parts, holes, diagonal contacts, one-pixel lines
    back = polygons_to_mask(mask_to_polygons(m), h, w)
    np.testing.assert_array_equal(back, m)


def test_hole_with_island_inside():
    m = np.zeros((20, 20), bool)
    m[2:18, 2:18] = True
    m[5:15, 5:15] = False
    m[8:12, 8:12] = True
    polys = mask_to_polygons(m)
    assert len(polys) == 2  # the frame (with its hole) and the island
    np.testing.assert_array_equal(polygons_to_mask(polys, 20, 20), m)


def test_tolerance_simplifies(example):
    _, masks = example
    m = masks["star_0001"] > 0
    exact, simple = mask_to_polygons(m), mask_to_polygons(m, tolerance=1.0)
    assert sum(map(len, simple)) < sum(map(len, exact))
    back = polygons_to_mask(simple, *m.shape)
    assert (back & m).sum() / (back | m).sum() > 0.9


def test_empty_mask_has_no_polygon():
    assert mask_to_polygons(np.zeros((4, 4), bool)) == []
    with pytest.raises(ValueError, match="2-D"):
        mask_to_polygons(np.zeros((2, 2, 2), bool))


def test_ignore_written_as_background_with_warning(tmp_path, caplog):
    cmap = ClassMap.from_names(["a"])
    m = np.array([[1, 255], [0, 1]], np.uint8)
    with caplog.at_level(logging.WARNING):
        out = export_masks({"x": m}, cmap, tmp_path / "o.json", to="coco")
    assert "255" in caplog.text
    back, _ = load_masks(out)
    np.testing.assert_array_equal(back["x"], np.array([[1, 0], [0, 1]]))
    assert json.loads(out.read_text())["images"][0]["file_name"] == "x.jpg"


def test_bad_masks_are_named(example, tmp_path):
    ds, masks = example
    cmap = ds.classmap
    with pytest.raises(ValueError, match="'bad'.*unknown class index.*\\[7\\]"):
        export_masks({"bad": np.full((3, 3), 7, np.uint8)}, cmap, tmp_path / "o.json", to="coco")
    with pytest.raises(ValueError, match="'flat'.*shape"):
        export_masks({"flat": np.zeros(9, np.uint8)}, cmap, tmp_path / "o.json", to="coco")
    with pytest.raises(ValueError, match="no image.*stranger"):
        export_masks({"stranger": masks["star_0001"]}, ds, tmp_path / "o.json", to="coco")
    wrong = {"star_0001": np.zeros((10, 10), np.uint8)}
    with pytest.raises(ValueError, match="star_0001.*10x10"):
        export_masks(wrong, ds, tmp_path / "o.json", to="coco")
    assert not (tmp_path / "o.json").exists()


def test_no_overwrite_unless_asked(example, tmp_path):
    ds, masks = example
    out = export_masks(masks, ds, tmp_path, to="coco")
    assert out == tmp_path / "annotations.json"
    with pytest.raises(OutputExistsError, match="annotations.json"):
        export_masks(masks, ds, tmp_path, to="coco")
    export_masks(masks, ds, tmp_path, to="coco", overwrite=True)


def test_unknown_format_and_polygons_elsewhere(example, tmp_path):
    ds, masks = example
    with pytest.raises(ValueError, match="unknown mask format 'tiff'"):
        export_masks(masks, ds, tmp_path, to="tiff")
    with pytest.raises(ValueError, match="polygons"):
        export_masks(masks, ds, tmp_path, to="png", polygons=True)
