"""A catalogue of bad inputs (issue 12): each gives one named error line and exit status 2 (or a
correct result), without a traceback or a signal, and nothing is written or lost.

Every input is generated here in ``tmp_path``; the CLI runs in-process through ``core.cli.main``
except where a crash would take the test process with it (a subprocess then).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from core.classmap import ClassMap
from core.cli import main
from core.data.coco_segmentation import rle_string_counts
from core.data.example import make_example
from core.data.read_coco import read_coco_dataset
from core.data.readers import load_dataset, read_image_folder
from core.formats import export_masks
from core.io.atomic import OutputPathError, staged_dir
from core.io.images import MAX_IMAGE_PIXELS, ImageReadError, check_images, read_image, read_mask
from core.network import GFNConfig, build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# --- helpers ---------------------------------------------------------------------------------------


def snapshot(*paths: Path) -> dict[str, str | None]:
    """``{path: md5 or None}`` of every file under ``paths`` (``None``: the path does not exist)."""
    out: dict[str, str | None] = {}
    for base in paths:
        if not base.exists():
            out[str(base)] = None
        for p in sorted([base] if base.is_file() else base.rglob("*")):
            out[str(p)] = hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def cli(args: list) -> int:
    """``core.cli.main`` on ``args`` (paths allowed)."""
    return main([str(a) for a in args])


def refused(capsys, args: list[str], *words: str, untouched: tuple[Path, ...] = ()) -> str:
    """Run the CLI; assert exit 2, one ``error:`` line holding ``words``, and ``untouched`` unchanged."""
    before = snapshot(*untouched)
    capsys.readouterr()
    rc = cli(args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"gfn-autolabel {args[0]}: error: "), err
    for w in words:
        assert w in line, line
    assert snapshot(*untouched) == before
    return line


def leftovers(folder: Path) -> list[str]:
    """Temporary files or staging folders left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name)


@pytest.fixture
def ex(tmp_path) -> Path:
    make_example(tmp_path / "ex", n=4, size=40)
    return tmp_path / "ex"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = GFNConfig(pretrained=False, num_classes=2, aspp_channels=16, low_channels=8)
    net = build_model(cfg).eval()
    return save_checkpoint(tmp_path_factory.mktemp("m") / "m.pt", net, cfg, ClassMap.from_names(["thing"]))


