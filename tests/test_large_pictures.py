"""A run never decodes a picture larger than its ``post.image_max_side`` at full size (issue 12): the
engine works at the bounded size, masks are written at the picture's own size, ground truth is scored
there, and pictures at or below the bound are labelled byte for byte as without it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from core.data.dataset import Dataset, Sample
from core.data.example import make_example
from core.initial.config import InitConfig
from core.io import images
from core.io.images import read_image, read_mask, write_mask
from core.io.working import DEFAULT_IMAGE_MAX_SIDE, WorkingImage, to_size, working_hw
from core.refine import rundir
from core.refine.config import InitSection, NetworkSection, PostSection, RunConfig, StopSection, TrainSection
from core.refine.runner import run_autolabel
from core.training.data import capped_pairs

BIG_HW = (1800, 2400)
CAP = 256
WORK_HW = working_hw(BIG_HW, CAP)  # (192, 256)
DECODED = (300, 225)
"""(width, height) the JPEG decoder gives at 1/8, the smallest DCT scale whose longer side is >= CAP."""

SMALL = RunConfig(
    init=InitSection(route="grabcut", options=InitConfig(coarse="centre", work_size=48)),
    rounds=1,
    train=TrainSection(epochs=1, batch_size=4, crop_size=64, min_steps=0),
    max_side=64,
    num_threads=2,
    network=NetworkSection(pretrained=False, aspp_channels=16, low_channels=8),
    stop=StopSection(collapse_guard=False),
    post=PostSection(workers=1, image_max_side=CAP),
)
"""A tiny run (seconds on CPU; its network learns little, the tests are about sizes). ``post.workers=1``
keeps every decode in this process, where the spy sees it."""


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, Path]:
    """A 2400 x 1800 JPEG of an ellipse on a striped background, and its ground-truth mask (class 1)."""
    folder = tmp_path_factory.mktemp("big")
    h, w = BIG_HW
    fg = np.zeros(BIG_HW, np.uint8)
    cv2.ellipse(fg, (w // 2, h // 2), (w // 4, h // 3), 0, 0, 360, 1, -1)
    image = np.empty((h, w, 3), np.uint8)
    image[...] = np.random.default_rng(0).integers(20, 90, (1, w, 3), dtype=np.uint8)
    image[fg == 1] = (200, 60, 40)
    path = folder / "big.jpg"
    Image.fromarray(image).save(path, quality=90)
    return path, write_mask(folder / "big_mask.png", fg)


@pytest.fixture()
def decoded(monkeypatch) -> list[tuple[str, tuple[int, int]]]:
    """``(file name, (width, height) decoded)`` of every picture decoded through ``core.io.images``."""
    seen: list[tuple[str, tuple[int, int]]] = []
    real = images.to_rgb

    def spy(path, img):
        out = real(path, img)
        seen.append((Path(path).name, img.size))
        return out

    monkeypatch.setattr(images, "to_rgb", spy)
    return seen


@pytest.fixture(scope="module")
def pictures(big, tmp_path_factory) -> Dataset:
    """Four small example pictures (48 px) and one 2400 x 1800 JPEG, all with ground truth."""
    small = make_example(tmp_path_factory.mktemp("pictures"), n=4, size=48, classes=("ellipse", "star"))
    return small.with_samples([*small, Sample(stem="big", image_path=big[0], labels=("ellipse",), mask_path=big[1])])


@pytest.fixture(scope="module")
def uncapped(pictures, tmp_path_factory):
    """The same run with no bound (every picture at its own size, as before ``image_max_side``)."""
    return run_autolabel(
        pictures, tmp_path_factory.mktemp("runs") / "uncapped", SMALL.replace({"post.image_max_side": None})
    )


def _bytes(folder: Path, suffix: str = ".png") -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob(f"*{suffix}"))}


def test_working_size_and_mask_round_trip():
    assert working_hw((9000, 12000), 2048) == (1536, 2048)
    assert working_hw((2048, 100), 2048) == (2048, 100) and working_hw((50, 60), None) == (50, 60)
    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        big = (h + int(rng.integers(0, 300)), w + int(rng.integers(0, 300)))
        mask = rng.integers(0, 4, (h, w)).astype(np.uint8)
        up = to_size(mask, big)
        assert up.shape == big and set(np.unique(up)) <= set(np.unique(mask))
        assert np.array_equal(to_size(up, (h, w)), mask), "shrinking an enlarged mask gives it back exactly"
    same = rng.integers(0, 2, (5, 7)).astype(np.uint8)
    assert to_size(same, (5, 7)) is same


def test_a_working_image_is_decoded_at_reduced_size(big, tmp_path, decoded):
    path, _ = big
    work = read_image(WorkingImage(path, CAP))
    assert work.shape == (*WORK_HW, 3)
    assert decoded == [("big.jpg", DECODED)], "DCT scaling to 1/8, the smallest still >= the bound"
    full = read_image(path)
    reference = cv2.resize(full, WORK_HW[::-1], interpolation=cv2.INTER_AREA)
    assert work.dtype == np.uint8 and np.abs(work.astype(int) - reference).mean() < 4, "the whole picture, smaller"
    small = tmp_path / "small.png"
    Image.fromarray(full[:40, :30]).save(small)
    assert np.array_equal(read_image(WorkingImage(small, CAP)), read_image(small)), "at or below: read as before"
    with pytest.raises(ValueError, match="either in the WorkingImage or to read_image"):
        read_image(WorkingImage(path, CAP), max_side=64)


def test_working_size_follows_exif_orientation(tmp_path):
    raw = np.zeros((800, 1200, 3), np.uint8)
    raw[:, :600] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: 800 wide, 1200 high
    path = tmp_path / "turned.jpg"
    Image.fromarray(raw).save(path, exif=exif)
    assert images.image_size(path) == (1200, 800)
    assert read_image(WorkingImage(path, 256)).shape == (*working_hw((1200, 800), 256), 3) == (256, 171, 3)
    sample = Sample(stem="turned", image_path=path).capped(256)
    assert sample.image_hw == (256, 171) and sample.original_hw == (1200, 800)


def test_capped_pairs_bring_labels_to_the_working_size(big, tmp_path):
    path, mask_path = big
    label = read_mask(mask_path)
    small = (tmp_path / "s.png", np.zeros((20, 30), np.uint8))
    repeated = (path, label)
    out = capped_pairs([small, repeated, repeated], CAP)
    assert isinstance(out[1][0], WorkingImage) and out[1][1].shape == WORK_HW
    assert out[1] is out[2], "a repeated pair stays one object (decoded once by preload)"
    assert out[0][1] is small[1] and Path(out[0][0]) == small[0], "a small picture's label is left as it is"
    assert capped_pairs([small], None) == [small]


def test_a_run_never_decodes_the_large_picture_at_full_size(pictures, uncapped, tmp_path, decoded):
    from core.refine.report import write_report

    result = run_autolabel(pictures, tmp_path / "capped", SMALL)
    big_decodes = [size for name, size in decoded if name == "big.jpg"]
    assert big_decodes, "the large picture was read"
    assert all(max(size) < max(BIG_HW) for size in big_decodes), f"decoded at full size: {big_decodes}"
    assert set(big_decodes) == {DECODED}
    for info in result.rounds:
        masks = info.masks_dir
        assert read_mask(masks / "big.png").shape == BIG_HW, f"round {info.index}: mask at the picture's size"
        assert rundir.load_probs(masks.parent / "probs" / "big.npz").shape[1:] == WORK_HW
        for s in pictures:
            assert read_mask(masks / f"{s.stem}.png").shape == images.image_size(s.image_path)
        gt = info.metrics["gt"]
        assert gt is not None and "big" in gt["per_image_iou"], "the large picture is scored (at its own size)"
    assert read_mask(result.final_masks_dir / "big.png").shape == BIG_HW
    # the pictures at or below the bound: round 0 byte for byte as without the bound
    small = [f"{s.stem}.png" for s in pictures if s.stem != "big"]
    ours, theirs = _bytes(result.rounds[0].masks_dir), _bytes(uncapped.rounds[0].masks_dir)
    assert {k: ours[k] for k in small} == {k: theirs[k] for k in small}
    # the large picture's mask is the same object in both runs, found at two sizes
    a, b = read_mask(result.rounds[0].masks_dir / "big.png"), read_mask(uncapped.rounds[0].masks_dir / "big.png")
    assert np.mean(a == b) > 0.97
    decoded.clear()
    write_report(result.run_dir)
    assert all(max(size) < max(BIG_HW) for name, size in decoded if name == "big.jpg")


def test_pictures_at_or_below_the_bound_are_labelled_as_without_it(pictures, tmp_path):
    small = pictures.with_samples([s for s in pictures if s.stem != "big"])
    config = SMALL.replace({"rounds": 2})
    bounded = run_autolabel(small, tmp_path / "bounded", config)
    free = run_autolabel(small, tmp_path / "free", config.replace({"post.image_max_side": None}))
    for a, b in zip(bounded.rounds, free.rounds, strict=True):
        assert _bytes(a.masks_dir) == _bytes(b.masks_dir), f"round {a.index}: masks differ"
        assert _bytes(a.masks_dir.parent / "probs", ".npz") == _bytes(b.masks_dir.parent / "probs", ".npz")


def test_a_run_from_before_the_bound_resumes(pictures, uncapped, tmp_path):
    """A run folder written before ``post.image_max_side`` existed (pictures at full size; its config.json
    has no such key) loads with the default bound and resumes: the later round reads the earlier
    round's probabilities at its own working size and still writes masks at the pictures' size."""
    run = tmp_path / "old"
    shutil.copytree(uncapped.run_dir, run)
    saved = json.loads((run / rundir.CONFIG).read_text())
    del saved["post"]["image_max_side"]
    (run / rundir.CONFIG).write_text(json.dumps(saved))
    config = SMALL.replace({"post.image_max_side": DEFAULT_IMAGE_MAX_SIDE, "rounds": 2})
    assert RunConfig.from_dict(saved) == config.replace({"rounds": 1})
    resumed = run_autolabel(pictures, run, config, resume=True)
    assert [r.index for r in resumed.rounds] == [0, 1, 2]
    last = resumed.round(2).masks_dir
    assert read_mask(last / "big.png").shape == BIG_HW
    assert rundir.load_probs(last.parent / "probs" / "big.npz").shape[1:] == working_hw(BIG_HW, DEFAULT_IMAGE_MAX_SIDE)


def test_labeller_labels_a_large_picture_at_its_size(pictures, uncapped, tmp_path, decoded):
    from core.refine.apply import Labeller

    lab = Labeller.from_run(uncapped.run_dir, image_max_side=CAP)
    big = next(s for s in pictures if s.stem == "big")
    (mask, score, probs), (small_mask, _, _) = lab.label_many([big.image_path, np.zeros((600, 800, 3), np.uint8)])
    assert mask.shape == BIG_HW and probs.shape[1:] == WORK_HW and 0.0 <= score <= 1.0
    assert small_mask.shape == (600, 800)
    assert [size for name, size in decoded if name == "big.jpg"] == [DECODED]
    with pytest.raises(ValueError, match="image_max_side must be None .* or an integer >= 16, got 8"):
        Labeller.from_run(uncapped.run_dir, image_max_side=8)


def test_the_bound_is_a_checked_setting():
    assert RunConfig().post.image_max_side == DEFAULT_IMAGE_MAX_SIDE == 2048
    with pytest.raises(ValueError, match=r"post.image_max_side must be None .* integer >= 16, got 8"):
        RunConfig().replace({"post.image_max_side": 8})
    with pytest.raises(ValueError, match=r"post.image_max_side must be None .* got 'big'"):
        RunConfig.from_dict({"post": {"image_max_side": "big"}})
