"""The FiftyOne plugin ``@gfn-autolabel/gfn`` with real FiftyOne and its bundled MongoDB.

Isolation: FiftyOne is pointed at a temporary database, plugins folder and dataset folder *before*
it is imported, so the user's datasets are never touched. Each test uses its own dataset (unique
name, deleted afterwards) built from the built-in example; engine settings are tiny (48 px images,
random-init narrow network, one epoch) so the module runs in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
import fiftyone.operators as foo  # noqa: E402
from fiftyone.operators.executor import ExecutionError  # noqa: E402

from core.data.example import make_example  # noqa: E402
from core.io.images import read_mask  # noqa: E402

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
"""Engine settings for tests: no network in round 0, a narrow random-init GFN, one epoch. Such a network
learns nothing and its rounds collapse: the collapse guard is off for the plugin's plumbing (its test
turns it on)."""


def run_op(name: str, dataset, **params):
    """Execute ``@gfn-autolabel/gfn/<name>`` headless on the whole dataset; returns the result dict."""
    delegate = params.pop("request_delegation", False)
    res = foo.execute_operator(
        f"{PLUGIN}/{name}", ctx={"view": dataset.view(), "params": params, "request_delegation": delegate}
    )
    return res.result


def auto_label_params(**over):
    p = {
        "label_field": "ground_truth",
        "init": "grabcut",
        "rounds": 1,
        "output_prefix": "gfn",
        "gt_field": "gt",
        "engine_options": TINY,
    }
    p.update(over)
    return p


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("example"), n=8, size=48, classes=CLASSES)


def make_dataset(example, samples=None) -> fo.Dataset:
    """A FiftyOne dataset of the example: ``ground_truth`` (Classification), ``gt`` (Segmentation files)."""
    ds = fo.Dataset(f"gfn-test-{uuid.uuid4().hex[:8]}")
    ds.add_samples(
        [
            fo.Sample(
                filepath=str(s.image_path),
                ground_truth=fo.Classification(label=s.labels[0]),
                gt=fo.Segmentation(mask_path=str(s.mask_path)),
            )
            for s in (samples if samples is not None else example)
        ]
    )
    ds.mask_targets = {"gt": example.classmap.to_dict()}
    ds.save()
    return ds


@pytest.fixture
def dataset(example):
    ds = make_dataset(example)
    yield ds
    ds.delete()


@pytest.fixture(scope="module")
def labelled(example):
    """One dataset labelled once (round 0 + 1 round), shared by the read-only tests."""
    ds = make_dataset(example)
    summary = run_op("auto_label", ds, **auto_label_params())
    yield ds, summary
    ds.delete()


# ---------------------------------------------------------------------------------------- plugin
def test_plugin_is_found_with_its_operators_and_panel():
    import fiftyone.plugins as fop
    from fiftyone.operators.registry import OperatorRegistry

    assert PLUGIN in [p.name for p in fop.list_plugins()]
    definition = fop.get_plugin(PLUGIN)
    assert definition.author and definition.description and "segmentation" in definition.tags
    assert (Path(definition.directory) / "README.md").is_file()
    reg = OperatorRegistry()
    for name in ("auto_label", "evaluate_rounds", "export_labels", "apply_model", "gfn_runs"):
        assert reg.operator_exists(f"{PLUGIN}/{name}"), name


def test_install_links_the_plugin_and_fiftyone_lists_it(tmp_path):
    env = {**os.environ, "FIFTYONE_PLUGINS_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "core", "fiftyone", "install", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    link = tmp_path / "gfn_fiftyone"
    assert link.is_symlink() and (link / "fiftyone.yml").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "core", "fiftyone", "install", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stderr  # already linked: nothing to do
    fiftyone_cli = Path(sys.executable).parent / "fiftyone"
    if not fiftyone_cli.is_file():
        pytest.skip(f"no fiftyone command beside {sys.executable}")
    listed = subprocess.run([str(fiftyone_cli), "plugins", "list"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert PLUGIN in listed.stdout, listed.stdout + listed.stderr


# ------------------------------------------------------------------------------------ auto_label
def test_auto_label_writes_one_field_per_round_and_the_best(labelled):
    ds, summary = labelled
    assert summary["rounds"] == [0, 1]
    schema = ds.get_field_schema()
    for k in (0, 1):
        for name in (f"gfn_round_{k}", f"gfn_round_{k}_reliability", f"gfn_round_{k}_changed"):
            assert name in schema, name
    assert "gfn" in schema and "gfn_reliability" in schema
    expected = {0: "background", 1: "ellipse", 2: "star"}
    for f in ("gfn", "gfn_round_0", "gfn_round_1"):
        assert ds.mask_targets[f] == expected
    run_dir = Path(summary["run_dir"])
    for sample in ds:
        stem = Path(sample.filepath).stem
        seg = sample["gfn_round_1"]
        assert seg.mask is None and Path(seg.mask_path) == run_dir / "round_01" / "masks" / f"{stem}.png"
        assert seg.get_mask().shape == (48, 48)
        best = summary["best_round"]
        assert (
            Path(sample["gfn"].mask_path).read_bytes()
            == (run_dir / f"round_{best:02d}" / "masks" / f"{stem}.png").read_bytes()
        )
        assert 0.0 <= sample["gfn_round_1_reliability"] <= 1.0
        assert 0.0 <= sample["gfn_round_1_changed"] <= 1.0
        assert sample["gfn_round_0_changed"] is None


def test_the_run_is_stored_with_its_config_and_metrics(labelled):
    ds, summary = labelled
    assert ds.list_runs() == ["gfn"]
    cfg = ds.get_run_info("gfn").config
    assert cfg.method == "gfn_autolabel" and cfg.status == "completed"
    assert cfg.label_field == "ground_truth" and cfg.gt_field == "gt"
    assert cfg.engine["rounds"] == 1 and cfg.engine["init"]["route"] == "grabcut"
    assert cfg.run_dir == summary["run_dir"]
    res = ds.load_run_results("gfn")
    assert [r["round"] for r in res.rounds] == [0, 1]
    assert all(0.0 <= r["miou"] <= 1.0 for r in res.rounds)  # gt given: the engine reports mIoU
    assert res.best_round == summary["best_round"]


def test_a_collapsed_run_is_reported_in_the_result_the_log_and_the_run(dataset, monkeypatch, caplog):
    import core.refine.filters as filters
    from gfn_fiftyone import runs
    from gfn_fiftyone.operators import AutoLabel

    monkeypatch.setattr(filters, "consistent_mask", lambda mask, allowed: np.zeros_like(mask))  # every mask empty
    with caplog.at_level("ERROR", logger="gfn_fiftyone.autolabel"):
        guarded = {**TINY, "stop.collapse_guard": True}
        out = run_op("auto_label", dataset, **auto_label_params(rounds=0, engine_options=guarded))
    assert out["status"] == "collapsed" and out["warning"].startswith("the run collapsed: 100% of the kept masks")
    assert [r for r in caplog.records if "the run collapsed" in r.getMessage()]
    assert dataset.get_run_info("gfn").config.outcome == "collapsed"
    record = runs.load_record(dataset, "gfn")
    assert record.status == runs.COMPLETED and record.outcome == "collapsed"
    view = AutoLabel().resolve_output(type("Ctx", (), {"results": out})())
    note = view.type.properties["status_note"].view
    assert type(note).__name__ == "Error" and note.description == out["warning"]


def test_second_prefix_leaves_the_first_run_alone(labelled):
    ds, _ = labelled
    before = ds.first()["gfn_round_1"].mask_path
    out = run_op("auto_label", ds, **auto_label_params(output_prefix="quick", rounds=0))
    try:
        assert out["rounds"] == [0]
        assert sorted(ds.list_runs()) == ["gfn", "quick"]
        assert ds.first()["gfn_round_1"].mask_path == before
        assert ds.get_run_info("gfn").config.status == "completed"
        assert "quick_round_0" in ds.get_field_schema() and "quick_round_1" not in ds.get_field_schema()
    finally:
        from gfn_fiftyone.autolabel import clear_outputs
        from gfn_fiftyone.naming import RunNames

        clear_outputs(ds, RunNames("quick"))
    assert ds.list_runs() == ["gfn"]


def test_existing_outputs_are_refused_unless_overwrite(dataset):
    run_op("auto_label", dataset, **auto_label_params(rounds=0))
    with pytest.raises(ExecutionError, match="overwrite"):
        run_op("auto_label", dataset, **auto_label_params(rounds=0))
    dataset.add_sample_field("taken_round_0", fo.FloatField)  # a field that only looks like ours
    with pytest.raises(ExecutionError, match="taken_round_0"):
        run_op("auto_label", dataset, **auto_label_params(rounds=0, output_prefix="taken"))
    out = run_op("auto_label", dataset, **auto_label_params(rounds=0, overwrite=True))
    assert out["rounds"] == [0] and dataset.list_runs() == ["gfn"]


def test_missing_label_field_is_an_error_naming_it(dataset):
    with pytest.raises(ExecutionError, match=r"label_field 'nope' does not exist.*ground_truth"):
        run_op("auto_label", dataset, **auto_label_params(label_field="nope", rounds=0))
    with pytest.raises(ExecutionError, match="output_prefix"):
        run_op("auto_label", dataset, **auto_label_params(output_prefix="not valid", rounds=0))
    assert dataset.list_runs() == []


def test_unusable_samples_are_listed_and_skipped_only_on_request(example, tmp_path):
    missing = tmp_path / "gone.png"
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    ds = make_dataset(example)
    try:
        ds.add_samples(
            [
                fo.Sample(filepath=str(missing), ground_truth=fo.Classification(label="star")),
                fo.Sample(filepath=str(broken), ground_truth=fo.Classification(label="star")),
                fo.Sample(filepath=str(example[0].image_path)),
            ]
        )  # no label
        with pytest.raises(ExecutionError) as err:
            run_op("auto_label", ds, **auto_label_params(rounds=0))
        msg = str(err.value)
        assert "3 sample(s) cannot be labelled" in msg and "skip_missing" in msg
        assert "gone.png: file not found" in msg and "broken.png: not a readable image" in msg
        assert "no label in 'ground_truth'" in msg
        out = run_op("auto_label", ds, **auto_label_params(rounds=0, skip_missing=True))
        assert sorted(Path(s["path"]).name for s in out["skipped"]) == sorted(
            ["broken.png", "gone.png", example[0].image_path.name]
        )
        assert out["n_samples"] == len(example)
        assert ds.match(fo.ViewField("filepath") == str(missing)).first()["gfn_round_0"] is None
        assert ds.exists("gfn_round_0").count() == len(example)
    finally:
        ds.delete()


def test_label_for_all_images_without_a_label_field(example, tmp_path):
    ds = make_dataset(example, [s for s in example if s.labels[0] == "star"])
    try:
        out = run_op("auto_label", ds, **auto_label_params(label_field=None, label="star", gt_field=None, rounds=0))
        assert out["rounds"] == [0]
        assert ds.mask_targets["gfn"] == {0: "background", 1: "star"}
    finally:
        ds.delete()


def test_auto_label_writes_rounds_from_the_runner_without_reading_the_run_folder_back(dataset, monkeypatch):
    import core.refine.runner as runner
    from gfn_fiftyone.autolabel import auto_label, make_config

    def no_reload(*args, **kwargs):
        raise AssertionError("auto_label re-read the run folder during the run")

    monkeypatch.setattr(runner, "load_run", no_reload)
    reports, fields_at_report = [], {}

    def progress(fraction, label):
        reports.append((fraction, label))
        if label.endswith(" finished"):
            fields_at_report[label] = set(dataset.get_field_schema())

    config = make_config(init="grabcut", rounds=1, engine_options=TINY)
    summary = auto_label(
        dataset, output_prefix="gfn", label_field="ground_truth", gt_field="gt", config=config, progress=progress
    )
    assert summary["rounds"] == [0, 1]
    for k in (0, 1):
        assert f"gfn_round_{k}" in fields_at_report[f"round {k} finished"]  # written before the report
        assert dataset.exists(f"gfn_round_{k}").count() == len(dataset)
    assert all(0.0 <= f <= 1.0 for f, _ in reports) and reports[-1][0] == 1.0
    assert (0.5, "round 0 finished") in reports and (1.0, "round 1 finished") in reports


# -------------------------------------------------------------------------------------- resume
def test_stopped_run_resumes_from_its_last_finished_round_as_delegated_operation(dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    from gfn_fiftyone.autolabel import auto_label, make_config

    class Stop(Exception):
        pass

    def stop_after_round_0(fraction, label):
        if label == "round 0 finished":
            raise Stop(label)

    config = make_config(init="grabcut", rounds=1, engine_options=TINY)
    with pytest.raises(Stop):
        auto_label(
            dataset,
            output_prefix="gfn",
            label_field="ground_truth",
            gt_field="gt",
            config=config,
            progress=stop_after_round_0,
        )
    assert dataset.get_run_info("gfn").config.status == "failed"
    run_dir = Path(dataset.get_run_info("gfn").config.run_dir)
    round0 = sorted(run_dir.glob("round_00/masks/*.png"))
    stamps = [p.stat().st_mtime_ns for p in round0]
    assert round0 and not (run_dir / "round_01" / "DONE").exists()
    assert "gfn_round_0" in dataset.get_field_schema()  # finished rounds are visible at once

    queued = run_op("auto_label", dataset, **auto_label_params(request_delegation=True))
    assert queued["run_state"] == "queued"
    done = DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    assert len(done) == 1 and not done[0].error, done[0].error
    assert done[0].result["resumed"] is True and done[0].result["rounds"] == [0, 1]
    assert [p.stat().st_mtime_ns for p in round0] == stamps  # round 0 was not redone
    assert dataset.get_run_info("gfn").config.status == "completed"
    assert dataset.exists("gfn_round_1").count() == len(dataset)


# ----------------------------------------------------------------------------- evaluate / export
def test_evaluate_rounds_matches_core_metrics(labelled, example):
    from core.metrics import evaluate_masks

    ds, summary = labelled
    out = run_op("evaluate_rounds", ds, output_prefix="gfn", gt_field="gt")["evaluations"]
    assert sorted(out) == ["0", "1"]
    run_dir = Path(summary["run_dir"])
    for k in (0, 1):
        pred = {p.stem: p for p in (run_dir / f"round_{k:02d}" / "masks").glob("*.png")}
        gt = {s.stem: s.mask_path for s in example}
        ref = evaluate_masks(pred, gt, 3, class_names=["background", *CLASSES])
        assert out[str(k)]["miou"] == pytest.approx(ref.miou)
        assert out[str(k)]["per_class_iou"] == pytest.approx(ref.per_class_iou)
        assert f"gfn_round_{k}_eval" in ds.list_evaluations()
        ious = dict(zip((Path(p).stem for p in ds.values("filepath")), ds.values(f"gfn_round_{k}_iou")))
        assert ious == pytest.approx(ref.per_image_iou)
    worst = ds.sort_by("gfn_round_1_iou").first()
    assert worst["gfn_round_1_iou"] == min(ds.values("gfn_round_1_iou"))
    assert ds.load_run_results("gfn").evaluations["1"]["miou"] == pytest.approx(out["1"]["miou"])
    with pytest.raises(ExecutionError, match="overwrite"):
        run_op("evaluate_rounds", ds, output_prefix="gfn", gt_field="gt")
    run_op("evaluate_rounds", ds, output_prefix="gfn", gt_field="gt", overwrite=True)


def test_export_coco_loads_with_pycocotools_and_equals_the_masks(labelled, tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    ds, summary = labelled
    dst = tmp_path / "labels.json"
    out = run_op("export_labels", ds, output_prefix="gfn", round="1", format="coco", path=str(dst))
    assert Path(out["path"]) == dst and out["round"] == 1
    coco = COCO(str(dst))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    masks_dir = Path(summary["run_dir"]) / "round_01" / "masks"
    for img in coco.loadImgs(coco.getImgIds()):
        rebuilt = np.zeros((img["height"], img["width"]), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            m = mask_utils.decode(coco.annToRLE(ann)).astype(bool)
            rebuilt[m] = ["background", *CLASSES].index(names[ann["category_id"]])
        assert np.array_equal(rebuilt, read_mask(masks_dir / f"{Path(img['file_name']).stem}.png"))
    with pytest.raises(ExecutionError, match="overwrite"):
        run_op("export_labels", ds, output_prefix="gfn", round="1", format="coco", path=str(dst))
    voc = run_op("export_labels", ds, output_prefix="gfn", format="voc", path=str(tmp_path / "voc"))
    assert len(list((tmp_path / "voc").rglob("SegmentationClass/*.png"))) == len(ds)
    assert voc["round"] == summary["best_round"]


def test_apply_model_writes_a_segmentation_field(labelled):
    ds, _ = labelled
    out = run_op("apply_model", ds, output_prefix="gfn", output_field="applied", label_field="ground_truth")
    assert out["n_images"] == len(ds)
    assert ds.mask_targets["applied"] == {0: "background", 1: "ellipse", 2: "star"}
    for sample in ds:
        mask = sample["applied"].get_mask()
        assert mask.shape == (48, 48) and set(np.unique(mask)) <= {0, CLASSES.index(sample.ground_truth.label) + 1}
        assert 0.0 <= sample["applied_reliability"] <= 1.0
    with pytest.raises(ExecutionError, match="overwrite"):
        run_op("apply_model", ds, output_prefix="gfn", output_field="applied")


def test_panel_summarises_every_run(labelled):
    from gfn_fiftyone.panel import collect, worst_masks_field

    ds, summary = labelled
    rows, miou, changed = collect(ds)
    assert [r["run"] for r in rows] == ["gfn"] and rows[0]["status"] == "completed"
    assert miou[0]["x"] == [0, 1] and all(v is not None for v in miou[0]["y"])
    assert changed[0]["y"][1] is not None
    json.dumps([rows, miou, changed])  # panel state must be JSON
    if ds.get_field("gfn_round_1_iou") is not None:  # evaluated by the test above
        assert worst_masks_field(ds) == (f"gfn_round_{summary['best_round']}_iou", "iou")


# ------------------------------------------------------------------------ label-free review signals
def test_confidence_heatmaps_subscores_and_dropped_tag_come_from_the_run_folder(labelled):
    from core.refine import rundir
    from core.refine.records import read_scores
    from gfn_fiftyone.signals import confidence_map

    ds, summary = labelled
    run_dir = Path(summary["run_dir"])
    best = summary["best_round"]
    assert {"gfn_confidence", "gfn_margin", "gfn_agreement", "gfn_stability", "gfn_area_ratio"} <= set(
        summary["fields"]
    )
    records = {k: read_scores(run_dir / f"round_{k:02d}")[0] for k in (0, 1)}
    for sample in ds:
        stem = Path(sample.filepath).stem
        for k in (0, 1):
            heat = sample[f"gfn_round_{k}_confidence"]
            assert isinstance(heat, fo.Heatmap) and list(heat.range) == [0, 255]
            assert Path(heat.map_path) == run_dir / "fiftyone_confidence" / f"round_{k:02d}" / f"{stem}.png"
            want = confidence_map(rundir.load_probs(run_dir / f"round_{k:02d}" / "probs" / f"{stem}.npz"))
            np.testing.assert_array_equal(read_mask(heat.map_path), want)
        assert sample["gfn_confidence"].map_path == sample[f"gfn_round_{best}_confidence"].map_path
        rec = records[best][stem]
        assert sample["gfn_margin"] == pytest.approx(rec.margin)
        assert sample["gfn_agreement"] == pytest.approx(rec.agreement)
        assert sample["gfn_area_ratio"] == pytest.approx(rec.area_ratio)
        assert (sample["gfn_stability"] is None) == (rec.stability is None)
        assert ("gfn_dropped" in sample.tags) == (not rec.train_next)
    dropped = [s for s, r in records[best].items() if not r.train_next]
    assert dropped, "the filters drop the least reliable fraction: some sample must be tagged"
    assert summary["n_dropped"] == len(dropped) == len(ds.match_tags("gfn_dropped"))


def test_worst_first_is_ordered_by_reliability_without_ground_truth(dataset):
    from gfn_fiftyone.panel import worst_first_view, worst_masks_field

    assert worst_masks_field(dataset) == (None, None)
    run_op("auto_label", dataset, **auto_label_params(rounds=0, gt_field=None))
    field, kind = worst_masks_field(dataset)
    assert (field, kind) == ("gfn_reliability", "reliability")
    ordered = worst_first_view(dataset, field).values(field)
    assert ordered == sorted(dataset.values(field)) and len(ordered) == len(dataset)


# ------------------------------------------------------------------- overwrite swaps in on success
def test_a_failing_overwrite_leaves_the_old_run_fields_and_files_untouched(dataset):
    from gfn_fiftyone.autolabel import auto_label, make_config

    first = run_op("auto_label", dataset, **auto_label_params(rounds=0))
    run_dir = Path(first["run_dir"])
    before = {f: dataset.values(f) for f in first["fields"]}
    mask_bytes = {p: Path(p).read_bytes() for p in dataset.values("gfn.mask_path")}
    tagged = dataset.match_tags("gfn_dropped").values("id")

    class Boom(Exception):
        pass

    def fail_after_round_0(fraction, label):
        if label == "round 0 finished":
            raise Boom("simulated failure of the new run")

    config = make_config(init="grabcut", rounds=1, engine_options=TINY)
    with pytest.raises(Boom):
        auto_label(
            dataset,
            output_prefix="gfn",
            label_field="ground_truth",
            gt_field="gt",
            config=config,
            overwrite=True,
            progress=fail_after_round_0,
        )
    for f, values in before.items():  # every field exactly as before, its files still there
        assert dataset.values(f) == values, f
    assert {p: Path(p).read_bytes() for p in mask_bytes} == mask_bytes
    assert dataset.match_tags("gfn_dropped").values("id") == tagged
    assert dataset.get_run_info("gfn").config.status == "completed"
    assert dataset.load_run_results("gfn").rounds[-1]["round"] == 0
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["gfn"]  # no staging folder left

    out = run_op("auto_label", dataset, **auto_label_params(rounds=1, overwrite=True))
    assert out["rounds"] == [0, 1] and out["run_dir"] == str(run_dir)
    assert all(Path(p).parent == run_dir / "round_01" / "masks" for p in dataset.values("gfn_round_1.mask_path"))
    assert all(Path(p).is_file() for p in dataset.values("gfn.mask_path"))
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["gfn"]


# ----------------------------------------------------------------------- export of the current view
@pytest.fixture
def edited(labelled):
    """``gfn_edit``: a copy of the best masks where the first sample's mask was replaced (an edit made
    after the run, stored in the database as FiftyOne stores masks drawn in the App or set in Python)."""
    ds, _ = labelled
    ds.clone_sample_field("gfn", "gfn_edit")
    ds.mask_targets = {**ds.mask_targets, "gfn_edit": ds.mask_targets["gfn"]}
    ds.save()
    first = ds.first()
    edit = np.zeros((48, 48), np.uint8)
    edit[10:30, 5:25] = CLASSES.index(first.ground_truth.label) + 1
    first["gfn_edit"] = fo.Segmentation(mask=edit)
    first.save()
    yield ds, first.id, edit
    ds.delete_sample_field("gfn_edit")
    ds.mask_targets = {k: v for k, v in ds.mask_targets.items() if k != "gfn_edit"}
    ds.save()


def _view_of_three(ds, first_id):
    return ds.select([first_id, *ds.skip(1).limit(2).values("id")])


def test_export_png_is_fiftyones_segmentation_directory_of_the_view_with_edits(edited, tmp_path):
    ds, first_id, edit = edited
    view = _view_of_three(ds, first_id)
    out = foo.execute_operator(
        f"{PLUGIN}/export_labels",
        ctx={"view": view, "params": {"field": "gfn_edit", "format": "png", "path": str(tmp_path / "png")}},
    ).result
    assert out["n_images"] == 3 and out["exporter"] == "fiftyone.ImageSegmentationDirectory"
    assert json.loads((tmp_path / "png" / "mask_targets.json").read_text()) == {
        "0": "background",
        "1": "ellipse",
        "2": "star",
    }
    back = fo.Dataset.from_dir(
        dataset_dir=str(tmp_path / "png"), dataset_type=fo.types.ImageSegmentationDirectory, label_field="seg"
    )
    try:
        assert len(back) == 3
        got = {Path(s.filepath).stem: s["seg"].get_mask() for s in back}
        for sample in view:
            np.testing.assert_array_equal(got[Path(sample.filepath).stem], sample["gfn_edit"].get_mask())
        np.testing.assert_array_equal(got[Path(ds[first_id].filepath).stem], edit)  # the edit, not the run file
    finally:
        back.delete()


def test_export_coco_of_the_view_rle_is_exact_and_polygons_go_through_fiftyone(edited, tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    ds, first_id, _ = edited
    view = _view_of_three(ds, first_id)
    want = {Path(s.filepath).name: s["gfn_edit"].get_mask() for s in view}
    for polygons in (False, True):
        dst = tmp_path / f"coco_{polygons}.json"
        params = {"field": "gfn_edit", "format": "coco", "polygons": polygons, "path": str(dst)}
        out = foo.execute_operator(f"{PLUGIN}/export_labels", ctx={"view": view, "params": params}).result
        assert out["exporter"] == ("fiftyone.COCODetectionDataset" if polygons else "core.formats")
        coco = COCO(str(dst))
        names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        assert sorted(Path(i["file_name"]).name for i in coco.loadImgs(coco.getImgIds())) == sorted(want)
        for img in coco.loadImgs(coco.getImgIds()):
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
            assert len({a["category_id"] for a in anns}) == len(anns)  # one object per image and class
            rebuilt = np.zeros((img["height"], img["width"]), np.uint8)
            for ann in anns:
                rebuilt[mask_utils.decode(coco.annToRLE(ann)).astype(bool)] = 1 + CLASSES.index(
                    names[ann["category_id"]]
                )
            mask = want[Path(img["file_name"]).name]
            if not polygons:
                np.testing.assert_array_equal(rebuilt, mask)
            else:  # polygons approximate the outline (1 px tolerance)
                inter = np.logical_and(rebuilt > 0, mask > 0).sum()
                union = np.logical_or(rebuilt > 0, mask > 0).sum()
                assert union == 0 or inter / union > 0.8


def test_export_checks_every_mask_before_writing_anything(edited, tmp_path):
    ds, first_id, _ = edited
    sample = ds[first_id]
    sample["gfn_edit"] = fo.Segmentation(mask=np.full((48, 48), 7, np.uint8))  # class 7: not a target
    sample.save()
    dst = tmp_path / "out.json"
    with pytest.raises(ExecutionError, match=r"class indices \[7\] outside its mask targets 0\.\.2"):
        foo.execute_operator(
            f"{PLUGIN}/export_labels",
            ctx={"view": ds.view(), "params": {"field": "gfn_edit", "format": "coco", "path": str(dst)}},
        )
    assert not dst.exists() and list(tmp_path.iterdir()) == []
    dst.write_text("kept")
    with pytest.raises(ExecutionError, match="already exists"):
        foo.execute_operator(
            f"{PLUGIN}/export_labels",
            ctx={"view": ds.view(), "params": {"field": "gfn", "format": "coco", "path": str(dst)}},
        )
    assert dst.read_text() == "kept"


# ----------------------------------------------------------------------------- App progress, forms
def _app_ctx(dataset, operator: str, params: dict):
    """An execution context as the App's request makes it (the request names the operator)."""
    from fiftyone.operators.executor import ExecutionContext, Executor

    uri = f"{PLUGIN}/{operator}"
    request = {"dataset_name": dataset.name, "view": dataset.view()._serialize(), "operator_uri": uri, "params": params}
    return ExecutionContext(request_params=request, executor=Executor(), operator_uri=uri)


