"""The collapse guard (``core.refine.collapse``): its checks, the pick with round 0 as a candidate, and a
run on a small generated set whose rounds are forced to collapse (run.json, the table, the CLI's exit code)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.data.example import make_example
from core.initial.config import InitConfig
from core.refine import collapse
from core.refine.config import InitSection, NetworkSection, RunConfig, StopSection, TrainSection
from core.refine.runner import RoundInfo, decide, load_run, run_autolabel

LIMITS = collapse.Limits()


def _sig(areas, reliability=0.7, margin=0.6, network=True):
    return collapse.RoundSignals(areas=dict(enumerate(areas)), reliability=reliability, margin=margin, network=network)


ROUND0 = _sig([0.2, 0.3, 0.25, 0.0, 0.2], reliability=0.9, margin=0.9, network=False)


# ------------------------------------------------------------------------------------- the checks
def test_a_sound_round_passes():
    v = collapse.check_round(_sig([0.22, 0.28, 0.24, 0.05, 0.18]), ROUND0)
    assert not v.collapsed and v.reasons == () and v.numbers["emptied"] == 0.0
    assert json.dumps(v.to_dict())  # run.json holds it


def test_images_emptied_area_jump_undecided_network_and_falling_reliability_are_each_caught():
    emptied = collapse.check_round(_sig([0.2, 0.0, 0.0, 0.0, 0.2]), ROUND0)  # 2 of the 4 that had an object
    assert emptied.collapsed and "50% of the 4 images that had an object are empty" in emptied.reasons[0]
    shrunk = collapse.check_round(_sig([0.05, 0.1, 0.08, 0.0, 0.06]), ROUND0)
    assert [r for r in shrunk.reasons if r.startswith("mean foreground area jumped")]
    grown = collapse.check_round(_sig([0.9, 0.9, 0.8, 0.7, 0.9]), ROUND0)
    assert [r for r in grown.reasons if r.startswith("mean foreground area jumped")]
    undecided = collapse.check_round(_sig([0.2, 0.3, 0.25, 0.0, 0.2], margin=0.004), ROUND0)
    assert undecided.reasons == ("the network is undecided: mean probability margin 0.004 < 0.1",)
    earlier = _sig([0.2, 0.3, 0.25, 0.0, 0.2], reliability=0.8)
    fell = collapse.check_round(_sig([0.2, 0.3, 0.25, 0.0, 0.2], reliability=0.6), ROUND0, network_reference=earlier)
    assert fell.collapsed and fell.reasons[0].startswith("reliability fell from 0.800 to 0.600")


def test_round_0_reliability_is_never_compared_and_limits_come_from_the_stop_section():
    low = _sig([0.2, 0.3, 0.25, 0.0, 0.2], reliability=0.3)  # far below round 0's 0.9, which is not comparable
    assert not collapse.check_round(low, ROUND0).collapsed
    strict = collapse.Limits.from_stop(StopSection(collapse_margin=0.7))
    assert collapse.check_round(low, ROUND0, strict).reasons[0].startswith("the network is undecided")
    with pytest.raises(ValueError, match="stop.collapse_area_factor must be a number >= 1"):
        StopSection(collapse_area_factor=0.5)
    with pytest.raises(ValueError, match=r"stop.collapse_emptied must lie in \[0, 1\]"):
        StopSection(collapse_emptied=1.5)
    with pytest.raises(ValueError, match="stop.collapse_guard must be true or false"):
        StopSection(collapse_guard="yes")
    assert RunConfig.from_dict({"stop.collapse_margin": 0.2}).stop.collapse_margin == 0.2


def test_check_rounds_compares_reliability_with_the_best_sound_round_and_run_status():
    rounds = [ROUND0, _sig([0.2] * 5, reliability=0.8), _sig([0.2] * 5, reliability=0.7), _sig([0.2] * 5, 0.6)]
    verdicts = collapse.check_rounds(rounds, LIMITS)
    assert [v.collapsed for v in verdicts] == [False, False, False, True]  # 0.6 is 0.2 below round 1's 0.8
    assert collapse.run_status(rounds[1], verdicts) == collapse.DEGRADED
    assert collapse.run_status(rounds[1], verdicts[:3]) == collapse.OK
    assert collapse.run_status(_sig([0.0, 0.0, 0.0, 0.2, 0.0]), verdicts[:2]) == collapse.COLLAPSED
    masks = {"a": np.zeros((4, 4), np.uint8), "b": np.ones((4, 4), np.uint8)}
    assert collapse.RoundSignals.from_masks(masks, network=True).empty_fraction() == 0.5


# --------------------------------------------------------------------------- the pick (decide)
def _info(index, areas, reliability, margin=0.6, miou=None, changed=0.05):
    details = {f"im{i}": {"area_ratio": a} for i, a in enumerate(areas)}
    metrics = {
        "gt": None if miou is None else {"miou": miou},
        "label_free": {"reliability": reliability, "margin": margin, "changed": changed},
    }
    return RoundInfo(
        index=index,
        masks_dir=Path("."),
        scores={},
        changed={},
        metrics=metrics,
        checkpoint=None,
        provenance={},
        details=details,
    )


R0 = _info(0, [0.2, 0.3, 0.25, 0.2], reliability=0.95, margin=0.9, miou=0.80, changed=None)


def test_sound_refined_rounds_displace_round_0_by_reliability():
    rounds = [R0, _info(1, [0.2, 0.3, 0.2, 0.2], 0.6, miou=0.85), _info(2, [0.2, 0.3, 0.2, 0.2], 0.7, miou=0.86)]
    assert decide(rounds, RunConfig(rounds=5)) == (None, 2, 2, 2)


def test_round_0_is_kept_when_every_refined_round_collapses():
    empty = _info(1, [0.0, 0.0, 0.0, 0.0], 0.67, margin=0.02, miou=0.41)
    assert decide([R0, empty], RunConfig(rounds=5)) == ("collapsed", 0, 0, 0)
    undecided = _info(1, [0.2, 0.3, 0.2, 0.2], 0.4, margin=0.004, miou=0.51)  # masks look fine, network does not
    assert decide([R0, undecided], RunConfig(rounds=5))[:2] == ("collapsed", 0)
    gt = RunConfig(rounds=5, stop=StopSection(select_by="gt"))
    assert decide([R0, empty], gt)[:2] == ("collapsed", 0), "a collapsed round is not kept by ground truth either"
    off = RunConfig(rounds=5, stop=StopSection(collapse_guard=False))
    assert decide([R0, empty], off) == (None, 1, 1, 0)  # the old behaviour: round 0 never wins


def test_a_later_collapse_keeps_the_last_sound_round():
    rounds = [R0, _info(1, [0.2, 0.3, 0.2, 0.2], 0.6), _info(2, [0.0, 0.0, 0.3, 0.0], 0.9)]
    assert decide(rounds, RunConfig(rounds=5))[:3] == ("collapsed", 1, 1)


# ------------------------------------------------------------------ a run forced to collapse
TINY = RunConfig(
    init=InitSection(route="grabcut", options=InitConfig(coarse="centre", work_size=48)),
    rounds=2,
    train=TrainSection(epochs=1, batch_size=4, crop_size=48, min_steps=0),  # seconds; the collapse is forced
    max_side=None,
    num_threads=2,
    network=NetworkSection(pretrained=False, aspp_channels=16, low_channels=8),
)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("ex"), n=6, size=48, classes=("ellipse", "star"))


def _empty_post(image, probs, spec, *, params):
    return np.zeros(probs.shape[1:], np.uint8), probs


def test_a_collapsed_round_stops_the_run_and_round_0_is_kept(example, tmp_path, monkeypatch, caplog):
    import core.refine.postchain as postchain
    from core.refine.report import format_table

    monkeypatch.setattr(postchain, "postprocess", _empty_post)  # every refined mask comes out empty
    with caplog.at_level("WARNING", logger="core.refine.runner"):  # (one worker: the patch is in this process)
        result = run_autolabel(example, tmp_path / "run", TINY.replace({"post.workers": 1}))
    assert [r.index for r in result.rounds] == [0, 1] and result.stopped_reason == "collapsed"
    assert result.best_round == 0 and result.status == "degraded"
    assert result.status_message == (
        "round 1 collapsed (100% of the 6 images that had an object are empty (limit 20%)); round 0's masks were kept"
    )
    final, round0 = result.masks(), result.masks(0)
    assert [p.read_bytes() for p in final.values()] == [p.read_bytes() for p in round0.values()], "round 0's masks"
    assert [r for r in caplog.records if "round 1 COLLAPSED" in r.getMessage()]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "degraded" and run["stopped_reason"] == "collapsed" and run["best_round"] == 0
    assert [r["collapsed"] for r in run["rounds"]] == [False, True]
    assert "100% of the 6 images that had an object are empty" in run["rounds"][1]["reasons"][0]
    again = load_run(tmp_path / "run")
    assert again.status == "degraded" and [v.collapsed for v in again.verdicts] == [False, True]
    table = format_table(again)
    assert "COLLAPSED round 1: 100% of the 6 images" in table and "status: degraded" in table
    from core.refine.apply import Labeller

    with pytest.raises(ValueError, match=r"no usable trained model: round\(s\) \[1\] collapsed"):
        Labeller.from_run(tmp_path / "run")  # round 0 was kept: never fall back to the collapsed model
    assert Labeller.from_run(tmp_path / "run", 1).classmap == example.classmap  # asked for explicitly


def test_all_empty_masks_end_collapsed_and_the_cli_exits_3(example, tmp_path, monkeypatch, capsys):
    import core.refine.filters as filters
    from core.cli import main
    from core.cli.run_cmd import EXIT_COLLAPSED

    monkeypatch.setattr(filters, "consistent_mask", lambda mask, allowed: np.zeros_like(mask))  # round 0 too
    root = Path(example.samples[0].image_path).parents[1]
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY.replace(rounds=1).to_dict()))
    images, labels = str(root / "images"), str(root / "labels.csv")
    out = str(tmp_path / "cli")
    code = main(["run", "--images", images, "--labels", labels, "--out", out, "--config", str(cfg), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_COLLAPSED == 3
    assert "gfn-autolabel run: error: the run collapsed: 100% of the kept masks are empty" in err
    assert json.loads((tmp_path / "cli" / "run.json").read_text())["status"] == "collapsed"
    assert load_run(tmp_path / "cli").status == "collapsed"
