"""core.data.readers: every dataset layout, detected; bad files reported by name in one error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from core.classmap import ClassMap
from core.data.checks import MaskMismatchError
from core.data.dataset import Sample
from core.data.example import make_example
from core.data.readers import (
    detect_layout,
    load_dataset,
    read_class_folders,
    read_coco_dataset,
    read_csv_dataset,
    read_image_folder,
    read_voc_dataset,
)
from core.formats import export_masks
from core.io.images import ImageReadError, write_image, write_mask


@pytest.fixture
def example(tmp_path):
    ds = make_example(tmp_path / "ex", n=6, size=40)
    return tmp_path / "ex", ds


def _masks(ds):
    return {s.stem: s.load_mask() for s in ds}


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_layout_detected_with_masks_and_classes(example):
    root, ds = example
    assert detect_layout(root) == ("csv", root / "labels.csv")
    got = load_dataset(root)
    assert got.stems == ds.stems and got.classmap == ds.classmap
    assert all(s.has_mask for s in got)
    assert got[0].labels == ds[0].labels
    np.testing.assert_array_equal(got[1].load_mask(), ds[1].load_mask())


def test_csv_multiple_labels_and_no_classes_json(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for n in ("a.png", "b.png"):
        write_image(tmp_path / n, img)
    (tmp_path / "labels.csv").write_text("Filename,Label,extra\na.png,dog;cat,x\nb.png,cat,y\nb.png,bird,z\n")
    ds = read_csv_dataset(tmp_path / "labels.csv")
    assert ds.classmap.names == ("background", "bird", "cat", "dog")
    assert ds.by_stem()["a"].labels == ("dog", "cat")
    assert ds.by_stem()["b"].labels == ("cat", "bird")
    assert not any(s.has_mask for s in ds)


def test_csv_without_header_is_refused(example):
    root, _ = example
    (root / "labels.csv").write_text("ellipse_0000.png,ellipse\n")
    with pytest.raises(ValueError, match="labels.csv.*header"):
        load_dataset(root)


def test_csv_short_row_names_the_line(example):
    root, _ = example
    (root / "labels.csv").write_text("filename,label\nellipse_0000.png\n")
    with pytest.raises(ValueError, match="line 2"):
        load_dataset(root)


def test_csv_unknown_class_lists_files(example):
    root, _ = example
    text = (root / "labels.csv").read_text().replace("star_0001.png,star", "star_0001.png,starfish")
    (root / "labels.csv").write_text(text)
    with pytest.raises(ValueError, match=r"starfish.*star_0001\.png"):
        load_dataset(root)


def test_missing_and_corrupt_images_in_one_error(example):
    root, _ = example
    (root / "images" / "star_0001.png").unlink()
    (root / "images" / "ring_0002.png").write_bytes(b"broken")
    with pytest.raises(ImageReadError) as exc:
        load_dataset(root)
    msg = str(exc.value)
    assert "2 image(s)" in msg and "star_0001.png" in msg and "ring_0002.png" in msg


def test_skip_bad_drops_with_warning(example, caplog):
    root, _ = example
    (root / "images" / "star_0001.png").unlink()
    ds = load_dataset(root, skip_bad=True)
    assert len(ds) == 5 and "star_0001" not in ds.stems
    assert "star_0001.png" in caplog.text


def test_mask_of_wrong_size_is_named(example, caplog):
    root, _ = example
    write_mask(root / "masks" / "ring_0002.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(MaskMismatchError, match=r"ring_0002\.png.*12x10"):
        load_dataset(root)
    ds = load_dataset(root, skip_bad=True)
    assert not ds.by_stem()["ring_0002"].has_mask and ds.by_stem()["star_0001"].has_mask
    assert "ring_0002" in caplog.text


def test_masks_for_some_images_only(example):
    root, _ = example
    (root / "masks" / "star_0001.png").unlink()
    ds = load_dataset(root)
    assert len(ds) == 6 and len(ds.with_gt()) == 5


# --- folders -------------------------------------------------------------------------------------


def test_class_folders_with_clashing_names(tmp_path):
    img = np.full((6, 6, 3), 90, np.uint8)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        write_image(tmp_path / cls / "001.jpg", img)
    write_image(tmp_path / "dog" / "002.jpg", img)
    (tmp_path / "masks").mkdir()
    write_mask(tmp_path / "masks" / "dog_002.png", np.ones((6, 6), np.uint8) * 2)
    assert detect_layout(tmp_path)[0] == "class_folders"
    ds = load_dataset(tmp_path)
    assert ds.classmap.names == ("background", "cat", "dog")
    assert ds.stems == ["cat_001", "dog_001", "dog_002"]
    assert [s.labels for s in ds] == [("cat",), ("dog",), ("dog",)]
    assert [s.has_mask for s in ds] == [False, False, True]


def test_class_folders_unknown_class_against_classes_json(tmp_path):
    (tmp_path / "cat").mkdir()
    write_image(tmp_path / "cat" / "a.png", np.zeros((4, 4, 3), np.uint8))
    ClassMap.from_names(["dog"]).save(tmp_path / "classes.json")
    with pytest.raises(ValueError, match="cat"):
        read_class_folders(tmp_path)


def test_image_folder_with_one_label(example):
    root, _ds = example
    (root / "labels.csv").unlink()
    (root / "classes.json").unlink()
    assert detect_layout(root) == ("image_folder", root / "images")
    got = load_dataset(root, label="ring")
    assert got.classmap.names == ("background", "ring")
    assert all(s.labels == ("ring",) for s in got) and all(s.has_mask for s in got)


def test_image_folder_labels_mapping(example):
    root, _ = example
    got = read_image_folder(
        root / "images",
        labels={"ring_0002": "ring", "star_0001.png": ["star"]},
        classmap=ClassMap.from_names(["ring", "star"]),
    )
    by = got.by_stem()
    assert by["ring_0002"].labels == ("ring",) and by["star_0001"].labels == ("star",)
    assert by["ellipse_0000"].labels == ()


def test_unknown_layout_and_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no dataset found"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="x.txt"):
        load_dataset(tmp_path / "x.txt")


# --- COCO ----------------------------------------------------------------------------------------


def test_coco_dataset_round_trip(example):
    root, ds = example
    out = export_masks(_masks(ds), ds, root / "annotations.json", to="coco")
    (root / "labels.csv").unlink()
    assert detect_layout(root) == ("coco", out)
    got = load_dataset(root)
    assert got.stems == ds.stems and got.classmap == ds.classmap
    assert [s.labels for s in got] == [s.labels for s in ds]
    for a, b in zip(got, ds):
        np.testing.assert_array_equal(a.load_mask(), b.load_mask())


def _coco_doc(file_name="a.png", **extra):
    doc = {
        "images": [{"id": 7, "file_name": file_name, "width": 6, "height": 4}],
        "categories": [{"id": 3, "name": "dog"}, {"id": 9, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 9}],
    }
    doc.update(extra)
    return doc


def test_coco_labels_without_segmentation_and_renumbered_ids(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint8))
    (tmp_path / "c.json").write_text(json.dumps(_coco_doc()))
    ds = read_coco_dataset(tmp_path / "c.json")
    assert ds.classmap.names == ("background", "dog", "cat")
    assert ds[0].labels == ("cat",) and not ds[0].has_mask


def test_coco_polygon_and_rle_segmentations(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint8))
    doc = _coco_doc()
    doc["annotations"] = [
        {"id": 1, "image_id": 7, "category_id": 9, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
        {"id": 2, "image_id": 7, "category_id": 3, "segmentation": {"size": [4, 6], "counts": [20, 4]}},
    ]
    (tmp_path / "c.json").write_text(json.dumps(doc))
    m = read_coco_dataset(tmp_path / "c.json")[0].load_mask()
    assert m.shape == (4, 6)
    assert (m[:2, :2] == 2).all() and (m[:, 5] == 1).all() and m[3, 0] == 0


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ('{"images": []}', "not a COCO file"),
        (
            json.dumps(_coco_doc(annotations=[{"id": 5, "image_id": 7, "category_id": 4}])),
            "annotation 5.*category_id 4",
        ),
        (json.dumps(_coco_doc(annotations=[{"id": 6, "image_id": 99, "category_id": 3}])), "annotation 6.*image_id 99"),
        (
            json.dumps(
                _coco_doc(
                    annotations=[
                        {"id": 8, "image_id": 7, "category_id": 3, "segmentation": {"size": [5, 5], "counts": "0"}}
                    ]
                )
            ),
            "annotation 8.*RLE size",
        ),
        (
            json.dumps(_coco_doc(annotations=[{"id": 9, "image_id": 7, "category_id": 3, "segmentation": [[1, 2]]}])),
            "annotation 9.*polygon",
        ),
    ],
)
def test_coco_malformed_files_are_named(tmp_path, text, match):
    write_image(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint8))
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(ValueError, match=f"bad.json.*{match}" if "annotation" in match else match):
        load_dataset(tmp_path / "bad.json")


def test_coco_missing_image_and_wrong_size(tmp_path):
    doc = _coco_doc()
    doc["images"].append({"id": 8, "file_name": "gone.png", "width": 6, "height": 4})
    (tmp_path / "c.json").write_text(json.dumps(doc))
    write_image(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ImageReadError, match="gone.png"):
        read_coco_dataset(tmp_path / "c.json")
    doc["images"].pop()
    doc["annotations"][0]["segmentation"] = [[0, 0, 2, 0, 2, 2]]
    (tmp_path / "c.json").write_text(json.dumps(doc))
    write_image(tmp_path / "a.png", np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(MaskMismatchError, match="a.png"):
        read_coco_dataset(tmp_path / "c.json")


# --- VOC -----------------------------------------------------------------------------------------


def test_voc_dataset_round_trip_with_ignore(example):
    root, ds = example
    masks = _masks(ds)
    masks["ring_0002"][:3, :] = 255
    voc = export_masks(masks, ds, root.parent / "voc", to="voc")
    assert detect_layout(voc) == ("voc", voc)
    got = load_dataset(voc)
    assert got.stems == ds.stems and got.classmap == ds.classmap
    assert [s.labels for s in got] == [s.labels for s in ds]
    m = got.by_stem()["ring_0002"].load_mask()
    np.testing.assert_array_equal(m, masks["ring_0002"])
    assert (m[:3] == 255).all()


def test_voc_rgb_masks_with_labelmap(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    write_image(root / "JPEGImages" / "x.jpg", np.zeros((4, 4, 3), np.uint8))
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nhorse:10,20,30::\nbackground:0,0,0::\n")
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)
    rgb[3, 3] = (224, 224, 192)
    Image.fromarray(rgb).save(root / "SegmentationClass" / "x.png")
    ds = read_voc_dataset(root)
    assert ds.classmap.names == ("background", "horse")
    m = ds[0].load_mask()
    assert m[0, 0] == 1 and m[3, 3] == 255 and m[1, 1] == 0 and ds[0].labels == ("horse",)
    rgb[1, 1] = (1, 2, 3)
    Image.fromarray(rgb).save(root / "SegmentationClass" / "x.png")
    with pytest.raises(ValueError, match=r"x\.png.*\(1, 2, 3\)"):
        read_voc_dataset(root)


def test_voc_without_labelmap_uses_voc_classes(example):
    root, ds = example
    voc = export_masks(_masks(ds), ds, root.parent / "voc", to="voc")
    (voc / "labelmap.txt").unlink()
    shutil.rmtree(voc / "ImageSets" / "Main")
    got = load_dataset(voc)
    assert got.classmap.num_classes == 21 and got.classmap.names[13] == "horse"
    assert got.by_stem()["star_0001"].labels == ("bicycle",)  # index 2 in the VOC names


def test_coco_with_given_class_map_reindexes(example):
    root, ds = example
    out = export_masks(_masks(ds), ds, root / "annotations.json", to="coco")
    order = ClassMap.from_names(["ring", "ellipse", "star", "extra"])
    got = read_coco_dataset(out, root / "images", classes=order)
    assert got.classmap == order
    m, ref = got.by_stem()["ring_0002"].load_mask(), ds.by_stem()["ring_0002"].load_mask()
    np.testing.assert_array_equal(m, np.where(ref == 3, 1, 0))
    with pytest.raises(ValueError, match="annotations.json.*'star'"):
        read_coco_dataset(out, root / "images", classes=ClassMap.from_names(["ring", "ellipse"]))


def test_require_mask_returns_the_mask_or_names_the_sample(example):
    _, ds = example
    s = ds[0]
    np.testing.assert_array_equal(s.require_mask(), s.load_mask())
    bare = Sample(stem="bare", image_path=s.image_path)
    with pytest.raises(ValueError, match="sample 'bare' has no ground-truth mask"):
        bare.require_mask()