def test_immediate_runs_from_the_app_stream_progress_then_the_output(dataset):
    from gfn_fiftyone.operators import AutoLabel

    ctx = _app_ctx(dataset, "auto_label", auto_label_params(rounds=1))
    messages = [m.body for m in AutoLabel().execute(ctx)]
    kinds = [m.operator_uri for m in messages]
    assert kinds[-2:] == ["reload_dataset", "show_output"] and set(kinds[:-2]) == {"set_progress"}
    fractions = [m.params["progress"] for m in messages if m.operator_uri == "set_progress"]
    assert len(fractions) >= 4 and fractions == sorted(fractions) and fractions[-1] == 1.0
    labels = [m.params["label"] for m in messages if m.operator_uri == "set_progress"]
    assert "round 0 finished" in labels and "round 1 finished" in labels
    result = messages[-1].params["results"]
    assert result["rounds"] == [0, 1] and dataset.exists("gfn_round_1").count() == len(dataset)
    assert "best_round" in messages[-1].params["outputs"]["type"]["properties"]

    notes = []
    with pytest.raises(ValueError, match="label_field 'gt'"):  # FiftyOne's server logs the raised error
        bad = auto_label_params(label_field="gt", output_prefix="other")
        for m in AutoLabel().execute(_app_ctx(dataset, "auto_label", bad)):
            notes.append(m.body)
    assert notes[-1].operator_uri == "notify" and notes[-1].params["variant"] == "error"
    assert "label_field 'gt'" in notes[-1].params["message"]  # ... and the App shows it


