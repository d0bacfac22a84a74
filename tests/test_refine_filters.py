"""The filters between rounds: category consistency, area ratio, reliability, training labels."""

import numpy as np
import pytest

from core.refine import filters


def _square(h=20, w=20, lo=5, hi=15, cls=1):
    m = np.zeros((h, w), np.uint8)
    m[lo:hi, lo:hi] = cls
    return m


def _probs_from(mask, k=3, conf=0.9):
    p = np.full((k, *mask.shape), (1 - conf) / (k - 1), np.float32)
    for c in range(k):
        p[c][mask == c] = conf
    return p


# ------------------------------------------------------------ category consistency
def test_consistent_mask_other_classes_become_background():
    m = _square(cls=2)
    m[0, 0] = 1
    m[1, 1] = 255
    out = filters.consistent_mask(m, [0, 1])
    assert out[0, 0] == 1 and out[1, 1] == 255
    assert (out[5:15, 5:15] == 0).all()
    assert m[5, 5] == 2  # input untouched


def test_consistent_probs_objectness_gives_foreground_mass_to_the_own_classes():
    rng = np.random.default_rng(0)
    p = rng.random((4, 6, 7)).astype(np.float32)
    p /= p.sum(0, keepdims=True)
    out = filters.consistent_probs(p, [0, 2])
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-6)
    assert (out[1] == 0).all() and (out[3] == 0).all()
    np.testing.assert_allclose(out[0], p[0])
    np.testing.assert_allclose(out[2], 1 - p[0], atol=1e-6)
    two = filters.consistent_probs(p, [0, 1, 3])  # several labels: split in proportion
    np.testing.assert_allclose(two[1] / two[3], p[1] / p[3], rtol=1e-4)
    np.testing.assert_allclose(two[1] + two[3], 1 - p[0], atol=1e-6)


def test_consistent_probs_background_mode_is_paper_002s_rule():
    rng = np.random.default_rng(1)
    p = rng.random((4, 6, 7)).astype(np.float32)
    p /= p.sum(0, keepdims=True)
    out = filters.consistent_probs(p, [0, 2], mode="background")
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0], p[0] + p[1] + p[3], atol=1e-6)
    np.testing.assert_allclose(out[2], p[2])
    with pytest.raises(ValueError, match="consistency mode"):
        filters.consistent_probs(p, [0, 2], mode="drop")


def test_allowed_classes_range_checked():
    assert filters.allowed_classes([2, 1, 2], 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="out of range"):
        filters.allowed_classes([3], 3)


