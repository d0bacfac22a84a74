"""``gfn-autolabel run`` and ``export`` through ``core.cli.main``: outputs, refusals, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main
from core.data.example import make_example
from core.initial.config import InitConfig
from core.refine.config import RunConfig

# pycocotools' own annToMask under numpy 2 (not our code)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

FAST = [
    "--init",
    "grabcut",
    "--rounds",
    "1",
    "--epochs",
    "1",
    "--no-pretrained",
    "--crop-size",
    "48",
    "--max-side",
    "0",
    "--no-progress",
]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("ex")
    make_example(root, n=4, size=48, classes=("ellipse", "star"))
    cfg = root / "fast.json"
    cfg.write_text(
        json.dumps(
            {
                "init_options": {"coarse": "centre", "work_size": 48},
                "batch_size": 4,
                "train.min_steps": 0,
                "network_options": {"aspp_channels": 16, "low_channels": 8},
            }
        )
    )
    return root


@pytest.fixture(scope="module")
def run_dir(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    code = main(
        [
            "run",
            "--images",
            str(example / "images"),
            "--labels",
            str(example / "labels.csv"),
            "--out",
            str(out),
            "--config",
            str(example / "fast.json"),
            "--init-option",
            "grabcut_iters=3",
            *FAST,
        ]
    )
    assert code == 0
    return out


def test_run_prints_the_round_table(run_dir, capsys):
    # output of the fixture's run is captured per test: re-read the result instead
    from core.refine.report import format_table
    from core.refine.runner import load_run

    table = format_table(load_run(run_dir))
    assert "mIoU" in table and "changed" in table and "*" in table
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["train"]["epochs"] == 1
    assert RunConfig.from_dict(cfg).init.options == InitConfig(coarse="centre", work_size=48, grabcut_iters=3)
    assert (run_dir / "final" / "masks").is_dir() and (run_dir / "round_01" / "DONE").is_file()


def test_run_refuses_an_existing_run_without_overwrite(example, run_dir, capsys):
    code = main(
        [
            "run",
            "--images",
            str(example / "images"),
            "--labels",
            str(example / "labels.csv"),
            "--out",
            str(run_dir),
            *FAST,
        ]
    )
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_resume_with_different_settings_names_the_keys(example, run_dir, capsys):
    code = main(
        [
            "run",
            "--images",
            str(example / "images"),
            "--labels",
            str(example / "labels.csv"),
            "--out",
            str(run_dir),
            "--resume",
            *FAST,
        ]
    )  # no --config: batch size etc. differ
    assert code == 2
    err = capsys.readouterr().err
    assert "differing keys" in err and "batch_size" in err


@pytest.mark.parametrize("fmt", ["png", "coco", "voc"])
def test_export(run_dir, fmt, tmp_path, capsys):
    dst = tmp_path / f"out_{fmt}"
    assert main(["export", str(run_dir), "--to", fmt, "--out", str(dst)]) == 0
    assert dst.exists()
    assert main(["export", str(run_dir), "--to", fmt, "--out", str(dst)]) == 2  # exists
    assert "overwrite" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--to", fmt, "--out", str(dst), "--overwrite", "--round", "0"]) == 0


def test_export_default_destination_and_bad_round(run_dir, capsys):
    assert main(["export", str(run_dir), "--to", "coco"]) == 0
    coco = json.loads((run_dir / "export" / "coco.json").read_text())
    assert len(coco["images"]) == 4
    assert main(["export", str(run_dir), "--to", "png", "--round", "5"]) == 2
    assert "no finished round 5" in capsys.readouterr().err


def test_bad_inputs_give_one_clear_line(example, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", "--images", str(empty), "--class", "horse", "--out", str(tmp_path / "r1"), *FAST]) == 2
    assert "holds no images" in capsys.readouterr().err
    # an image the CSV does not label
    csv = tmp_path / "partial.csv"
    lines = (example / "labels.csv").read_text().splitlines()
    csv.write_text("\n".join(lines[:-1]) + "\n")
    missing = lines[-1].split(",")[0]
    assert (
        main(["run", "--images", str(example / "images"), "--labels", str(csv), "--out", str(tmp_path / "r2"), *FAST])
        == 2
    )
    err = capsys.readouterr().err
    assert missing in err and "no image-level label" in err
    # a class the class map (classes.json beside images/) does not know
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + "\n".join(f"{ln.split(',')[0]},zebra" for ln in lines[1:]) + "\n")
    assert (
        main(["run", "--images", str(example / "images"), "--labels", str(bad), "--out", str(tmp_path / "r3"), *FAST])
        == 2
    )
    assert "zebra" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nowhere"), "--to", "png"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_demo_writes_table_coco_overlays_and_plot(tmp_path, monkeypatch, capsys):
    import core.cli.demo_cmd as demo
    from core.refine.config import InitSection, NetworkSection, TrainSection

    def tiny(rounds, seed):  # the real demo settings take minutes; the wiring is what is tested here
        return RunConfig(
            init=InitSection(route="grabcut", options=InitConfig(coarse="centre", work_size=48)),
            rounds=rounds,
            train=TrainSection(epochs=1, batch_size=4, crop_size=48, min_steps=0),
            max_side=None,
            seed=seed,
            network=NetworkSection(pretrained=False, aspp_channels=16, low_channels=8),
        )

    monkeypatch.setattr(demo, "demo_config", tiny)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "3", "--size", "48", "--rounds", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "COCO JSON" in text and "quality plot" in text
    assert (out / "labels_coco.json").is_file() and (out / "quality.png").is_file()
    assert len(list((out / "overlays").glob("*.png"))) == 3
    assert main(["demo", "--out", str(out), "--n", "3", "--size", "48", "--rounds", "1", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_run_options_reach_the_run_config(tmp_path):
    import argparse

    from core.cli.run_cmd import add_parser, config_from_args

    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(
        [
            "--images",
            "i",
            "--class",
            "horse",
            "--out",
            str(tmp_path / "r"),
            "--no-init-postprocess",
            "--crop-size",
            "200",
            "--max-side",
            "200",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.init.postprocess, cfg.train.crop_size, cfg.max_side) == (False, 200, 200)
    assert config_from_args(parser.parse_args(["--images", "i", "--class", "horse", "--out", "r"])).init.postprocess


# --- --overwrite swaps, never deletes first; ground truth checked before round 0 ----------------------


def _snapshot(folder):
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _run_args(example, out, *extra):
    return [
        "run",
        "--images",
        str(example / "images"),
        "--labels",
        str(example / "labels.csv"),
        "--out",
        str(out),
        "--config",
        str(example / "fast.json"),
        *FAST,
        *extra,
    ]


def _bad_gt(example, tmp_path):
    """A copy of the example's masks with class index 7 in one of them (the class map has 3 classes)."""
    import shutil

    import numpy as np
    from PIL import Image

    gt = tmp_path / "gt"
    shutil.copytree(example / "masks", gt)
    bad = sorted(gt.glob("*.png"))[1]
    m = np.array(Image.open(bad))
    m[2, 3] = 7
    Image.fromarray(m).save(bad)
    return gt, bad