def _photos(folder: Path, n: int = 2, size: tuple[int, int] = (40, 48)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _truncated_jpeg(path: Path) -> Path:
    arr = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` (8-bit grey) with no pixel data: cheap to make."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


# --- COCO -------------------------------------------------------------------------------------------


def _coco(tmp_path: Path, seg, *, name: str = "c.json", width: int = 40, height: int = 40, **image) -> Path:
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": width, "height": height, **image}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg}],
    }
    (tmp_path / name).write_text(json.dumps(doc))
    return tmp_path / name


def test_coco_huge_polygon_is_refused_before_pycocotools(tmp_path):
    # pycocotools dies with SIGSEGV on these coordinates: run the CLI in a subprocess to see a signal
    src = _coco(tmp_path, [[1e9, 1e9, -1e9, 5, 3, -1e9]])
    for args in (["convert", src, tmp_path / "out", "--to", "png"], ["evaluate", src, src]):
        p = subprocess.run(
            [sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr and "too far outside" in p.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "seg, words",
    [
        ([[float("nan"), 1, 5, 5, 9, 1]], "finite"),
        ([[float("inf"), 1, 5, 5, 9, 1]], "finite"),
        ([[1, 1, 5, 5, 9]], "even count"),
        ([[1, 1, 5, 5]], "at least 6 numbers"),
        ([[True, 1, 5, 5, 9, 1]], "numbers only"),
        ([[1, 1, 500, 5, 9, 1]], "too far outside"),
        ({"size": [40, 40], "counts": [10, 20]}, "add up to 30 pixels"),
        ({"size": [40, 40], "counts": [1700, -100]}, "must not be negative"),
        ({"size": [40, 40], "counts": "\x7f\x7f~~"}, "not compressed RLE"),
        ({"size": [40, 40], "counts": "ooooooooooo0"}, "longer than 7"),
        ({"size": [40, 40], "counts": "9P"}, "ends inside a number"),
        ({"size": [40, 40], "counts": "=>"}, "add up to"),
        ({"size": ["40", 40], "counts": [1600]}, "[height, width]"),
    ],
)
def test_coco_bad_segmentations_are_named(tmp_path, capsys, seg, words):
    src = _coco(tmp_path, seg)
    out = tmp_path / "out"
    refused(capsys, ["convert", src, out, "--to", "png"], "annotation 1", words, untouched=(out,))
    refused(capsys, ["evaluate", src, src], "annotation 1", words)


def test_coco_structure_problems_are_named(tmp_path, capsys):
    out = tmp_path / "out"
    doc = json.loads(_coco(tmp_path, []).read_text())
    doc.pop("annotations")
    (tmp_path / "noann.json").write_text(json.dumps(doc))
    refused(capsys, ["convert", tmp_path / "noann.json", out, "--to", "png"], "no 'annotations' list", untouched=(out,))
    big = _coco(tmp_path, [[1, 1, 5, 5, 9, 1]], name="big.json", width=1_000_000, height=1_000_000)
    refused(capsys, ["evaluate", big, big], "is too large: 1000000 x 1000000 pixels", f"limit {MAX_IMAGE_PIXELS}")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(capsys, ["convert", tmp_path / "deep.json", out, "--to", "png"], "nested too deeply", untouched=(out,))


@pytest.mark.parametrize("name", ["../secret.png", "a/../../secret.png", "/etc/passwd", "C:\\secret.png", ""])
def test_coco_file_name_outside_the_images_folder(tmp_path, capsys, name):
    images = tmp_path / "data" / "images"
    _photos(images, n=1)
    _photos(tmp_path, n=1)  # tmp_path/p0.png: a picture beside, but outside, the images folder
    src = _coco(tmp_path / "data", [[1, 1, 5, 5, 9, 1]], file_name=name)
    out = tmp_path / "voc"
    refused(capsys, ["convert", src, out, "--to", "voc"], "must be a path inside the images folder", untouched=(out,))
    with pytest.raises(ValueError, match="must be a path inside"):
        read_coco_dataset(src, images)


def test_rle_string_counts_match_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        m = np.asfortranarray((rng.random((h, w)) < rng.random()).astype(np.uint8))
        counts = rle_string_counts(mask_utils.encode(m)["counts"].decode("ascii"))
        assert sum(counts) == h * w and min(counts) >= 0
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
        np.testing.assert_array_equal(flat.reshape(w, h).T, m)


# --- VOC and CSV ------------------------------------------------------------------------------------


def test_voc_root_missing_some_masks(ex, tmp_path, capsys, caplog):
    voc = tmp_path / "voc"
    assert cli(["convert", ex / "masks", voc, "--to", "voc", "--images", ex / "images"]) == 0
    seg = voc / "VOCdevkit" / "VOC2012" / "SegmentationClass"  # the outer root is read through VOCdevkit/
    (seg / "star_0001.png").unlink()
    out = tmp_path / "png"
    refused(capsys, ["convert", voc, out, "--to", "png"], "1 image(s) listed", "star_0001", untouched=(out,))
    with pytest.raises(ValueError, match="star_0001"):
        load_dataset(voc)
    got = load_dataset(voc, skip_bad=True)  # asked to go on: the image stays, without ground truth
    assert not got.by_stem()["star_0001"].has_mask and "star_0001" in caplog.text
    for p in seg.iterdir():  # an unannotated VOC set is no error
        p.unlink()
    assert not any(s.has_mask for s in load_dataset(voc))


def test_csv_row_naming_a_missing_file_names_that_file(ex, tmp_path, capsys):
    csv = tmp_path / "labels.csv"
    csv.write_text((ex / "labels.csv").read_text() + "zz_missing.png,ellipse\n")
    out = tmp_path / "run"
    line = refused(
        capsys,
        ["run", "--images", ex / "images", "--labels", csv, "--out", out, "--no-progress"],
        "zz_missing.png",
        "not in the folder",
        untouched=(out,),
    )
    assert "ellipse_0000" not in line
    with pytest.raises(ImageReadError, match="zz_missing.png"):
        read_image_folder(ex / "images", labels=csv)
    shutil.copy(csv, ex / "labels.csv")
    with pytest.raises(ImageReadError, match="zz_missing.png: file not found"):
        load_dataset(ex)


# --- pictures ---------------------------------------------------------------------------------------


def test_huge_image_header_is_refused(tmp_path, capsys, model):
    folder = _photos(tmp_path / "in", n=1)
    bomb = _png_header(folder / "bomb.png", 20000, 20000)
    words = f"is too large: 20000 x 20000 pixels, limit {MAX_IMAGE_PIXELS}"
    for fn in (read_image, read_mask, lambda p: check_images([p])):
        with pytest.raises(ImageReadError, match=words):
            fn(bomb)
    out = tmp_path / "out"
    args = ["predict", "--model", model, "--images", folder, "--out", out]
    refused(capsys, args, "bomb.png", words, untouched=(out,))


def test_huge_jpeg_decodes_at_reduced_scale(tmp_path, capsys, model):
    folder = tmp_path / "in"
    folder.mkdir()
    yy, xx = np.mgrid[0:1200, 0:1600]
    Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)).save(folder / "big.jpg")
    small = read_image(folder / "big.jpg", max_side=64)
    assert small.shape == (150, 200, 3)  # 1/8 DCT scale: the smallest whose longer side is >= 64
    assert read_image(folder / "big.jpg").shape == (1200, 1600, 3)
    assert cli(["predict", "--model", model, "--images", folder, "--out", tmp_path / "o", "--max-side", "32"]) == 0
    assert read_mask(tmp_path / "o" / "big.png").shape == (1200, 1600)


def test_sixteen_bit_png_read_by_its_real_range(tmp_path):
    ramp = np.linspace(0, 4095, 64).astype(np.uint16).reshape(8, 8)  # 12-bit data in a 16-bit PNG
    Image.fromarray(ramp).save(tmp_path / "g.png")
    grey = read_image(tmp_path / "g.png")[..., 0]
    assert grey.max() == 255 and grey.min() == 0 and 120 <= grey.reshape(-1)[32] <= 135
    bgr = np.zeros((4, 5, 3), np.uint16)
    bgr[..., 2] = 4095  # red at full 12-bit scale
    bgr[0, 0] = (0, 2048, 0)
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    rgb = read_image(tmp_path / "c.png")
    assert tuple(rgb[1, 1]) == (255, 0, 0) and tuple(rgb[0, 0]) == (0, 128, 0)
    bgra = np.dstack([bgr, np.full((4, 5), 65535, np.uint16)])
    bgra[1, 1, 3] = 0  # transparent: white
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    rgba = read_image(tmp_path / "a.png")
    assert tuple(rgba[1, 2]) == (255, 0, 0) and tuple(rgba[1, 1]) == (255, 255, 255)


def test_truncated_jpeg_fails_the_precheck(tmp_path, capsys, model):
    folder = _photos(tmp_path / "in", n=2)
    bad = _truncated_jpeg(folder / "zz_trunc.jpg")
    with pytest.raises(ImageReadError, match="zz_trunc.jpg.*truncated"):
        check_images([folder / "p0.png", bad])
    with pytest.raises(ImageReadError, match="zz_trunc.jpg"):
        read_image_folder(folder, label="thing")
    out = tmp_path / "out"
    refused(capsys, ["predict", "--model", model, "--images", folder, "--out", out], "zz_trunc.jpg", untouched=(out,))
    run_out = tmp_path / "run"
    refused(
        capsys,
        ["run", "--images", folder, "--class", "thing", "--out", run_out, "--no-progress"],
        "zz_trunc.jpg",
        untouched=(run_out,),
    )


# --- predict: never over the inputs, nothing half-written --------------------------------------------


def test_predict_refuses_to_write_over_its_images(tmp_path, capsys, model):
    folder = _photos(tmp_path / "in")
    args = ["predict", "--model", model, "--images", folder, "--overwrite"]
    refused(capsys, [*args, "--out", folder], "is the --images folder", untouched=(folder,))
    os.symlink(folder, tmp_path / "link")
    refused(capsys, [*args, "--out", tmp_path / "link"], "is the --images folder", untouched=(folder,))
    refused(capsys, [*args, "--out", folder / "p0.png"], "is a file", untouched=(folder,))
    refused(capsys, [*args, "--out", folder / "masks"], "is inside the --images folder", untouched=(folder,))
    assert not (folder / "masks").exists()
    refused(capsys, [*args, "--out", tmp_path], "is inside the --out folder", untouched=(tmp_path,))
    pngs = [p for p in tmp_path.iterdir() if p.suffix == ".png"]
    assert pngs == []  # no mask landed beside the images' folder either
    refused(capsys, [*args, "--max-side", "4", "--out", tmp_path / "o"], "--max-side", untouched=(tmp_path / "o",))


def test_predict_failure_leaves_the_previous_masks(tmp_path, capsys, model, monkeypatch):
    folder = _photos(tmp_path / "in", n=3)
    out = tmp_path / "out"
    args = ["predict", "--model", model, "--images", folder, "--out", out, "--overwrite"]
    assert cli(args) == 0
    (out / "notes.txt").write_text("mine")
    tp = importlib.import_module("core.training.predict")  # the package re-exports a function of that name
    real = tp.predict

    def failing(*a, **k):
        gen = real(*a, **k)
        yield next(gen)
        raise ValueError("the network failed on the second image")

    monkeypatch.setattr(tp, "predict", failing)
    refused(capsys, args, "the network failed", untouched=(out,))
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(tp, "predict", real)
    assert cli(args) == 0  # the swap keeps files it did not rebuild
    assert (out / "notes.txt").read_text() == "mine" and leftovers(tmp_path) == []


# --- export / convert: output path, inputs, nothing half-written ------------------------------------


def test_output_that_is_a_file(ex, tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me")
    for to in ("voc", "png"):
        refused(
            capsys,
            ["convert", ex / "masks", afile, "--to", to, "--images", ex / "images"],
            "is a file",
            untouched=(afile,),
        )
    refused(capsys, ["convert", ex / "masks", afile / "x.json", "--to", "coco"], "is a file", untouched=(afile,))
    ds = load_dataset(ex)
    import core.refine.runner as runner

    fake = SimpleNamespace(rounds=[], masks=lambda r: {p.stem: p for p in (ex / "masks").glob("*.png")}, dataset=ds)
    monkeypatch.setattr(runner, "load_run", lambda d: fake)
    for to in ("voc", "png"):
        refused(capsys, ["export", tmp_path, "--to", to, "--out", afile], "is a file", untouched=(afile,))
    with pytest.raises(OutputPathError, match="is a file"):
        export_masks({"x": np.zeros((4, 4), np.uint8)}, ds.classmap, afile, to="png")


def test_convert_failure_leaves_the_previous_output(ex, tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(ex / "masks", src)
    shutil.copy(ex / "classes.json", src / "classes.json")
    for to in ("png", "voc"):
        out = tmp_path / f"out_{to}"
        assert cli(["convert", src, out, "--to", to, "--images", ex / "images"]) == 0
    last = sorted(src.glob("*.png"))[-1]
    m = read_mask(last)
    m[0, 0] = 9  # not a class of classes.json
    Image.fromarray(m).save(last)
    for to in ("png", "voc"):
        out = tmp_path / f"out_{to}"
        args = ["convert", src, out, "--to", to, "--images", ex / "images", "--overwrite"]
        refused(capsys, args, "unknown class index(es) [9]", untouched=(out,))
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(last)  # and a mask of the wrong size
    out = tmp_path / "new_voc"
    args = ["convert", src, out, "--to", "voc", "--images", ex / "images"]
    refused(capsys, args, "is 30x30 (WxH) but image", untouched=(out,))
    assert leftovers(tmp_path) == []


def test_convert_refuses_to_write_over_its_inputs(ex, tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(ex / "masks", src)
    refused(capsys, ["convert", src, src, "--to", "png", "--overwrite"], "would overwrite the input", untouched=(src,))
    voc = tmp_path / "voc"
    assert cli(["convert", src, voc, "--to", "voc", "--images", ex / "images"]) == 0
    refused(capsys, ["convert", voc, voc, "--to", "voc", "--overwrite"], "would overwrite the input", untouched=(voc,))
    jpegs = voc / "VOCdevkit" / "VOC2012" / "JPEGImages"
    args = ["convert", src, voc, "--to", "voc", "--images", jpegs, "--overwrite"]
    refused(capsys, args, "would overwrite the input", untouched=(voc,))
    coco = tmp_path / "c.json"
    assert cli(["convert", src, coco, "--to", "coco"]) == 0
    refused(capsys, ["convert", coco, coco, "--to", "coco", "--overwrite"], "would overwrite", untouched=(coco,))


def test_empty_and_unreadable_sources(ex, tmp_path, capsys, model):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    refused(capsys, ["evaluate", empty, ex / "masks"], "no masks found")
    refused(capsys, ["convert", empty, out, "--to", "png"], "no masks found", untouched=(out,))
    refused(capsys, ["predict", "--model", model, "--images", empty, "--out", out], "holds no images", untouched=(out,))
    gt = tmp_path / "gt"
    shutil.copytree(ex / "masks", gt)
    sorted(gt.glob("*.png"))[0].write_bytes(b"not a png")
    refused(capsys, ["evaluate", ex / "masks", gt], "ellipse_0000.png", "not a readable mask")
    refused(capsys, ["predict", "--model", tmp_path / "nope.pt", "--images", ex / "images", "--out", out], "nope.pt")


def test_staged_dir_swaps_in_only_on_success(tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    (dst / "keep.txt").write_text("keep")
    with pytest.raises(RuntimeError), staged_dir(dst) as tmp:
        (tmp / "old.txt").write_text("new")
        raise RuntimeError("boom")
    assert (dst / "old.txt").read_text() == "old" and leftovers(tmp_path) == []
    with staged_dir(dst) as tmp:
        (tmp / "old.txt").write_text("new")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.txt").write_text("x")
    assert (dst / "old.txt").read_text() == "new" and (dst / "keep.txt").read_text() == "keep"
    assert (dst / "sub" / "x.txt").read_text() == "x" and leftovers(tmp_path) == []
    with staged_dir(tmp_path / "fresh") as tmp:
        (tmp / "a.txt").write_text("a")
    assert (tmp_path / "fresh" / "a.txt").read_text() == "a" and leftovers(tmp_path) == []


def test_run_folder_replaced_only_on_success(tmp_path):
    from core.refine import rundir

    run = tmp_path / "run"
    (run / "round_00").mkdir(parents=True)
    (run / "round_00" / "DONE").write_text("done\n")
    (run / "fixed").mkdir()
    (run / "fixed" / "a.png").write_text("old fixed mask")
    (run / "notes.txt").write_text("mine")
    before = snapshot(run)
    with pytest.raises(RuntimeError), rundir.replacing(run) as stage:
        (stage / "config.json").write_text("new")
        raise RuntimeError("the new run failed")
    assert snapshot(run) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    (tmp_path / ".run.overwrite").mkdir()  # left by a killed process: removed, not reused
    (tmp_path / ".run.overwrite" / "junk").write_text("x")
    with rundir.replacing(run) as stage:
        assert list(stage.iterdir()) == []
        (stage / "config.json").write_text("new")
        (stage / "round_00").mkdir()
    assert (run / "config.json").read_text() == "new" and not (run / "round_00" / "DONE").exists()
    assert not (run / "fixed").exists()  # the old run's own files never leak into the new one
    assert (run / "notes.txt").read_text() == "mine"  # the user's file is carried over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with rundir.replacing(tmp_path / "fresh") as stage:  # nothing to replace: simply moved in
        (stage / "config.json").write_text("x")
    assert (tmp_path / "fresh" / "config.json").is_file()
