"""Human-corrected masks as fixed labels (``core.refine.fixed``): checks, weighting, and a tiny run in
which they are never re-labelled, never filtered out, trained on ``train.fixed_weight`` times, kept on
resume, and are the run's final masks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from core.data.example import make_example
from core.initial.config import InitConfig
from core.io.images import image_size, read_mask, write_mask
from core.refine import filters, fixed, rundir
from core.refine import records as rec
from core.refine.config import FilterSection, InitSection, NetworkSection, RunConfig, StopSection, TrainSection
from core.refine.runner import load_run, run_autolabel

CLASSES = ("ellipse", "star")

TINY = RunConfig(
    init=InitSection(route="grabcut", options=InitConfig(coarse="centre", work_size=48)),
    rounds=2,
    train=TrainSection(epochs=1, batch_size=4, crop_size=48, min_steps=0),
    max_side=None,
    num_threads=2,
    network=NetworkSection(pretrained=False, aspp_channels=16, low_channels=8),
    stop=StopSection(collapse_guard=False),
)
"""As ``tests/test_refine_runner.py``: seconds per run, a random-init narrow GFN (mechanics only)."""


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("ex"), n=6, size=48, classes=CLASSES)


def _human(example, stem: str) -> np.ndarray:
    """A 'corrected' mask unlike anything the engine would draw: a rectangle of the image's class."""
    s = example.by_stem()[stem]
    h, w = image_size(s.image_path)
    m = np.zeros((h, w), np.uint8)
    m[h // 5 : h // 2, w // 6 : (5 * w) // 6] = example.classmap.index(s.labels[0])
    return m


# ------------------------------------------------------------------------------------------- checks
def test_train_fixed_weight_is_a_typed_setting():
    assert TrainSection().fixed_weight == 3
    assert RunConfig.from_dict({"train.fixed_weight": 2}).train.fixed_weight == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="train.fixed_weight"):
            TrainSection(fixed_weight=bad)
    # the rounds' own setting does not leak into the trainer's TrainConfig
    tc = TrainSection(fixed_weight=5).train_config(seed=0, max_side=None, num_threads=None, crop_size=48)
    assert not hasattr(tc, "fixed_weight")


def test_bad_fixed_masks_are_refused_naming_the_image(example):
    stem = example.stems[0]
    own = example.classmap.index(example.by_stem()[stem].labels[0])
    other = next(i for i in range(1, example.classmap.num_classes) if i != own)
    good = _human(example, stem)
    assert fixed.check_all({stem: good}, example)[stem] is not None
    with pytest.raises(ValueError, match=rf"{stem}.*WxH"):
        fixed.check_all({stem: good[:-2]}, example)
    wrong_class = good.copy()
    wrong_class[0, 0] = other
    with pytest.raises(ValueError, match=rf"{stem}.*class index\(es\) \[{other}\]"):
        fixed.check_all({stem: wrong_class}, example)
    with pytest.raises(ValueError, match="uint8"):
        fixed.check_all({stem: good.astype(np.int32)}, example)
    with pytest.raises(ValueError, match="not in the dataset"):
        fixed.check_all({"no_such_image": good}, example)
    ignore = good.copy()
    ignore[-1, :] = 255  # 255 = ignore is allowed
    assert (fixed.check_all({stem: ignore}, example)[stem] == ignore).all()


def test_read_folder_names_unknown_masks(example, tmp_path):
    stem = example.stems[1]
    write_mask(tmp_path / f"{stem}.png", _human(example, stem))
    assert fixed.read_folder(tmp_path, example) == {stem: tmp_path / f"{stem}.png"}
    write_mask(tmp_path / "stranger.png", _human(example, stem))
    with pytest.raises(ValueError, match=r"stranger"):
        fixed.read_folder(tmp_path, example)
    with pytest.raises(ValueError, match="does not exist"):
        fixed.read_folder(tmp_path / "nope", example)


def test_weighted_pairs_replace_and_repeat(example, tmp_path):
    stem = example.stems[2]
    path = tmp_path / f"{stem}.png"
    write_mask(path, _human(example, stem))
    pairs = [(s.image_path, np.full(image_size(s.image_path), 255, np.uint8)) for s in example]
    out = fixed.weighted_pairs(pairs, example, {stem: path}, 3)
    img = example.by_stem()[stem].image_path
    mine = [lab for p, lab in out if p == img]
    assert len(mine) == 3 and all((lab == _human(example, stem)).all() for lab in mine)
    assert len(out) == len(pairs) - 1 + 3
    assert fixed.weighted_pairs(pairs, example, {}, 3) == pairs
    with pytest.raises(ValueError, match="fixed_weight"):
        fixed.weighted_pairs(pairs, example, {stem: path}, 0)


def test_override_keeps_fixed_masks_through_the_filters(example, tmp_path):
    """A fixed mask far outside the area range and with the lowest reliability is still trained on."""
    round_path = tmp_path / "run" / rundir.round_name(0)
    stems = example.stems
    records = {
        s: rec.ImageRecord(score=0.9, changed=None, area_ratio=0.5, margin=0.9, agreement=0.9, in_area=True)
        for s in stems
    }
    tiny = np.zeros(image_size(example.by_stem()[stems[0]].image_path), np.uint8)  # empty: area 0
    path = tmp_path / "h.png"
    write_mask(path, tiny)
    config = RunConfig(filters=FilterSection(drop_fraction=0.5))
    prov: dict = {"round": 0}
    (round_path / "masks").mkdir(parents=True)
    fixed.override_round(round_path, records, prov, {stems[0]: path}, config)
    assert records[stems[0]].train_next and records[stems[0]].score == 1.0 and records[stems[0]].area_ratio == 0.0
    assert (read_mask(round_path / "masks" / f"{stems[0]}.png") == tiny).all()
    assert prov["fixed"] == [stems[0]]
    saved, saved_prov = rec.read_scores(round_path)
    assert saved[stems[0]].train_next and saved_prov["fixed"] == [stems[0]]
    fresh = {s: dataclasses.replace(r) for s, r in saved.items()}
    for r in fresh.values():  # what the next round does first (run_refine_round)
        r.in_area = filters.area_ok(r.area_ratio, config.filters.area_min, config.filters.area_max)
    rec.select_next(fresh, config)
    assert not fresh[stems[0]].train_next, "without the hook the area filter would drop it"
    fixed.keep_for_training(fresh, {stems[0]: path})
    assert fresh[stems[0]].train_next