def test_forms_mark_bad_inputs_invalid_before_submit(labelled):
    from gfn_fiftyone.operators import ApplyModel, AutoLabel, ExportLabels

    ds, _ = labelled

    def errors(op, name, **params):
        props = op.resolve_input(_app_ctx(ds, name, params)).type.properties
        return {k: p.error_message for k, p in props.items() if getattr(p, "invalid", False)}

    assert errors(AutoLabel(), "auto_label", label_field="ground_truth", output_prefix="fresh") == {}
    assert "output_prefix" in errors(AutoLabel(), "auto_label", label_field="ground_truth", output_prefix="1x")
    taken = errors(AutoLabel(), "auto_label", label_field="ground_truth", output_prefix="gfn")
    assert "run 'gfn' exists" in taken["output_prefix"]
    assert errors(AutoLabel(), "auto_label", label_field="ground_truth", output_prefix="gfn", overwrite=True) == {}
    assert "not both" in errors(AutoLabel(), "auto_label", label_field="ground_truth", label="star")["label"]
    assert "choose a Classification" in errors(AutoLabel(), "auto_label", output_prefix="fresh")["label_field"]
    assert (
        "holds Segmentation"
        in errors(AutoLabel(), "auto_label", label_field="gt", output_prefix="fresh")["label_field"]
    )
    assert "no finished round" in errors(ExportLabels(), "export_labels", output_prefix="gfn", round="9")["round"] or (
        "no field for round 9" in errors(ExportLabels(), "export_labels", output_prefix="gfn", round="9")["round"]
    )
    assert "coco format only" in errors(ExportLabels(), "export_labels", format="voc", polygons=True)["polygons"]
    assert "exist" in errors(ApplyModel(), "apply_model", output_prefix="gfn", output_field="gfn")["output_field"]
    with pytest.raises(ExecutionError, match=r"Path: output_prefix\. Reason: run 'gfn' exists"):
        run_op("auto_label", ds, **auto_label_params())
