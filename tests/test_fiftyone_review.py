"""The review loop's FiftyOne side (``gfn_fiftyone.review``) with real FiftyOne and its bundled MongoDB:
choosing the least reliable samples, the operators' registration, refusals before anything is sent
or written, and a human-mask field used as fixed labels by the next ``auto_label`` run. The Label
Studio round trip itself is ``tests/test_review_e2e.py`` (real server).

Isolation as in ``tests/test_fiftyone_plugin.py``: FiftyOne is pointed at temporary folders before it
is imported.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# FiftyOne is isolated once for the session by tests/conftest.py (a temporary database, plugins folder
# with this plugin linked in, datasets and runs folders), before any module imports it.
_TMP = Path(os.environ["GFN_FIFTYONE_TESTS_TMP"])
assert os.environ["FIFTYONE_DATABASE_DIR"] == str(_TMP / "db"), "FiftyOne must use the tests' own database"

fo = pytest.importorskip("fiftyone")

from core.data.example import make_example  # noqa: E402
from core.io.images import image_size, read_mask  # noqa: E402
from gfn_fiftyone import review  # noqa: E402
from gfn_fiftyone.autolabel import auto_label, make_config  # noqa: E402

PLUGIN = "@gfn-autolabel/gfn"
CLASSES = ("ellipse", "star")
TINY = {
    "init_options": {"coarse": "centre", "work_size": 48},
    "epochs": 1,
    "train.min_steps": 0,
    "batch_size": 4,
    "pretrained": False,
    "crop_size": 48,
    "max_side": None,
    "num_threads": 1,
    "postprocess": "none",
    "tta_flip": False,
    "network_options": {"aspp_channels": 16, "low_channels": 8},
    "stop.collapse_guard": False,
}
"""As ``tests/test_fiftyone_plugin.py``: seconds per run (mechanics only, the collapse guard off)."""


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("example"), n=8, size=48, classes=CLASSES)


def make_dataset(example) -> fo.Dataset:
    ds = fo.Dataset(f"gfn-review-{uuid.uuid4().hex[:8]}")
    ds.add_samples(
        [fo.Sample(filepath=str(s.image_path), ground_truth=fo.Classification(label=s.labels[0])) for s in example]
    )
    return ds


def run(ds, prefix: str = "gfn", **kw):
    config = make_config(init="grabcut", rounds=1, engine_options=TINY)
    return auto_label(ds, output_prefix=prefix, label_field="ground_truth", config=config, **kw)


@pytest.fixture(scope="module")
def labelled(example):
    ds = make_dataset(example)
    run(ds)
    yield ds
    ds.delete()


def _human(ds, sample_id: str, names: dict[int, str]) -> np.ndarray:
    """A 'corrected' mask unlike the engine's: a band of the sample's class, in ``names``' indices."""
    s = ds[sample_id]
    h, w = image_size(s.filepath)
    m = np.zeros((h, w), np.uint8)
    index = {n: i for i, n in names.items()}[s.ground_truth.label]
    m[h // 3 : (2 * h) // 3, :] = index
    return m


def test_the_plugin_registers_the_review_operators():
    from fiftyone.operators.registry import OperatorRegistry

    reg = OperatorRegistry()
    for name in ("send_to_labelstudio", "fetch_from_labelstudio", "auto_label"):
        assert reg.operator_exists(f"{PLUGIN}/{name}"), name


def test_review_view_is_the_least_reliable_first(labelled):
    view = review.review_view(labelled, prefix="gfn", n=3)
    rel = labelled.values("gfn_reliability")
    assert len(view) == 3
    assert view.values("gfn_reliability") == sorted(rel)[:3]
    assert len(review.review_view(labelled, prefix="gfn", n=None)) == len(labelled)
    with pytest.raises(ValueError, match="n must be"):
        review.review_view(labelled, prefix="gfn", n=0)
    with pytest.raises(ValueError, match="mask_field"):
        review.review_view(labelled, prefix="nope", n=3)


def test_send_refuses_before_contacting_anyone(labelled, monkeypatch):
    monkeypatch.delenv(review.URL_ENV, raising=False)
    monkeypatch.delenv(review.KEY_ENV, raising=False)
    with pytest.raises(ValueError, match="url and api_key missing"):
        review.send_to_labelstudio(labelled, prefix="gfn", n=2)


def test_fetch_never_writes_over_an_existing_field_unless_asked(labelled):
    labelled.add_sample_field("taken", fo.EmbeddedDocumentField, embedded_doc_type=fo.Segmentation)
    with pytest.raises(ValueError, match="'taken' exists.*overwrite=True"):
        review.fetch_from_labelstudio(labelled, project_id=1, human_field="taken", url="http://x", api_key="k")
    with pytest.raises(ValueError, match="holds.*not Segmentation"):
        review.fetch_from_labelstudio(
            labelled, project_id=1, human_field="gfn_reliability", url="http://x", api_key="k", overwrite=True
        )
    labelled.delete_sample_field("taken")


def test_brush_config_names_every_class():
    from labelstudio_backend.label_config import parse_label_config

    cfg = parse_label_config(review.brush_config(["horse", 'a "quoted" class']))
    assert list(cfg.classmap.foreground) == ["horse", 'a "quoted" class']


def test_next_run_keeps_the_human_masks_as_fixed_labels(example):
    """A human-mask field (its own mask targets, other index order) is the next run's fixed labels:
    the final masks of those samples are the human masks, in the run's indices."""
    ds = make_dataset(example)
    try:
        run(ds)
        worst = review.review_view(ds, prefix="gfn", n=2)
        names = {0: "background", 1: CLASSES[1], 2: CLASSES[0]}  # reversed against the run's class map
        human = {sid: _human(ds, sid, names) for sid in worst.values("id")}
        ds.set_values("human_masks", {s: fo.Segmentation(mask=m) for s, m in human.items()}, key_field="id")
        ds.mask_targets = {**ds.mask_targets, "human_masks": names}
        ds.save()
        out = run(ds, overwrite=True, fixed_field="human_masks")
        run_names = dict(ds.mask_targets["gfn"])
        for sid, mask in human.items():
            final = np.asarray(ds[sid]["gfn"].get_mask())
            expect = np.zeros_like(mask)
            for i, n in names.items():
                if i:
                    expect[mask == i] = {v: int(k) for k, v in run_names.items()}[n]
            assert (final == expect).all(), f"sample {sid}: the final mask is not the human mask"
        fixed_dir = Path(out["run_dir"]) / "fixed"
        assert len(list(fixed_dir.glob("*.png"))) == 2
        others = [sid for sid in ds.values("id") if sid not in human]
        assert all(ds[sid]["gfn"] is not None for sid in others)
        assert ds.get_run_info("gfn").config.n_fixed == 2
        for sid in human:  # the run folder's fixed labels are these masks
            stored = read_mask(fixed_dir / f"{Path(ds[sid].filepath).stem}.png")
            assert (stored == np.asarray(ds[sid]["gfn"].get_mask())).all()
    finally:
        ds.delete()


def test_a_human_mask_of_another_class_is_refused_naming_the_image(example):
    ds = make_dataset(example)
    try:
        sid = ds.first().id
        own = ds[sid].ground_truth.label
        other = next(c for c in CLASSES if c != own)
        names = {0: "background", 1: other}
        m = np.zeros(image_size(ds[sid].filepath), np.uint8)
        m[2:10, 2:10] = 1
        sample = ds[sid]
        sample["human_masks"] = fo.Segmentation(mask=m)
        sample.save()
        ds.mask_targets = {**ds.mask_targets, "human_masks": names}
        ds.save()
        with pytest.raises(ValueError, match=rf"{Path(ds[sid].filepath).stem}.*class index"):
            run(ds, fixed_field="human_masks")
        assert "gfn" not in ds.get_field_schema()
    finally:
        ds.delete()
