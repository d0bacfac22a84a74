"""core.data.example: deterministic shapes with exact masks, including a hole and two-part objects."""

from __future__ import annotations

import cv2
import numpy as np

from core.data.example import EXAMPLE_CLASSES, generate_arrays, make_example
from core.data.readers import load_dataset


def test_arrays_are_deterministic_and_well_formed():
    a = list(generate_arrays(n=6, size=48, seed=3))
    b = list(generate_arrays(n=6, size=48, seed=3))
    for (s1, l1, i1, m1, c1), (s2, l2, i2, m2, c2) in zip(a, b):
        assert (s1, l1, c1) == (s2, l2, c2)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(m1, m2)
        assert i1.shape == (48, 48, 3) and i1.dtype == np.uint8
        assert m1.shape == (48, 48) and m1.dtype == np.uint8
        assert set(np.unique(m1)) == {0, EXAMPLE_CLASSES.index(l1) + 1}


def test_image_does_not_depend_on_n():
    first = list(generate_arrays(n=2, size=32))[1]
    again = list(generate_arrays(n=5, size=32))[1]
    np.testing.assert_array_equal(first[2], again[2])


def test_ring_has_a_hole_and_some_ellipse_has_two_parts():
    holes, parts = 0, 0
    for _stem, label, _, mask, _ in generate_arrays(n=24, size=64):
        fg = (mask > 0).astype(np.uint8)
        n_fg = cv2.connectedComponents(fg, connectivity=8)[0] - 1
        n_bg = cv2.connectedComponents(1 - fg, connectivity=4)[0] - 1
        if label == "ring":
            holes += n_bg >= 2
        if label == "ellipse":
            parts = max(parts, n_fg)
    assert holes >= 1
    assert parts >= 2


def test_make_example_writes_a_readable_dataset(tmp_path):
    ds = make_example(tmp_path, n=6, size=32)
    assert len(ds) == 6 and ds.classmap.foreground == EXAMPLE_CLASSES
    for name in ("labels.csv", "classes.json", "simple.txt"):
        assert (tmp_path / name).is_file()
    again = load_dataset(tmp_path)
    assert again.stems == ds.stems
    assert [s.labels for s in again] == [s.labels for s in ds]
    np.testing.assert_array_equal(again[0].load_mask(), ds[0].load_mask())
    # a second call with the same parameters reuses the files
    before = (tmp_path / "images" / f"{ds.stems[0]}.png").stat().st_mtime_ns
    make_example(tmp_path, n=6, size=32)
    assert (tmp_path / "images" / f"{ds.stems[0]}.png").stat().st_mtime_ns == before
