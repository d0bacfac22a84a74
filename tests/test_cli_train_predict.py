"""``gfn-autolabel train`` and ``gfn-autolabel predict`` end to end on the built-in example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.data.example import make_example
from core.io.images import read_mask
from core.network import load_checkpoint

FAST = ["--epochs", "1", "--no-pretrained", "--crop-size", "32", "--batch-size", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ex")
    make_example(root, n=6, size=40)
    return root


def test_train_then_predict(example: Path, tmp_path: Path, capsys):
    model = tmp_path / "model.pt"
    rc = main(
        [
            "train",
            "--images",
            str(example / "images"),
            "--masks",
            str(example / "masks"),
            "--out",
            str(model),
            "--classes",
            str(example / "classes.json"),
            *FAST,
        ]
    )
    assert rc == 0 and model.is_file()
    ck = load_checkpoint(model)
    assert ck.classmap.names == ("background", "ellipse", "star", "ring") and ck.config.num_classes == 4
    assert ck.config.pretrained is False and ck.training is not None and ck.training.epochs == 1

    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), "--images", str(example / "images"), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (example / "images").iterdir())
    for p in out.iterdir():
        m = read_mask(p)
        assert m.shape == (40, 40) and m.max() < 4
    capsys.readouterr()

    rc = main(["predict", "--model", str(model), "--images", str(example / "images"), "--out", str(out)])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    rc = main(
        [
            "predict",
            "--model",
            str(model),
            "--images",
            str(example / "images"),
            "--out",
            str(out),
            "--overwrite",
            "--tta",
        ]
    )
    assert rc == 0


def test_train_classes_from_max_index_and_refusals(example: Path, tmp_path: Path, capsys):
    model = tmp_path / "m.pt"
    args = ["train", "--images", str(example / "images"), "--masks", str(example / "masks"), "--out", str(model)]
    assert main([*args, *FAST]) == 0
    assert load_checkpoint(model).classmap.names == ("background", "class_1", "class_2", "class_3")
    capsys.readouterr()
    assert main([*args, *FAST]) == 2 and "already exists" in capsys.readouterr().err
    assert load_checkpoint(model).config.gf_mode == "fast"  # train's default (TRAIN_GF_MODE)
    assert main([*args, *FAST, "--overwrite", "--gf-mode", "stride4"]) == 0
    assert load_checkpoint(model).config.gf_mode == "stride4"
    rc = main(
        [
            "train",
            "--images",
            str(example / "images"),
            "--masks",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "x.pt"),
            *FAST,
        ]
    )
    assert rc == 2 and "nope" in capsys.readouterr().err
    empty = tmp_path / "empty_masks"
    empty.mkdir()
    rc = main(
        ["train", "--images", str(example / "images"), "--masks", str(empty), "--out", str(tmp_path / "x.pt"), *FAST]
    )
    assert rc == 2 and "has a mask" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--backbone", "vgg"])


def test_predict_errors(tmp_path: Path, example: Path, capsys):
    rc = main(
        [
            "predict",
            "--model",
            str(tmp_path / "missing.pt"),
            "--images",
            str(example / "images"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2 and "missing.pt" in capsys.readouterr().err
    assert not np.any([p.exists() for p in [tmp_path / "o"]])