# ------------------------------------------------------------ area ratio
def test_area_ratio_and_filter():
    m = _square()  # 100 of 400
    assert filters.area_ratio(m) == pytest.approx(0.25)
    m2 = m.copy()
    m2[0:10, 0:20] = np.where(m2[0:10, 0:20] == 1, 1, 255)  # background pixels of top half ignored
    assert filters.area_ratio(m2) == pytest.approx(100 / (400 - 200 + 50))
    assert filters.area_ratio(np.full((4, 4), 255, np.uint8)) == 0.0
    assert filters.area_ok(0.25, 0.1, 0.9)
    assert not filters.area_ok(0.05, 0.1, 0.9)
    assert not filters.area_ok(0.95, 0.1, 0.9)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        filters.area_ratio(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        filters.margin_map(np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        filters.foreground_agreement(np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8))


# ------------------------------------------------------------ reliability
def test_reliability_in_unit_interval_and_ordered():
    m = _square()
    good = filters.reliability(_probs_from(m, 2, 0.95), m, m, m)
    shifted = np.roll(m, 4, axis=1)
    bad = filters.reliability(_probs_from(m, 2, 0.55), m, shifted, shifted)
    for r in (good, bad):
        assert 0.0 <= r["score"] <= 1.0
    assert good["score"] > bad["score"]
    assert good["agreement"] == 1.0 and good["stability"] == 1.0
    assert "stability" not in filters.reliability(_probs_from(m, 2), m, m, None)


def test_empty_prediction_has_low_margin_score():
    p = np.zeros((2, 8, 8), np.float32)
    p[0] = 1.0
    assert filters.margin_score(p) == 0.0


def test_agreement_and_changed():
    a = _square()
    assert filters.foreground_agreement(a, a) == 1.0
    assert filters.foreground_agreement(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert filters.foreground_agreement(a, np.zeros_like(a)) == 0.0
    assert filters.changed_fraction(a, None) == 1.0
    assert filters.changed_fraction(a, np.zeros_like(a)) == pytest.approx(0.25)


# ------------------------------------------------------------ training labels
def test_boundary_band_width():
    m = _square(40, 40, 10, 30)
    assert not filters.boundary_band(m, 0).any()
    band = filters.boundary_band(m, 2)
    assert band[10, 20] and band[9, 20] and band[11, 20]
    assert not band[20, 20] and not band[2, 2]
    assert filters.band_pixels((40, 300), 0.01) == 3
    assert filters.band_pixels((40, 40), 0.001) == 1
    assert filters.band_pixels((40, 40), 0.0) == 0


def test_training_label_ignores_uncertain_disagreeing_and_boundary():
    m = _square(40, 40, 10, 30)
    p = _probs_from(m, 2, 0.9)
    p[:, 0:3, 0:3] = 0.5  # uncertain background corner
    p[0, 35, 35], p[1, 35, 35] = 0.1, 0.9  # network says fg where the label says bg
    lab = filters.training_label(m, p, ignore_margin=0.3, band_fraction=0.05)
    assert (lab[0:3, 0:3] == 255).all()
    assert lab[35, 35] == 255
    assert lab[10, 20] == 255  # boundary band
    assert lab[20, 20] == 1 and lab[5, 38] == 0
    lab_none = filters.training_label(m, None, ignore_margin=0.3, band_fraction=0.0)
    np.testing.assert_array_equal(lab_none, m)


def test_select_for_training_drops_least_reliable_and_area_failures():
    scores = {f"s{i}": i / 10 for i in range(10)}
    in_area = {s: s != "s9" for s in scores}
    chosen = filters.select_for_training(scores, in_area, 0.25)
    assert "s9" not in chosen  # area filter, despite the top score
    assert len(chosen) == 7  # 9 in area, round(9 * 0.75) = 7
    assert chosen == [f"s{i}" for i in range(2, 9)]
    # nobody in area -> the most reliable ones still train
    assert filters.select_for_training(scores, {}, 0.5) == [f"s{i}" for i in range(5, 10)]
    with pytest.raises(ValueError, match="drop_fraction"):
        filters.select_for_training(scores, in_area, 1.0)


# ------------------------------------------------------------ area calibration
def test_area_shift_matches_the_target_area():
    from core.refine import calibrate

    rng = np.random.default_rng(0)
    q = rng.random((40, 50)).astype(np.float32)  # foreground probability uniform in [0, 1]
    probs = np.stack([1 - q, q])
    hist = calibrate.fg_histogram(probs)
    assert hist.sum() == pytest.approx(1.0)
    for target in (0.2, 0.5, 0.7):
        b = calibrate.area_shift([hist], target)
        shifted = calibrate.shift_probs(probs, b)
        np.testing.assert_allclose(shifted.sum(0), 1.0, atol=1e-5)
        assert (shifted.argmax(0) == 1).mean() == pytest.approx(target, abs=0.02)
    assert calibrate.area_shift([hist], 0.3) < 0 < calibrate.area_shift([hist], 0.7)
    assert abs(calibrate.area_shift([hist], 1.0)) <= calibrate.MAX_SHIFT
    assert calibrate.area_shift([], 0.3) == 0.0
    with pytest.raises(ValueError, match="target_area"):
        calibrate.area_shift([hist], 1.5)


def test_shift_probs_adds_to_the_log_odds():
    from core.refine import calibrate

    p = np.array([[[0.8]], [[0.2]]], np.float32)
    out = calibrate.shift_probs(p, np.log(4.0))
    assert out[1, 0, 0] == pytest.approx(0.5, abs=1e-6)
    assert calibrate.shift_probs(p, 0.0) is not p


# ------------------------------------------------------------ post-processing chain
def test_postprocess_chain_parses_and_falls_back_when_a_step_wipes_the_object(monkeypatch):
    import core.postprocess as pp
    from core.refine import postchain

    assert postchain.parse_chain("crf+grabcut") == ("crf", "grabcut")
    with pytest.raises(ValueError, match="unknown step.*'blur'"):
        postchain.parse_chain("crf+blur")
    img = np.zeros((20, 20, 3), np.uint8)
    probs = _probs_from(_square(), 2, 0.9)

    def fake(image, p, method, *, config=None):  # "crf" keeps the object, "grabcut" wipes it out
        m = p.argmax(0).astype(np.uint8) if method == "crf" else np.zeros(p.shape[1:], np.uint8)
        return m, p

    monkeypatch.setattr(pp, "refine_mask", fake)
    mask, _ = postchain.postprocess(img, probs, "crf+grabcut")
    np.testing.assert_array_equal(mask, _square())  # the crf step's mask, not the empty one
    mask, _ = postchain.postprocess(img, probs, "grabcut")
    np.testing.assert_array_equal(mask, _square())  # the network's own argmax
    mask, _ = postchain.postprocess(img, probs, "none")
    np.testing.assert_array_equal(mask, _square())
