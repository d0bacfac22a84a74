"""The review loop end to end against a REAL Label Studio 1.23.2 and real FiftyOne:

FiftyOne dataset -> ``auto_label`` (tiny settings) -> the 2 least reliable samples sent to a Label
Studio project with their masks as brush predictions -> a reviewer's corrected annotation posted
through Label Studio's API (encoded with label-studio-sdk's own RLE codec, not ours) -> brought back as
the ``human_masks`` field -> the next ``auto_label`` run keeps it: its final mask for that image is
the corrected mask.

Label Studio runs from its own virtualenv (``tests/labelstudio_harness.py``); when it is missing the
test FAILS (``make test`` runs ``scripts/setup_labelstudio.sh`` first). FiftyOne is isolated in
temporary folders as in ``tests/test_fiftyone_plugin.py``.
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
import fiftyone.operators as foo  # noqa: E402
from fiftyone.operators.executor import ExecutionError  # noqa: E402
from label_studio_sdk.converter.brush import mask2rle  # noqa: E402

from core.data.example import make_example  # noqa: E402
from core.io.images import image_size  # noqa: E402
from tests.labelstudio_harness import LabelStudioAPI, LabelStudioServer, prediction_mask  # noqa: E402

pytestmark = pytest.mark.slow

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
"""Seconds per run: the loop's plumbing is tested here, not the masks' quality (bench/review_bench.py)."""


def run_op(name: str, dataset, **params):
    res = foo.execute_operator(f"{PLUGIN}/{name}", ctx={"view": dataset.view(), "params": params})
    if res.error:
        raise AssertionError(f"{name}: {res.error}")
    return res.result


def brush_result(mask: np.ndarray, label: str) -> dict:
    """One brush region as a Label Studio client would post it (label-studio-sdk's RLE encoder)."""
    h, w = mask.shape
    rle = [int(v) for v in mask2rle(np.where(mask, 255, 0).astype(np.uint8))]
    return {
        "from_name": "tag",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": rle, "brushlabels": [label]},
    }


def test_review_loop_fiftyone_labelstudio_fiftyone_next_run(tmp_path):
    example = make_example(tmp_path / "example", n=6, size=64, classes=CLASSES)
    ds = fo.Dataset(f"gfn-review-e2e-{uuid.uuid4().hex[:8]}")
    ds.add_samples(
        [fo.Sample(filepath=str(s.image_path), ground_truth=fo.Classification(label=s.labels[0])) for s in example]
    )
    ls = LabelStudioServer(tmp_path)  # raises (test fails) when the venv is missing
    ls.start()
    api = LabelStudioAPI(ls.url, ls.token)
    params = {
        "label_field": "ground_truth",
        "output_prefix": "gfn",
        "init": "grabcut",
        "rounds": 1,
        "engine_options": TINY,
    }
    try:
        run_op("auto_label", ds, **params)
        worst = ds.sort_by("gfn_reliability").limit(2).values("id")

        # 1. FiftyOne -> Label Studio: the 2 least reliable, pre-annotated with the run's masks
        sent = run_op("send_to_labelstudio", ds, prefix="gfn", n=2, url=ls.url, api_key=ls.token)
        assert sent["n_tasks"] == 2 and sorted(s["sample_id"] for s in sent["samples"]) == sorted(worst)
        tasks = {t["data"]["gfn_sample_id"]: t for t in api.tasks(sent["project_id"])}
        assert sorted(tasks) == sorted(worst)
        run_classes = [ds.mask_targets["gfn"][i] for i in sorted(ds.mask_targets["gfn"]) if i != 0]
        for sid, task in tasks.items():
            preds = api.predictions(task["id"])
            assert len(preds) == 1 and preds[0]["model_version"] == "gfn-autolabel/gfn"
            ours = np.asarray(ds[sid]["gfn"].get_mask())
            decoded = prediction_mask(preds[0]["result"], run_classes, shape=ours.shape)
            assert (decoded == ours).all(), f"prediction of {sid} does not decode to the run's mask"

        # 2. the reviewer corrects one mask in Label Studio (posted through its API)
        sid = worst[0]
        label = ds[sid].ground_truth.label
        h, w = image_size(ds[sid].filepath)
        corrected = np.zeros((h, w), bool)
        corrected[h // 4 : (3 * h) // 4, w // 5 : (4 * w) // 5] = True
        corrected[h // 2 - 2 : h // 2 + 2, :] = False  # unlike anything the engine draws
        api.annotate(tasks[sid]["id"], [brush_result(corrected, label)])

        # 3. Label Studio -> FiftyOne
        back = run_op("fetch_from_labelstudio", ds, project_id=sent["project_id"], url=ls.url, api_key=ls.token)
        assert back["written"] == [sid] and back["without_annotation"] == [worst[1]]
        human = np.asarray(ds[sid]["human_masks"].get_mask())
        names = ds.mask_targets["human_masks"]
        idx = {v: int(k) for k, v in names.items()}[label]
        assert ((human == idx) == corrected).all() and set(np.unique(human)) <= {0, idx}
        assert ds[worst[1]]["human_masks"] is None
        with pytest.raises((AssertionError, ExecutionError), match="exists"):  # never written over unless asked
            run_op("fetch_from_labelstudio", ds, project_id=sent["project_id"], url=ls.url, api_key=ls.token)

        # 4. the next run keeps the corrected mask as a fixed label
        out = run_op("auto_label", ds, **params, overwrite=True, fixed_field="human_masks")
        final = np.asarray(ds[sid]["gfn"].get_mask())
        run_idx = {v: int(k) for k, v in ds.mask_targets["gfn"].items()}[label]
        assert ((final == run_idx) == corrected).all() and set(np.unique(final)) <= {0, run_idx}
        assert (Path(out["run_dir"]) / "fixed" / f"{Path(ds[sid].filepath).stem}.png").is_file()
    finally:
        api.close()
        ls.stop()
        ds.delete()
