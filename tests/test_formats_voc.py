"""PASCAL VOC output and input: palette PNGs, JPEGImages, ImageSets, labelmap.txt, 255 = ignore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.example import make_example
from core.data.voc_labelmap import read_labelmap, voc_colormap
from core.formats import export_masks, load_masks
from core.formats.voc import split_stems
from core.io.atomic import OutputExistsError
from core.io.images import ImageReadError, read_image, write_image


@pytest.fixture
def example(tmp_path):
    ds = make_example(tmp_path / "ex", n=6, size=40)
    return ds, {s.stem: s.load_mask() for s in ds}


def test_voc_colormap_known_values():
    cm = voc_colormap()
    assert cm.shape == (256, 3)
    assert tuple(cm[1]) == (128, 0, 0) and tuple(cm[15]) == (192, 128, 128) and tuple(cm[255]) == (224, 224, 192)


def test_round_trip_layout_and_ignore(example, tmp_path):
    ds, masks = example
    masks["ring_0002"][0, :] = 255
    root = export_masks(masks, ds, tmp_path / "voc", to="voc")
    assert root == tmp_path / "voc" / "VOCdevkit" / "VOC2012"
    seg = Image.open(root / "SegmentationClass" / "ring_0002.png")
    assert seg.mode == "P" and seg.getpalette()[3:6] == [128, 0, 0]
    assert sorted(p.name for p in (root / "JPEGImages").iterdir()) == sorted(f"{s}.jpg" for s in masks)
    assert Image.open(root / "JPEGImages" / "star_0001.jpg").format == "JPEG"
    sets = root / "ImageSets" / "Segmentation"
    assert sorted(p.name for p in sets.iterdir()) == ["train.txt", "trainval.txt", "val.txt"]
    assert (sets / "trainval.txt").read_text().split() == ds.stems
    star = (root / "ImageSets" / "Main" / "star_trainval.txt").read_text().splitlines()
    assert "star_0001  1" in star and "ring_0002 -1" in star
    assert (root / "labelmap.txt").read_text().splitlines()[1:] == [
        "background:0,0,0::",
        "ellipse:128,0,0::",
        "star:0,128,0::",
        "ring:128,128,0::",
    ]
    for src in (root, tmp_path / "voc"):  # the VOC2012 folder, or the root holding VOCdevkit/
        back, cmap = load_masks(src)
        assert cmap == ds.classmap
        for stem, m in masks.items():
            np.testing.assert_array_equal(back[stem], m)
        assert (back["ring_0002"][0] == 255).all()


def test_split_is_deterministic_disjoint_and_complete():
    stems = [f"img_{i:03d}" for i in range(50)]
    train, val = split_stems(stems, 0.2)
    assert len(val) == 10 and set(train) | set(val) == set(stems) and not set(train) & set(val)
    assert train == [s for s in stems if s in set(train)]  # the input order is kept
    assert split_stems(list(reversed(stems)), 0.2)[1] == list(reversed(val))  # by name, not by position
    more_val = split_stems([*stems, "img_050", "img_051"], 0.2)[1]
    assert len(set(val) - set(more_val)) <= 1  # adding images moves few
    assert split_stems(["a"], 0.2) == (["a"], []) and split_stems(["a", "b"], 0.2)[1] != []
    assert split_stems(stems, 0.0) == (stems, [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_stems(stems, 1.0)


def test_torchvision_loads_every_split(example, tmp_path):
    """``torchvision.datasets.VOCSegmentation`` reads the export unchanged; its targets are our masks."""
    from torchvision.datasets import VOCSegmentation

    ds, masks = example
    masks["ring_0002"][0, :] = 255
    export_masks(masks, ds, tmp_path / "out", to="voc", val_fraction=0.34)
    seen: dict[str, list[str]] = {}
    for split in ("train", "val", "trainval"):
        tv = VOCSegmentation(str(tmp_path / "out"), year="2012", image_set=split)
        seen[split] = [Path(p).stem for p in tv.images]
        for i in range(len(tv)):
            image, target = tv[i]
            stem = seen[split][i]
            np.testing.assert_array_equal(np.asarray(target), masks[stem])
            src = ds.by_stem()[stem].load_image()
            assert image.mode == "RGB" and image.size == (src.shape[1], src.shape[0])
            assert np.abs(np.asarray(image).astype(int) - src.astype(int)).mean() < 15  # JPEG of a noisy texture
    assert len(seen["val"]) == 2 and len(seen["train"]) == 4
    assert sorted(seen["train"] + seen["val"]) == sorted(seen["trainval"]) == sorted(masks)
    assert seen["trainval"] == ds.stems


def test_written_into_a_given_devkit_folder(example, tmp_path):
    ds, masks = example
    inner = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    assert export_masks(masks, ds, inner, to="voc") == inner
    assert not (inner / "VOCdevkit").exists() and (inner / "SegmentationClass").is_dir()


def test_jpeg_sources_are_copied_byte_for_byte(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    write_image(tmp_path / "imgs" / "a.jpg", img)
    from core.data.readers import read_image_folder

    ds = read_image_folder(tmp_path / "imgs", label="thing")
    root = export_masks({"a": np.ones((8, 8), np.uint8)}, ds, tmp_path / "voc", to="voc")
    assert (root / "JPEGImages" / "a.jpg").read_bytes() == (tmp_path / "imgs" / "a.jpg").read_bytes()


def test_missing_images_listed_before_writing(example, tmp_path):
    ds, masks = example
    for stem in ("star_0001", "ring_0002"):
        ds.by_stem()[stem].image_path.unlink()
    with pytest.raises(ImageReadError) as exc:
        export_masks(masks, ds, tmp_path / "voc", to="voc")
    assert "star_0001.png" in str(exc.value) and "ring_0002.png" in str(exc.value)
    assert not (tmp_path / "voc").exists()


def test_needs_dataset_and_matching_sizes(example, tmp_path):
    ds, masks = example
    with pytest.raises(ValueError, match="--images"):
        export_masks(masks, ds.classmap, tmp_path / "voc", to="voc")
    with pytest.raises(ValueError, match="star_0001.*5x5"):
        export_masks({"star_0001": np.zeros((5, 5), np.uint8)}, ds, tmp_path / "voc2", to="voc")


def test_no_overwrite_unless_asked(example, tmp_path):
    ds, masks = example
    export_masks(masks, ds, tmp_path / "voc", to="voc")
    with pytest.raises(OutputExistsError, match="labelmap.txt"):
        export_masks(masks, ds, tmp_path / "voc", to="voc")
    export_masks(masks, ds, tmp_path / "voc", to="voc", overwrite=True)


def test_labelmap_reordered_palette_is_mapped_by_colour(tmp_path):
    """A CVAT-style export whose labelmap lists classes in another order than the palette indices."""
    root = tmp_path / "voc"
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "labelmap.txt").write_text("cat:0,128,0::\nbackground:0,0,0::\ndog:128,0,0::\n")
    idx = np.array([[0, 1], [2, 255]], np.uint8)  # palette index 1 = (128,0,0) = dog, 2 = (0,128,0) = cat
    img = Image.fromarray(idx, mode="P")
    img.putpalette([int(v) for v in voc_colormap().ravel()])
    img.save(root / "SegmentationClass" / "x.png")
    back, cmap = load_masks(root)
    assert cmap.names == ("background", "cat", "dog")
    np.testing.assert_array_equal(back["x"], np.array([[0, 2], [1, 255]]))


@pytest.mark.parametrize(
    "text, match",
    [
        ("horse:1,2::\n", "line 1"),
        ("# c\nhorse:1,2,300::\n", "line 2"),
        ("a:1,2,3::\nb:1,2,3::\n", "share a colour"),
        ("# only comments\n", "no classes"),
    ],
)
def test_bad_labelmap_is_named(tmp_path, text, match):
    (tmp_path / "labelmap.txt").write_text(text)
    with pytest.raises(ValueError, match=f"labelmap.txt.*{match}"):
        read_labelmap(tmp_path / "labelmap.txt")


def test_voc_images_readable(example, tmp_path):
    ds, masks = example
    root = export_masks(masks, ds, tmp_path / "voc", to="voc")
    a = read_image(root / "JPEGImages" / "star_0001.jpg").astype(int)
    b = ds.by_stem()["star_0001"].load_image().astype(int)
    assert a.shape == b.shape and np.abs(a - b).mean() < 15  # JPEG of a noisy texture
