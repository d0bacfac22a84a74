"""Simple-to-complex route: automatic pick of simple images, Otsu masks, GFN on the rest."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.data.example import make_example
from core.initial import InitConfig, make_initial_masks
from core.initial.otsu import ignore_band, otsu_mask, pick_simple


def iou(a, b) -> float:
    a, b = a != 0, b != 0
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("otsu")
    ds = make_example(root, n=12, size=80)
    simple = set((root / "simple.txt").read_text().split())
    return ds, simple


def test_picks_plain_backgrounds(example):
    ds, simple = example
    cfg = InitConfig()
    stats, masks = [], []
    for s in ds:
        fg, st = otsu_mask(s.load_image(), cfg)
        stats.append(st)
        masks.append(fg)
    picked = {ds[i].stem for i in pick_simple(stats, cfg)}
    precision = len(picked & simple) / max(len(picked), 1)
    assert precision == 1.0 and len(picked) >= len(simple) - 1, (picked, simple)
    for i, s in enumerate(ds):
        if s.stem in picked:
            assert iou(masks[i], s.load_mask()) > 0.8, s.stem


def test_polarity_from_the_border():
    img = np.full((60, 60, 3), 20, np.uint8)  # dark background
    img[20:40, 15:45] = 230  # bright object
    fg, _ = otsu_mask(img, InitConfig(otsu_feature="gray"))
    assert fg[30, 30] and not fg[2, 2]
    fg2, _ = otsu_mask(255 - img, InitConfig(otsu_feature="gray"))  # dark object on bright background
    assert fg2[30, 30] and not fg2[2, 2]


def test_ignore_band():
    m = np.zeros((20, 20), np.uint8)
    m[5:15, 5:15] = 1
    out = ignore_band(m, 1)
    assert out[10, 10] == 1 and out[0, 0] == 0 and out[5, 10] == 255


def test_otsu_route_end_to_end(example):
    pytest.importorskip("core.training.trainer")
    ds, simple = example
    cfg = InitConfig(
        num_threads=1,
        gfn={"pretrained": False, "aspp_channels": 16, "low_channels": 8},
        train={"epochs": 1, "batch_size": 3, "crop_size": 48},
        predict_flip=False,
        min_train_samples=0,
    )
    res = make_initial_masks(ds, route="otsu", config=cfg)
    assert res.route == "otsu" and res.info["simple_picked_by"] == "auto"
    assert set(res.info["simple_stems"]) <= simple and res.info["n_simple"] == len(res.info["simple_stems"])
    for s in ds:
        m = res.masks[s.stem]
        assert m.shape == s.load_mask().shape
        assert set(np.unique(m).tolist()) <= {0, ds.classmap.index(s.labels[0])}
        if s.stem in res.info["simple_stems"]:
            assert iou(m, s.load_mask()) > 0.8
    user = dataclasses.replace(cfg, simple_stems=tuple(sorted(simple))[:3])
    res2 = make_initial_masks(ds, route="otsu", config=user)
    assert res2.info["simple_picked_by"] == "user" and res2.info["n_simple"] == 3
    with pytest.raises(ValueError, match="nope"):
        make_initial_masks(ds, route="otsu", config=dataclasses.replace(cfg, simple_stems=("nope",)))


def test_small_pseudo_label_sets_are_repeated(monkeypatch):
    pytest.importorskip("core.training.trainer")
    import core.training.trainer as trainer
    from core.initial.gfn_bridge import train_gfn

    seen = {}
    monkeypatch.setattr(trainer, "train", lambda model, pairs, config, **kw: seen.setdefault("n", len(pairs)))
    pair = (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8))
    cfg = InitConfig(min_train_samples=10, gfn={"pretrained": False, "aspp_channels": 8, "low_channels": 8})
    train_gfn([pair] * 3, 2, cfg)
    assert seen["n"] == 12
