"""Pure parts of the FiftyOne plugin (no FiftyOne import): field names, stems, class maps."""

from __future__ import annotations

import numpy as np
import pytest

from core.classmap import IGNORE_INDEX, ClassMap
from gfn_fiftyone.convert import gt_lut, resolve_classmap, unique_stems
from gfn_fiftyone.naming import RunNames, check_prefix


def test_run_names_derive_every_field_from_the_prefix():
    n = RunNames("gfn")
    assert n.run_key == n.best == "gfn"
    assert n.output_fields(1) == [
        "gfn",
        "gfn_reliability",
        "gfn_confidence",
        "gfn_margin",
        "gfn_agreement",
        "gfn_stability",
        "gfn_area_ratio",
        "gfn_round_0",
        "gfn_round_0_reliability",
        "gfn_round_0_changed",
        "gfn_round_0_confidence",
        "gfn_round_1",
        "gfn_round_1_reliability",
        "gfn_round_1_changed",
        "gfn_round_1_confidence",
    ]
    assert n.dropped_tag == "gfn_dropped" and n.confidence(3) == "gfn_round_3_confidence"
    with pytest.raises(ValueError, match="unknown reliability part 'score'.*margin"):
        n.subscore("score")
    assert n.eval_key(2) == "gfn_round_2_eval" and n.iou(2) == "gfn_round_2_iou"
    assert n.round_of("gfn_round_12") == 12 and n.round_of("gfn_round_1_iou") is None
    assert n.round_of("other_round_1") is None


def test_owned_fields_do_not_catch_other_prefixes():
    names = [
        "gfn",
        "gfn_reliability",
        "gfn_round_0",
        "gfn_round_3_iou",
        "gfn_round_3_changed",
        "gfn2_round_0",
        "gfnx",
        "ground_truth",
        "gfn_round_0_eval_accuracy",
        "gfn_confidence",
        "gfn_round_2_confidence",
        "gfn_margin",
        "gfn_margins",
        "gfn_round_1_margin",
    ]
    assert RunNames("gfn").owned(names) == [
        "gfn",
        "gfn_confidence",
        "gfn_margin",
        "gfn_reliability",
        "gfn_round_0",
        "gfn_round_2_confidence",
        "gfn_round_3_changed",
        "gfn_round_3_iou",
    ]


@pytest.mark.parametrize("bad", ["", "1gfn", "gf n", "gfn-x", "_gfn", None])
def test_bad_prefix_is_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="output_prefix"):
        check_prefix(bad)


def test_unique_stems_disambiguate_shared_file_names_with_the_sample_id():
    stems = unique_stems(["/a/x.png", "/b/x.jpg", "/c/y.png"], ["id1", "id2", "id3"])
    assert stems == ["x_id1", "x_id2", "y"]


def test_classmap_follows_the_ground_truth_targets_then_sorted_names():
    assert resolve_classmap(["star", "ellipse"], None).names == ("background", "ellipse", "star")
    cm = resolve_classmap(["star", "ring", "ellipse"], {0: "background", 1: "star", 2: "ellipse"})
    assert cm.names == ("background", "star", "ellipse", "ring")


def test_gt_lut_only_when_indices_differ():
    cm = ClassMap.from_names(["ellipse", "star"])
    assert gt_lut({0: "background", 1: "ellipse", 2: "star"}, cm) is None
    assert gt_lut(None, cm) is None
    lut = gt_lut({0: "bg", 1: "star", 2: "ellipse", 3: "cat"}, cm)
    assert lut is not None
    np.testing.assert_array_equal(lut[np.array([0, 1, 2, 3])], [0, 2, 1, IGNORE_INDEX])
