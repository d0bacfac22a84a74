"""The stopping rule and round selection on synthetic signal sequences; RunConfig round trips."""

import json

import pytest

from core.initial.config import InitConfig
from core.refine.config import FilterSection, InitSection, PostSection, RunConfig, StopSection
from core.refine.stopping import STOP_CONVERGED, STOP_MAX_ROUNDS, STOP_NO_GAIN, pick_best, stop_reason


def _stop(signal, **kw):
    opts = dict(min_gain=0.01, patience=1, max_rounds=10)
    opts.update(kw)
    return stop_reason(signal, **opts)


def test_keeps_going_while_improving():
    assert _stop([None]) is None
    assert _stop([None, 0.70]) is None  # first comparable round is progress
    assert _stop([None, 0.70, 0.75]) is None
    assert _stop([0.5, 0.6, 0.7]) is None


def test_stops_when_no_gain():
    assert _stop([None, 0.70, 0.75, 0.755]) == STOP_NO_GAIN  # gain below min_gain
    assert _stop([None, 0.70, 0.75, 0.72]) == STOP_NO_GAIN  # drop


def test_patience_counts_stale_rounds_against_the_best_so_far():
    assert _stop([None, 0.70, 0.75, 0.74], patience=2) is None
    assert _stop([None, 0.70, 0.75, 0.74, 0.755], patience=2) == STOP_NO_GAIN
    assert _stop([None, 0.70, 0.75, 0.74, 0.80], patience=2) is None


def test_max_rounds_and_convergence():
    assert _stop([None, 0.7, 0.8], max_rounds=2) == STOP_MAX_ROUNDS
    assert _stop([None], max_rounds=0) == STOP_MAX_ROUNDS
    assert _stop([None, 0.7, 0.8], changed=[None, 0.1, 0.001], converged_change=0.002) == STOP_CONVERGED
    assert _stop([None, 0.7, 0.8], changed=[None, 0.1, 0.05], converged_change=0.002) is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        _stop([0.1], patience=0)
    with pytest.raises(ValueError, match="at least one round"):
        _stop([])


def test_pick_best():
    assert pick_best([None, 0.7, 0.8, 0.8, 0.75]) == 2  # earliest of ties
    assert pick_best([0.6, 0.5]) == 0
    assert pick_best([None, None]) is None


def test_run_config_round_trip_and_refusals():
    c = RunConfig(rounds=2, init=InitSection(options=InitConfig(work_size=64)))
    again = RunConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c and again.differences(c) == []
    assert c.replace(epochs=1).differences(c) == ["train.epochs"]
    with pytest.raises(ValueError, match="unknown RunConfig setting.*'epoch'.*known settings"):
        RunConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="postprocess 'blur' is unknown"):
        RunConfig(post=PostSection(chain="blur"))
    with pytest.raises(ValueError, match="area_min"):
        RunConfig(filters=FilterSection(area_min=0.9, area_max=0.1))
    with pytest.raises(ValueError, match="select_by"):
        RunConfig(stop=StopSection(select_by="oracle"))
    with pytest.raises(TypeError):
        RunConfig(2)  # keyword-only


def _info(i, miou, rel, changed):
    from pathlib import Path

    from core.refine.runner import RoundInfo

    return RoundInfo(
        index=i,
        masks_dir=Path("."),
        scores={},
        changed={},
        checkpoint=None,
        provenance={},
        metrics={
            "gt": None if miou is None else {"miou": miou},
            "label_free": {"reliability": rel, "changed": changed},
        },
    )


def test_decide_label_free_never_looks_at_gt_and_both_choices_are_recorded():
    from core.refine.runner import decide

    rounds = [
        _info(0, 0.70, 0.90, None),
        _info(1, 0.80, 0.60, 0.1),
        _info(2, 0.85, 0.70, 0.05),
        _info(3, 0.84, 0.69, 0.03),
    ]
    cfg = RunConfig(rounds=5)
    reason, best, best_lf, best_gt = decide(rounds, cfg)
    assert (reason, best, best_lf, best_gt) == ("no gain", 2, 2, 2)  # round 0's reliability is not compared
    flipped = [
        _info(
            r.index,
            None if r.index == 0 else 1 - r.metrics["gt"]["miou"],
            r.metrics["label_free"]["reliability"],
            r.metrics["label_free"]["changed"],
        )
        for r in rounds
    ]
    assert decide(flipped, cfg)[1] == 2  # same label-free choice whatever the ground truth says
    reason, best, _, best_gt = decide(rounds[:3], cfg.replace(select_by="gt"))
    assert reason is None and best == best_gt == 2
    no_gt = [_info(r.index, None, r.metrics["label_free"]["reliability"], 0.1) for r in rounds]
    assert decide(no_gt, cfg.replace(select_by="gt"))[1:] == (2, 2, None)  # falls back to label-free
