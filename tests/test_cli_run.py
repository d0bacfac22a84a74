"""``gfn-autolabel run`` and ``export`` through ``core.cli.main``: outputs, refusals, clear errors."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from core.data.example import make_example
from core.initial.config import InitConfig
from core.refine.config import RunConfig

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
