"""Plain PNG mask folders, and how load_masks finds its source."""

from __future__ import annotations

import numpy as np
import pytest

from core.classmap import ClassMap
from core.formats import detect_mask_source, export_masks, load_masks
from core.io.atomic import OutputExistsError
from core.io.images import write_image, write_mask

CMAP = ClassMap.from_names(["cat", "dog"])


def _masks():
    rng = np.random.default_rng(1)
    return {f"im{i}": rng.integers(0, 3, (5, 7), dtype=np.uint8) for i in range(3)}


def test_round_trip_with_classes(tmp_path):
    masks = _masks()
    masks["im0"][0, 0] = 255
    out = export_masks(masks, CMAP, tmp_path / "m", to="png")
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "im0.png", "im1.png", "im2.png"]
    back, cmap = load_masks(out)
    assert cmap == CMAP and sorted(back) == sorted(masks)
    for s, m in masks.items():
        np.testing.assert_array_equal(back[s], m)
    assert dict(back).keys() == back.keys()


def test_accepts_paths_and_bool(tmp_path):
    write_mask(tmp_path / "src.png", np.array([[0, 2]], np.uint8))
    out = export_masks({"a": tmp_path / "src.png", "b": np.array([[True, False]])}, CMAP, tmp_path / "m", to="png")
    back, _ = load_masks(out)
    np.testing.assert_array_equal(back["a"], [[0, 2]])
    np.testing.assert_array_equal(back["b"], [[1, 0]])


def test_unknown_class_index_names_the_mask(tmp_path):
    with pytest.raises(ValueError, match="'im9'.*unknown class index.*\\[3\\]"):
        export_masks({"im9": np.array([[0, 3]], np.uint8)}, CMAP, tmp_path / "m", to="png")
    with pytest.raises(ValueError, match="'f'.*integer"):
        export_masks({"f": np.zeros((2, 2), np.float32)}, CMAP, tmp_path / "m", to="png")


def test_no_overwrite_unless_asked(tmp_path):
    export_masks(_masks(), CMAP, tmp_path / "m", to="png")
    with pytest.raises(OutputExistsError, match="m/"):
        export_masks(_masks(), CMAP, tmp_path / "m", to="png")
    export_masks(_masks(), CMAP, tmp_path / "m", to="png", overwrite=True)


def test_classes_unknown_and_from_parent(tmp_path):
    (tmp_path / "set" / "masks").mkdir(parents=True)
    write_mask(tmp_path / "set" / "masks" / "a.png", np.zeros((2, 2), np.uint8))
    assert load_masks(tmp_path / "set" / "masks")[1] is None
    CMAP.save(tmp_path / "set" / "classes.json")
    assert load_masks(tmp_path / "set" / "masks")[1] == CMAP


def test_detect_sources(tmp_path):
    (tmp_path / "run" / "final" / "masks").mkdir(parents=True)
    write_mask(tmp_path / "run" / "final" / "masks" / "a.png", np.zeros((2, 2), np.uint8))
    assert detect_mask_source(tmp_path / "run") == ("png", tmp_path / "run" / "final" / "masks")
    (tmp_path / "c.json").write_text("{}")
    assert detect_mask_source(tmp_path / "c.json") == ("coco", tmp_path / "c.json")
    with pytest.raises(FileNotFoundError, match="nothing"):
        detect_mask_source(tmp_path / "nothing")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="x.txt"):
        detect_mask_source(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no masks found"):
        detect_mask_source(tmp_path / "empty")


def test_corrupt_and_size_mismatch_named(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "bad.png").write_bytes(b"nope")
    back, _ = load_masks(tmp_path / "m")
    with pytest.raises(ValueError, match="bad.png"):
        back["bad"]
    write_mask(tmp_path / "m" / "bad.png", np.zeros((3, 3), np.uint8))
    write_image(tmp_path / "imgs" / "bad.jpg", np.zeros((4, 3, 3), np.uint8))
    back, _ = load_masks(tmp_path / "m", images=tmp_path / "imgs")
    with pytest.raises(ValueError, match=r"bad\.png is 3x3.*bad\.jpg is 3x4"):
        back["bad"]