def test_failing_overwrite_leaves_the_old_run_byte_identical(example, run_dir, tmp_path, capsys, monkeypatch):
    import shutil

    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old)
    (old / "notes.txt").write_text("mine")
    before = _snapshot(old)
    gt, bad = _bad_gt(example, tmp_path)
    capsys.readouterr()
    assert main(_run_args(example, old, "--gt", str(gt), "--overwrite")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    line = err[-1]
    assert line.startswith("gfn-autolabel run: error: ") and str(bad) in line and "class index 7" in line
    assert _snapshot(old) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left
    # a failure in the middle of the new run (round 1) leaves the old run as well
    import core.refine.refine_round as rr

    def boom(*a, **k):
        raise ValueError("round 1 failed on purpose")

    monkeypatch.setattr(rr, "run_refine_round", boom)
    assert main(_run_args(example, old, "--overwrite")) == 2
    assert "round 1 failed on purpose" in capsys.readouterr().err
    assert _snapshot(old) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_successful_overwrite_swaps_the_new_run_in(example, run_dir, tmp_path, capsys):
    import shutil

    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old)
    (old / "notes.txt").write_text("mine")
    (old / "round_01" / "stale.txt").write_text("from the old run")
    assert main(_run_args(example, old, "--overwrite", "--seed", "1")) == 0
    assert json.loads((old / "config.json").read_text())["seed"] == 1
    assert (old / "notes.txt").read_text() == "mine"  # not the run's own file: kept
    assert not (old / "round_01" / "stale.txt").exists()  # the old rounds are gone, not merged
    assert (old / "round_01" / "DONE").is_file() and (old / "report" / "quality.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert str(old) in capsys.readouterr().out


def test_bad_class_index_in_ground_truth_stops_before_anything_is_written(example, tmp_path, capsys):
    gt, bad = _bad_gt(example, tmp_path)
    out = tmp_path / "new_run"
    assert main(_run_args(example, out, "--gt", str(gt))) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(bad) in line and "class index 7" in line and "3 classes" in line
    assert not out.exists()


def test_resume_and_overwrite_together_are_refused(example, run_dir, capsys):
    assert main(_run_args(example, run_dir, "--overwrite", "--resume")) == 2
    assert "not both" in capsys.readouterr().err


# --- formats from a run ------------------------------------------------------------------------------


def test_export_coco_one_annotation_per_class_scored_from_the_run(run_dir, tmp_path):
    import numpy as np
    from pycocotools.coco import COCO

    from core.refine import rundir
    from core.refine.runner import load_run

    run = load_run(run_dir)
    out = tmp_path / "c.json"
    assert main(["export", str(run_dir), "--to", "coco", "--out", str(out)]) == 0
    coco = COCO(str(out))
    masks = {p.stem: np.array(__import__("PIL.Image").Image.open(p)) for p in run.masks().values()}
    probs_dir = run.round(run.best_round).masks_dir.parent / "probs"
    for img in coco.dataset["images"]:
        stem = Path(img["file_name"]).stem
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        classes = sorted(int(c) for c in np.unique(masks[stem]) if c not in (0, 255))
        assert sorted(a["category_id"] for a in anns) == classes
        probs = rundir.load_probs(probs_dir / f"{stem}.npz")
        for a in anns:
            region = coco.annToMask(a) > 0
            np.testing.assert_array_equal(region, masks[stem] == a["category_id"])
            assert a["score"] == pytest.approx(float(probs[a["category_id"]][region].mean()), abs=1e-4)
    parts = tmp_path / "p.json"
    assert main(["export", str(run_dir), "--to", "coco", "--out", str(parts), "--coco-instances", "parts"]) == 0
    assert len(json.loads(parts.read_text())["annotations"]) >= len(coco.dataset["annotations"])


def test_export_voc_loads_in_torchvision(run_dir, tmp_path, capsys):
    import numpy as np
    from PIL import Image
    from torchvision.datasets import VOCSegmentation

    from core.refine.runner import load_run

    out = tmp_path / "voc"
    assert main(["export", str(run_dir), "--to", "voc", "--out", str(out), "--val-fraction", "0.25"]) == 0
    assert "VOCSegmentation" in capsys.readouterr().out
    masks = load_run(run_dir).masks()
    sizes = {}
    for split in ("train", "val", "trainval"):
        tv = VOCSegmentation(str(out), year="2012", image_set=split)
        sizes[split] = len(tv)
        for i in range(len(tv)):
            _, target = tv[i]
            np.testing.assert_array_equal(np.asarray(target), np.array(Image.open(masks[Path(tv.images[i]).stem])))
    assert sizes == {"train": 3, "val": 1, "trainval": 4}


# --- report --------------------------------------------------------------------------------------------


def test_run_writes_its_report(run_dir):
    rep = json.loads((run_dir / "report" / "report.json").read_text())
    assert rep["with_gt"] and len(rep["rounds"]) == len(list(run_dir.glob("round_*")))
    assert len(list((run_dir / "report" / "overlays").glob("*.png"))) == 4
    assert (run_dir / "report" / "quality.png").stat().st_size > 1000


def test_report_without_ground_truth_plots_the_label_free_signals(run_dir, tmp_path, capsys):
    import shutil

    from PIL import Image

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "report")
    ds = json.loads((run / "dataset.json").read_text())
    gt_dir = Path(ds["samples"][0]["mask"]).parent
    for s in ds["samples"]:
        s["mask"] = None
    (run / "dataset.json").write_text(json.dumps(ds))
    assert main(["report", str(run), "--limit", "2"]) == 0
    assert "label-free signals" in capsys.readouterr().out
    rep = json.loads((run / "report" / "report.json").read_text())
    assert not rep["with_gt"] and len(rep["overlays"]) == 2
    rel = [o["reliability"] for o in rep["overlays"]]
    assert rel == sorted(rel)  # least reliable first
    for row, metrics in zip(rep["rounds"], sorted(run.glob("round_*/metrics.json"))):
        lf = json.loads(metrics.read_text())["label_free"]
        assert row["reliability"] == pytest.approx(lf["reliability"])
        assert 0 <= row["mean_area"] <= 1 and row["kept"] == pytest.approx(lf["train_next"] / 4)
        assert row["collapsed"] in (True, False)
    over = Image.open(next((run / "report" / "overlays").glob("*.png")))
    assert over.size == (48, 48)  # prediction only: no ground-truth panel
    # --gt: the same per-round mIoU the run recorded with that ground truth
    assert main(["report", str(run), "--gt", str(gt_dir)]) == 0
    rep = json.loads((run / "report" / "report.json").read_text())
    assert rep["with_gt"]
    for row, metrics in zip(rep["rounds"], sorted(run_dir.glob("round_*/metrics.json"))):
        assert row["miou"] == pytest.approx(json.loads(metrics.read_text())["gt"]["miou"])
    assert Image.open(next((run / "report" / "overlays").glob("*.png"))).size == (48 * 2 + 4, 48)


def test_report_refusals(run_dir, tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    assert main(["report", str(run_dir), "--out", str(other)]) == 2
    assert "not a report folder" in capsys.readouterr().err and (other / "keep.txt").read_text() == "keep"
    assert main(["report", str(run_dir), "--gt", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(run_dir), "--gt", str(other)]) == 2
    assert "none of the run's 4 images" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2


@pytest.mark.parametrize("fmt", ["png", "coco", "voc"])
def test_failing_export_overwrite_leaves_the_previous_export(run_dir, tmp_path, capsys, fmt):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    dst = tmp_path / f"out_{fmt}"
    assert main(["export", str(run), "--to", fmt, "--out", str(dst)]) == 0
    before = _snapshot(dst) if dst.is_dir() else {"file": dst.read_bytes()}
    bad = sorted((run / "final" / "masks").glob("*.png"))[-1]
    bad.write_bytes(b"not a png")
    capsys.readouterr()
    assert main(["export", str(run), "--to", fmt, "--out", str(dst), "--overwrite"]) == 2
    assert bad.name in capsys.readouterr().err
    assert (_snapshot(dst) if dst.is_dir() else {"file": dst.read_bytes()}) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
