"""The FiftyOne plugin ``@gfn-autolabel/gfn`` with real FiftyOne and its bundled MongoDB.

Isolation: FiftyOne is pointed at a temporary database, plugins folder and dataset folder *before*
it is imported, so the user's datasets are never touched. Each test uses its own dataset (unique
name, deleted afterwards) built from the built-in example; engine settings are tiny (48 px images,
random-init narrow network, one epoch) so the module runs in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

if "fiftyone" in sys.modules:  # too late to isolate the database: never touch the user's datasets
    pytest.skip("fiftyone was imported before this module; run this test module on its own", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.mkdtemp(prefix="gfn_fiftyone_tests_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
(_TMP / "plugins").mkdir()
(_TMP / "plugins" / "gfn_fiftyone").symlink_to(ROOT / "gfn_fiftyone", target_is_directory=True)
os.environ.update(
    {
        "FIFTYONE_DATABASE_DIR": str(_TMP / "db"),
        "FIFTYONE_PLUGINS_DIR": str(_TMP / "plugins"),
        "FIFTYONE_DEFAULT_DATASET_DIR": str(_TMP / "datasets"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "GFN_FIFTYONE_RUNS_DIR": str(_TMP / "runs"),
    }
)

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
    assert len(list((tmp_path / "voc" / "SegmentationClass").glob("*.png"))) == len(ds)
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
        assert worst_masks_field(ds) == f"gfn_round_{summary['best_round']}_iou"
