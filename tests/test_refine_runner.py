"""The round loop end to end on a tiny example: run folder, resume == uninterrupted, refusals, Labeller."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.data.dataset import Sample
from core.data.example import make_example
from core.initial.config import InitConfig
from core.io.atomic import OutputExistsError
from core.io.images import image_size, read_mask
from core.refine import rundir
from core.refine.config import InitSection, NetworkSection, RunConfig, StopSection, TrainSection
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
"""Seconds per run on CPU: no network for round 0, a narrow random-init GFN, one epoch per round. Such a
network learns nothing and its rounds collapse; these tests are about the loop's mechanics, so the
collapse guard is off here (``tests/test_refine_collapse.py`` tests it)."""


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("ex"), n=6, size=48, classes=CLASSES)


@pytest.fixture(scope="module")
def finished(example, tmp_path_factory):
    """An uninterrupted run (shared by several tests; they must not modify it)."""
    return run_autolabel(example, tmp_path_factory.mktemp("runs") / "full", TINY)


def _mask_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_round_loop_writes_the_run_folder(finished, example):
    run = finished.run_dir
    assert (run / "config.json").is_file() and (run / "dataset.json").is_file() and (run / "run.json").is_file()
    assert [r.index for r in finished.rounds] == [0, 1, 2]
    for r in finished.rounds:
        d = rundir.round_dir(run, r.index)
        for name in ("scores.json", "metrics.json", "DONE"):
            assert (d / name).is_file(), f"{d / name} missing"
        assert (r.checkpoint is None) == (r.index == 0)
        assert sorted(r.scores) == sorted(example.stems)
        assert all(0.0 <= v <= 1.0 for v in r.scores.values())
        assert all(0.0 <= v <= 1.0 for v in r.changed.values())
        assert r.metrics["gt"]["miou"] is not None and 0 <= r.metrics["gt"]["miou"] <= 1
        assert r.provenance["round"] == r.index and r.provenance["route"] == "grabcut"
        for s in example:
            m = read_mask(r.masks_dir / f"{s.stem}.png")
            assert m.shape == image_size(s.image_path)
            own = example.classmap.index(s.labels[0])
            assert set(np.unique(m)) <= {0, own}, "category consistency: only the image's own class"
    summary = json.loads((run / "run.json").read_text())
    assert summary["best_round"] == finished.best_round
    assert summary["select_by"] == "label_free" and "best_round_gt" in summary
    assert _mask_bytes(finished.final_masks_dir) == _mask_bytes(finished.round(finished.best_round).masks_dir)
    again = load_run(run)
    assert again.best_round == finished.best_round and again.config == TINY
    assert [r.index for r in again.rounds] == [0, 1, 2]


def test_resume_after_interruption_gives_the_same_masks(finished, example, tmp_path):
    out = tmp_path / "resumed"

    def stop_after_round_1(info):
        if info.index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_autolabel(example, out, TINY, on_round=stop_after_round_1)
    assert rundir.finished_rounds(out) == [0, 1] and not (out / "run.json").exists()
    assert load_run(out).stopped_reason == "interrupted"

    def stop_inside_round_2(stage, done, total):
        if stage == "round 2: predict" and done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a half-written round must be redone, not trusted
        run_autolabel(example, out, TINY, resume=True, progress=stop_inside_round_2)
    assert rundir.finished_rounds(out) == [0, 1]
    reported = []
    resumed = run_autolabel(example, out, TINY, resume=True, on_round=reported.append)
    assert [r.index for r in reported] == [2], "rounds finished before the resume are not reported again"
    assert resumed.best_round == finished.best_round
    for r in (1, 2):
        assert _mask_bytes(resumed.round(r).masks_dir) == _mask_bytes(finished.round(r).masks_dir)
    assert _mask_bytes(resumed.final_masks_dir) == _mask_bytes(finished.final_masks_dir)


def test_on_round_reports_each_round_once_it_is_on_disk(example, tmp_path):
    out = tmp_path / "run"
    seen = []

    def on_round(info):
        assert rundir.is_done(out, info.index), "reported before its DONE marker"
        assert sorted(p.stem for p in info.masks_dir.glob("*.png")) == sorted(example.stems)
        seen.append(info)

    result = run_autolabel(example, out, TINY.replace(rounds=1), on_round=on_round)
    assert [r.index for r in seen] == [0, 1]
    assert [r.masks_dir for r in seen] == [rundir.round_dir(out, k) / "masks" for k in (0, 1)]
    assert all(a is b for a, b in zip(seen, result.rounds, strict=True)), "the RoundInfo the result holds"


def test_refuses_to_overwrite_and_to_resume_with_another_config(finished, example):
    with pytest.raises(OutputExistsError, match="overwrite"):
        run_autolabel(example, finished.run_dir, TINY)
    with pytest.raises(ValueError, match=r"differing keys: \['train.epochs', 'post.chain'\]"):
        run_autolabel(example, finished.run_dir, TINY.replace(epochs=2, postprocess="none"), resume=True)
    with pytest.raises(ValueError, match="not both"):
        run_autolabel(example, finished.run_dir, TINY, resume=True, overwrite=True)


def test_resume_of_a_finished_run_does_no_work(finished, example, monkeypatch):
    import core.refine.refine_round as rr

    monkeypatch.setattr(rr, "run_refine_round", lambda *a, **k: pytest.fail("a finished round was re-run"))
    before = _mask_bytes(finished.final_masks_dir)
    again = run_autolabel(example, finished.run_dir, TINY, resume=True)
    assert again.best_round == finished.best_round
    assert _mask_bytes(again.final_masks_dir) == before


def test_resume_with_more_rounds_continues_a_finished_run(finished, example, tmp_path):
    """A finished 1-round run resumed with ``rounds=2`` equals the uninterrupted 2-round run."""
    run = tmp_path / "more"
    one = run_autolabel(example, run, TINY.replace(rounds=1))
    assert [r.index for r in one.rounds] == [0, 1] and one.stopped_reason == "max rounds"
    with pytest.raises(ValueError, match=r"differing keys: \['train.epochs'\]"):
        run_autolabel(example, run, TINY.replace(epochs=2), resume=True)
    more = run_autolabel(example, run, TINY, resume=True)
    assert [r.index for r in more.rounds] == [0, 1, 2]
    for r in finished.rounds:
        assert _mask_bytes(more.round(r.index).masks_dir) == _mask_bytes(r.masks_dir)
    assert _mask_bytes(more.final_masks_dir) == _mask_bytes(finished.final_masks_dir)
    assert load_run(run).config.rounds == TINY.rounds


def test_overwrite_replaces_only_the_run_files(example, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "round_07").mkdir()
    with pytest.raises(OutputExistsError):
        run_autolabel(example, out, TINY.replace(rounds=0))
    res = run_autolabel(example, out, TINY.replace(rounds=0), overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and not (out / "round_07").exists()
    assert res.best_round == 0 and res.stopped_reason == "max rounds"


def test_bad_inputs_name_the_problem(example, tmp_path):
    s0 = example.samples[0]
    unlabelled = example.with_samples([Sample(stem=s0.stem, image_path=s0.image_path), *example.samples[1:]])
    with pytest.raises(ValueError, match=rf"{s0.image_path.name} has no image-level label"):
        run_autolabel(unlabelled, tmp_path / "a", TINY)
    with pytest.raises(ValueError, match="no images"):
        run_autolabel(example.with_samples([]), tmp_path / "b", TINY)
    with pytest.raises(TypeError, match="RunConfig"):
        run_autolabel(example, tmp_path / "c", {"rounds": 1})


def test_labeller_applies_a_round_model(finished, example):
    from core.refine.apply import Labeller

    lab = Labeller.from_checkpoint(finished.round(2).checkpoint)
    img = example.samples[1].load_image()
    mask, score, probs = lab.label(img, ["star"])
    assert mask.shape == img.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, example.classmap.index("star")}
    assert 0.0 <= score <= 1.0
    assert probs.shape == (3, *img.shape[:2]) and np.allclose(probs.sum(0), 1.0, atol=1e-4)
    many = lab.label_many([s.image_path for s in example.samples[:3]], progress=lambda *a: None)
    assert len(many) == 3 and all(m.shape == (48, 48) for m, _, _ in many)
    with pytest.raises(KeyError, match="unknown class 'horse'"):
        lab.label(img, ["horse"])
    with pytest.raises(ValueError, match="one per image"):
        lab.label_many([img, img], [["star"]])
    assert Labeller.from_run(finished.run_dir).classmap == example.classmap


def test_source_pairs_bring_labelled_source_images_into_training(example, tmp_path):
    from core.refine.refine_round import source_pairs

    one_class = make_example(tmp_path / "one", n=3, size=48, classes=("ring",))
    assert source_pairs(one_class, example, TINY) == []  # source_images=0
    pairs = source_pairs(one_class, example, TINY.replace(source_images=4))
    assert len(pairs) == 4 and all(set(np.unique(m)) <= {0, 1, 255} for _, m in pairs)
    assert [p for p, _ in pairs] == [p for p, _ in source_pairs(one_class, example, TINY.replace(source_images=4))]
    with pytest.raises(ValueError, match="needs a labelled source Dataset"):
        source_pairs(one_class, None, TINY.replace(source_images=2))
    with pytest.raises(ValueError, match="one-class target"):
        source_pairs(example, one_class, TINY.replace(source_images=2))


def test_round_0_of_a_network_route_is_post_processed(tmp_path, monkeypatch):
    """Transfer's round 0 goes through the run's post-processing chain (``init_postprocess``); off, the
    masks are the transfer network's argmax."""
    from core.refine import postchain

    target = make_example(tmp_path / "target", n=3, size=48, classes=("ring",))
    source = make_example(tmp_path / "source", n=4, size=48, classes=("ring",))
    small = {
        "gfn": {"pretrained": False, "aspp_channels": 16, "low_channels": 8},
        "train": {"epochs": 1, "crop_size": 48, "max_side": None, "batch_size": 4},
    }
    config = TINY.replace(init="transfer", init_options=small, rounds=0, postprocess="crf").replace(
        {"post.workers": 1}  # post-processed in this process, where the spy is
    )
    calls = []

    def spy(image, probs, spec, *, params):
        assert params == config.post.params
        calls.append(spec)
        full = np.ones(probs.shape[1:], dtype=np.uint8)
        full[:4, :4] = 0
        return full, probs

    monkeypatch.setattr(postchain, "postprocess", spy)
    on = run_autolabel(target, tmp_path / "on", config, source=source)
    assert calls == ["crf"] * len(target)
    r0 = on.round(0)
    assert r0.provenance["route"] == "transfer" and r0.provenance["postprocess"] == "crf"
    assert "postprocess" in r0.metrics["seconds"]
    for s in target:
        m = read_mask(r0.masks_dir / f"{s.stem}.png")
        assert m[:4, :4].max() == 0 and m[4:, 4:].min() == 1, "round 0's mask is the post-processor's"

    calls.clear()
    off = run_autolabel(target, tmp_path / "off", config.replace(init_postprocess=False), source=source)
    assert calls == [] and "postprocess" not in off.round(0).provenance
    for s in target:
        probs = rundir.load_probs(off.round(0).masks_dir.parent / "probs" / f"{s.stem}.npz")
        assert np.array_equal(read_mask(off.round(0).masks_dir / f"{s.stem}.png"), probs.argmax(0))

    calls.clear()
    run_autolabel(target, tmp_path / "grabcut", TINY.replace({"post.workers": 1}, rounds=0, postprocess="crf"))
    assert calls == [], "GrabCut-based routes keep their own masks"


