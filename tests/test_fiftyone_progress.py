"""The FiftyOne operator's progress (no FiftyOne import): engine stages and finished rounds -> one fraction."""

from __future__ import annotations

import pytest

from gfn_fiftyone.progress import RunProgress


def test_rounds_share_the_fraction_and_a_finished_round_is_reported_at_once():
    got = []
    tracker = RunProgress(lambda frac, label: got.append((frac, label)), rounds=2)
    tracker("cam-features", 3, 6)  # a stage without a known share: 80 % of the round
    assert got[-1] == (pytest.approx(0.8 * 0.5 / 3), "cam-features 3/6")
    tracker.round_finished(0)
    assert got[-1] == (pytest.approx(1 / 3), "round 0 finished")
    tracker("round 1: train", 1, 2)
    assert got[-1] == (pytest.approx((1 + 0.75 / 2) / 3), "round 1: train 1/2")
    tracker.round_finished(1)
    tracker.round_finished(1)  # forced even without progress since the last report
    assert got[-2:] == [(pytest.approx(2 / 3), "round 1 finished")] * 2


def test_a_resumed_run_starts_at_its_first_round_to_do_and_reports_are_throttled():
    got = []
    tracker = RunProgress(lambda frac, label: got.append(frac), rounds=1, first_round=1)
    tracker("round 1: predict", 0, 1000)
    tracker("round 1: predict", 1, 1000)  # +0.01 % and within 2 s: not reported
    assert got == [pytest.approx(0.5)]
    tracker("round 1: predict", 1000, 1000)
    assert got[-1] == pytest.approx(0.5 + 0.15 / 2)
    RunProgress(None, rounds=1).round_finished(0)  # no report function: nothing to do


def test_the_next_stage_of_a_round_never_moves_the_fraction_back():
    got = []
    tracker = RunProgress(lambda frac, label: got.append(frac), rounds=1, first_round=1)
    for stage, total in (("round 1: train", 4), ("round 1: predict", 8), ("round 1: post-process", 8)):
        for done in range(total + 1):
            tracker(stage, done, total)
    tracker.round_finished(1)
    assert got == sorted(got) and got[-1] == pytest.approx(1.0)
    assert got[-2] == pytest.approx(1.0)  # train + predict + post-process fill the round's slice
