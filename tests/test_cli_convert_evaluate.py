"""``gfn-autolabel convert`` and ``evaluate`` through core.cli.main, plus one real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.classmap import ClassMap
from core.cli import main
from core.data.example import make_example
from core.formats import load_masks
from core.io.images import read_mask, write_mask

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def ex(tmp_path):
    make_example(tmp_path / "ex", n=6, size=40)
    return tmp_path / "ex"


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_convert_png_to_coco_and_back_to_voc_and_png(ex, tmp_path, capsys):
    coco = tmp_path / "out.json"
    assert main(["convert", str(ex / "masks"), str(coco), "--to", "coco", "--images", str(ex / "images")]) == 0
    assert "wrote 6 masks" in capsys.readouterr().out
    from pycocotools.coco import COCO

    assert len(COCO(str(coco)).getImgIds()) == 6
    voc = tmp_path / "voc"
    assert main(["convert", str(coco), str(voc), "--to", "voc", "--images", str(ex / "images")]) == 0
    png = tmp_path / "png"
    assert main(["convert", str(voc), str(png), "--to", "png"]) == 0
    back, cmap = load_masks(png)
    assert cmap.foreground == ("ellipse", "star", "ring")
    for p in (ex / "masks").glob("*.png"):
        np.testing.assert_array_equal(back[p.stem], read_mask(p))


def test_convert_polygons_and_overwrite(ex, tmp_path, capsys):
    out = tmp_path / "p.json"
    args = ["convert", str(ex / "masks"), str(out), "--to", "coco", "--polygons", "--images", str(ex / "images")]
    assert main(args) == 0
    assert isinstance(json.loads(out.read_text())["annotations"][0]["segmentation"], list)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "p.json already exists" in err and "--overwrite" in err
    assert main([*args, "--overwrite"]) == 0


def test_convert_voc_needs_images(ex, tmp_path, capsys):
    assert main(["convert", str(ex / "masks"), str(tmp_path / "voc"), "--to", "voc"]) == 2
    assert "--images" in capsys.readouterr().err


def test_convert_with_classes_file(ex, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(ex / "masks", bare)
    ClassMap.from_names(["e", "s", "r"]).save(tmp_path / "c.json")
    args = ["convert", str(bare), str(tmp_path / "o.json"), "--to", "coco", "--classes", str(tmp_path / "c.json")]
    assert main(args) == 0
    cats = json.loads((tmp_path / "o.json").read_text())["categories"]
    assert [c["name"] for c in cats] == ["e", "s", "r"]


def test_convert_reports_missing_pictures(ex, tmp_path, capsys):
    (ex / "images" / "star_0001.png").unlink()
    code = main(["convert", str(ex / "masks"), str(tmp_path / "v"), "--to", "voc", "--images", str(ex / "images")])
    assert code == 2 and "star_0001" in capsys.readouterr().err


def test_evaluate_table_and_json(ex, capsys):
    assert main(["evaluate", str(ex / "masks"), str(ex / "masks")]) == 0
    out = capsys.readouterr().out
    assert "ellipse" in out and "mIoU" in out and "1.0000" in out
    assert main(["evaluate", str(ex / "masks"), str(ex / "masks"), "--json"]) == 0
    d = _json_out(capsys)
    assert d["miou"] == 1.0 and d["mean_image_iou"] == 1.0 and d["n_images"] == 6
    assert set(d["per_class_iou"]) == {"background", "ellipse", "star", "ring"}
    assert d["pixel_accuracy"] == 1.0 and d["boundary_f"] == 1.0


def test_evaluate_partial_overlap_and_none(ex, tmp_path, capsys, caplog):
    pred = tmp_path / "pred"
    shutil.copytree(ex / "masks", pred)
    (pred / "star_0001.png").unlink()
    m = read_mask(pred / "ring_0002.png")
    write_mask(pred / "ring_0002.png", np.zeros_like(m), overwrite=True)
    assert main(["evaluate", str(pred), str(ex / "masks"), "--json"]) == 0
    d = _json_out(capsys)
    assert d["n_images"] == 5 and d["missing_pred"] == ["star_0001"]
    assert d["per_image_iou"]["ring_0002"] == 0.0 and d["per_image_iou"]["ring_0005"] == 1.0
    assert 0 < d["per_class_iou"]["ring"] < 1 and d["miou"] < 1
    assert "star_0001" in caplog.text
    other = tmp_path / "other"
    other.mkdir()
    write_mask(other / "zzz.png", np.zeros((4, 4), np.uint8))
    assert main(["evaluate", str(other), str(ex / "masks")]) == 2
    assert "share no image" in capsys.readouterr().err


def test_evaluate_remaps_prediction_classes_by_name(ex, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    lut = np.array([0, 3, 1, 2], np.uint8)  # ellipse->3, star->1, ring->2 under the order below
    for p in (ex / "masks").glob("*.png"):
        write_mask(pred / p.name, lut[read_mask(p)])
    ClassMap.from_names(["star", "ring", "ellipse"]).save(pred / "classes.json")
    assert main(["evaluate", str(pred), str(ex / "masks"), "--json"]) == 0
    assert _json_out(capsys)["miou"] == 1.0


def test_evaluate_coco_against_voc(ex, tmp_path, capsys):
    imgs = ["--images", str(ex / "images")]
    assert main(["convert", str(ex / "masks"), str(tmp_path / "a.json"), "--to", "coco", *imgs]) == 0
    assert main(["convert", str(ex / "masks"), str(tmp_path / "voc"), "--to", "voc", *imgs]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "a.json"), str(tmp_path / "voc"), "--json"]) == 0
    assert _json_out(capsys)["miou"] == 1.0


def test_subprocess_python_m_core(ex):
    proc = subprocess.run(
        [sys.executable, "-m", "core", "evaluate", str(ex / "masks"), str(ex / "masks"), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["miou"] == 1.0 and d["n_images"] == 6