# ------------------------------------------------------------------------------------ in a real run
@pytest.fixture(scope="module")
def fixed_run(example, tmp_path_factory):
    stems = example.stems[:2]
    folder = tmp_path_factory.mktemp("human")
    for s in stems:
        write_mask(folder / f"{s}.png", _human(example, s))
    config = TINY.replace({"train.fixed_weight": 2, "filters.drop_fraction": 0.5})
    out = tmp_path_factory.mktemp("runs") / "fixed"
    result = run_autolabel(example, out, config, fixed=fixed.read_folder(folder, example))
    return result, stems, folder, config


def test_fixed_masks_are_every_rounds_and_the_final_masks(fixed_run, example):
    result, stems, _, _ = fixed_run
    assert sorted(fixed.load(result.run_dir)) == sorted(stems)
    for r in result.rounds:
        for s in stems:
            assert (read_mask(r.masks_dir / f"{s}.png") == _human(example, s)).all(), f"round {r.index}: {s}"
            assert r.details[s]["train_next"], f"round {r.index} dropped fixed {s}"
            assert r.scores[s] == 1.0
            if r.index > 0:
                assert r.changed[s] == 0.0
        assert r.provenance["fixed"] == sorted(stems)
    for s in stems:
        assert (read_mask(result.final_masks_dir / f"{s}.png") == _human(example, s)).all()
    others = [s for s in example.stems if s not in stems]
    assert any(not (read_mask(result.final_masks_dir / f"{s}.png") == _human(example, s)).all() for s in others)


def test_fixed_masks_are_weighted_in_training(fixed_run):
    """Round 1 trained on the selected automatic masks plus each fixed mask ``fixed_weight`` times."""
    result, stems, _, config = fixed_run
    prev = result.round(0)
    auto = sum(1 for s, d in prev.details.items() if d["train_next"] and s not in stems)
    assert result.round(1).provenance["trained_on"] == auto + config.train.fixed_weight * len(stems)


def test_resume_keeps_the_fixed_masks_and_refuses_others(fixed_run, example, tmp_path):
    _, stems, folder, config = fixed_run
    out = tmp_path / "partial"
    run_autolabel(example, out, config.replace({"rounds": 1}), fixed=fixed.read_folder(folder, example))
    again = run_autolabel(example, out, config, resume=True)  # no fixed given: the stored ones
    for s in stems:
        assert (read_mask(again.final_masks_dir / f"{s}.png") == _human(example, s)).all()
    other = {stems[0]: np.zeros_like(_human(example, stems[0]))}
    with pytest.raises(ValueError, match="differ"):
        run_autolabel(example, out, config.replace({"rounds": 3}), resume=True, fixed=other)
    assert json.loads((out / "run.json").read_text())["rounds_done"] == [0, 1, 2]


def test_bad_fixed_mask_writes_nothing(example, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="WxH"):
        run_autolabel(example, out, TINY, fixed={example.stems[0]: np.zeros((3, 3), np.uint8)})
    assert not out.exists() or not any(out.iterdir())


def test_load_run_still_reads_a_run_without_fixed_masks(example, tmp_path):
    result = run_autolabel(example, tmp_path / "plain", TINY.replace({"rounds": 1}))
    assert fixed.load(result.run_dir) == {}
    assert load_run(result.run_dir).best_round == result.best_round
    assert "fixed" not in result.round(1).provenance


def test_cli_run_fixed_masks(example, tmp_path, capsys):
    """``gfn-autolabel run --fixed-masks DIR``: the final masks of those images are the human masks; a
    mask of an unknown image is a one-line error (exit 2) and no run is written."""
    from core.cli import main

    root = example.samples[0].image_path.parent.parent
    folder = tmp_path / "human"
    stem = example.stems[3]
    write_mask(folder / f"{stem}.png", _human(example, stem))
    cfg = tmp_path / "fast.json"
    cfg.write_text(json.dumps(TINY.replace({"rounds": 1}).to_dict()))
    args = ["run", "--images", str(root / "images"), "--labels", str(root / "labels.csv"), "--no-progress"]
    args += ["--config", str(cfg), "--no-report", "--init", "grabcut", "--rounds", "1", "--max-side", "0"]
    out = tmp_path / "run"
    # 3 = status "collapsed": the tiny random-init network empties the other masks (mechanics only)
    assert main([*args, "--out", str(out), "--fixed-masks", str(folder)]) in (0, 3)
    assert (read_mask(out / "final" / "masks" / f"{stem}.png") == _human(example, stem)).all()
    write_mask(folder / "stranger.png", _human(example, stem))
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad"), "--fixed-masks", str(folder)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "stranger" in err[0] and str(folder) in err[0], err
    assert not (tmp_path / "bad" / "config.json").exists()