def test_training_crop_matches_the_prediction_scale(example, tmp_path, caplog):
    """Rounds train on crops no larger than ``max_side`` (no padding-only crops), and a crop smaller than
    ``max_side`` (whole images labelled at a scale the network never saw) is warned about."""
    from core.refine.refine_round import train_config

    assert train_config(TINY.replace(max_side=32, crop_size=48), 1).crop_size == 32
    assert train_config(TINY.replace(max_side=None, crop_size=48), 1).crop_size == 48
    small = [("a.png", np.zeros((20, 30), np.uint8)), ("b.png", np.zeros((40, 24), np.uint8))]
    assert train_config(TINY.replace(max_side=None, crop_size=48), 1, small).crop_size == 40
    assert train_config(TINY.replace(max_side=32, crop_size=48), 1, small).crop_size == 32
    assert RunConfig().train.crop_size >= RunConfig().max_side
    with caplog.at_level("WARNING", logger="core.refine.runner"):
        run_autolabel(example, tmp_path / "ok", TINY.replace(rounds=0, max_side=48, crop_size=48))
        assert not [r for r in caplog.records if "crop_size" in r.getMessage()]
        run_autolabel(example, tmp_path / "warned", TINY.replace(rounds=0, max_side=64, crop_size=48))
    assert [r for r in caplog.records if "crop_size 48 is smaller than max_side 64" in r.getMessage()]
