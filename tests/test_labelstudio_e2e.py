"""End to end against a REAL Label Studio 1.23.2 (its own virtualenv, sqlite, loopback only).

Label Studio and ``gfn-autolabel serve-labelstudio`` (gunicorn, 2 workers) run as subprocesses.
The test creates a brush project, uploads the built-in example's images as files, connects the
backend through Label Studio's ML API, retrieves predictions and checks them against the
example's ground truth, asks for an interactive prediction, submits annotations, starts training
from Label Studio and checks that a new model version is served and used.

When the Label Studio venv is missing this test FAILS (``make test`` runs
``scripts/setup_labelstudio.sh`` first).
"""

from __future__ import annotations

import json
import logging
import re
import time

import numpy as np
import pytest

from core.classmap import ClassMap
from core.data.example import make_example
from labelstudio_backend.controls import BrushControl
from tests.labelstudio_harness import (
    CLASSES,
    BackendServer,
    LabelStudioAPI,
    LabelStudioServer,
    brush_config,
    choice_result,
    choices_config,
    iou,
    prediction_mask,
    wait_until,
)

log = logging.getLogger(__name__)

pytestmark = pytest.mark.slow

N_IMAGES = 12
IOU_FLOOR = 0.70
TRAINED_IOU_FLOOR = 0.60
"""The model trained on 3 human masks + 9 pseudo-labels (measured 0.874; all background, 0.0, while the
rounds trained on 192-px crops of these 96-px images, padding all around)."""
"""Mean foreground IoU of the first predictions (initial route, task labels given) over the 12
example images, plain and cluttered backgrounds; measured ~0.8 on this machine."""
# After the short training round (2 epochs = 4 SGD steps on 12 images) the IoU is only reported:
# so few steps leave the network's output nearly constant; training quality is bench/'s business.
CMAP = ClassMap.from_names(CLASSES)


def _stem(task: dict) -> str:
    # uploaded files are renamed "<8 hex>-<original name>"
    m = re.search(r"((?:ellipse|star|ring)_\d{4})\.png$", task["data"]["image"])
    assert m, task["data"]["image"]
    return m.group(1)


def _latest(api: LabelStudioAPI, task_id: int, version: str | None = None) -> dict:
    preds = [p for p in api.predictions(task_id) if version is None or p["model_version"] == version]
    assert preds, f"task {task_id}: no prediction{'' if version is None else ' of ' + version}"
    return max(preds, key=lambda p: p["id"])


def test_label_studio_end_to_end(tmp_path):
    ds = make_example(tmp_path / "example", n=N_IMAGES, size=96)
    by_stem = ds.by_stem()
    ls = LabelStudioServer(tmp_path)  # raises (test fails) when the venv is missing
    t0 = time.perf_counter()
    ls.start()
    print(f"\nLabel Studio up in {time.perf_counter() - t0:.1f}s")
    api = LabelStudioAPI(ls.url, ls.token)
    backend = BackendServer(
        tmp_path,
        {
            "LABEL_STUDIO_URL": ls.url,
            "LABEL_STUDIO_API_KEY": ls.token,
            "MODEL_DIR": str(tmp_path / "models"),
            "TRAIN_EPOCHS": "2",
            "TRAIN_MAX_SIDE": "96",
            # 12 synthetic 96-px shapes: the default recipe (four frozen ImageNet stages) shrinks their
            # masks in so few steps and the collapse guard refuses the version; paper 001's SGD recipe
            # learns them (real photos are the other way round: docs/RESULTS.md, "Backend recipe")
            "TRAIN_RECIPE": "sgd",
            "TORCH_THREADS": "1",
        },
        workers=2,
    )
    try:
        t0 = time.perf_counter()
        backend.start()
        print(f"backend up in {time.perf_counter() - t0:.1f}s")
        project = api.create_project("gfn-autolabel e2e", brush_config(prompts=True))
        api.upload(project, [s.image_path for s in ds])
        tasks = api.tasks(project)
        assert len(tasks) == N_IMAGES
        for t in tasks:  # the image-level label, as a task data field
            api.update_task_data(t["id"], {**t["data"], "label": by_stem[_stem(t)].labels[0]})

        ml = api.connect_backend(project, backend.url)
        assert ml["state"] == "CO", ml
        assert ml["model_version"] == "gfn-initial"

        # 1. predictions of the initial route, checked against the ground truth
        t0 = time.perf_counter()
        out = api.retrieve_predictions(project)
        print(f"{N_IMAGES} predictions retrieved in {time.perf_counter() - t0:.1f}s")
        assert out.get("processed_items") == N_IMAGES, out
        ious = {}
        for t in tasks:
            s = by_stem[_stem(t)]
            pred = _latest(api, t["id"], "gfn-initial")
            assert pred["result"], f"empty prediction for {s.stem}"
            assert {r["value"]["brushlabels"][0] for r in pred["result"]} == {s.labels[0]}
            mask = prediction_mask(pred["result"], CLASSES)
            assert mask.shape == (96, 96)
            ious[s.stem] = iou(mask > 0, s.load_mask() > 0)
        mean_iou = float(np.mean(list(ious.values())))
        print(
            f"\ninitial predictions: mean IoU {mean_iou:.3f} (floor {IOU_FLOOR}); per image "
            + ", ".join(f"{k} {v:.2f}" for k, v in ious.items())
        )
        assert mean_iou >= IOU_FLOOR, ious

        # 2. interactive: a box drawn around the object of a task
        t = tasks[0]
        gt = by_stem[_stem(t)].load_mask() > 0
        ys, xs = np.nonzero(gt)
        box = {
            "x": max(xs.min() - 3, 0) / 96 * 100,
            "y": max(ys.min() - 3, 0) / 96 * 100,
            "width": (xs.max() - xs.min() + 7) / 96 * 100,
            "height": (ys.max() - ys.min() + 7) / 96 * 100,
            "rectanglelabels": [by_stem[_stem(t)].labels[0]],
        }
        answer = api.interactive(
            ml["id"],
            t["id"],
            {
                "result": [
                    {
                        "type": "rectanglelabels",
                        "from_name": "box",
                        "to_name": "image",
                        "original_width": 96,
                        "original_height": 96,
                        "value": box,
                    }
                ]
            },
        )
        assert "data" in answer, answer
        boxed = prediction_mask(answer["data"]["result"], CLASSES)
        print(f"interactive box: IoU {iou(boxed > 0, gt):.3f}")
        assert iou(boxed > 0, gt) > 0.5

        # 3. annotations (the ground truth of one task per class) reach the backend through the webhook
        brush = BrushControl(from_name="tag", to_name="image", labels=CLASSES)
        annotated = {}
        for cls in CLASSES:
            t = next(t for t in tasks if by_stem[_stem(t)].labels[0] == cls)
            gt_mask = by_stem[_stem(t)].load_mask()
            api.annotate(t["id"], brush.to_results(gt_mask, CMAP.names, 1.0))
            annotated[str(t["id"])] = gt_mask
        human_dir = tmp_path / "models" / str(project) / "human"
        wait_until(
            lambda: all((human_dir / f"{tid}.png").exists() for tid in annotated),
            60,
            "human masks stored by the webhook",
            on_fail=backend.log_tail,
        )
        from core.io.images import read_mask

        for tid, gt_mask in annotated.items():
            assert np.array_equal(read_mask(human_dir / f"{tid}.png"), gt_mask)

        # 4. a second project whose image-level labels come from a <Choices> answer, not from task data
        _choices_project(api, backend, ds, tmp_path)

        # 5. training started from Label Studio; a new model version is served by every worker
        t0 = time.perf_counter()
        api.train(ml["id"])
        # Label Studio asks the backend (/setup) for its model version whenever the ML backend is read
        new_version = wait_until(
            lambda: (v := api.backend(ml["id"])["model_version"]) != "gfn-initial" and v,
            600,
            "a trained model version",
            interval=3,
            on_fail=backend.log_tail,
        )
        print(f"trained model version {new_version} after {time.perf_counter() - t0:.1f}s")
        assert api.versions(ml["id"]) == [new_version]
        out = api.retrieve_predictions(project)
        assert api.backend(ml["id"])["model_version"] == new_version
        trained_ious = []
        for t in tasks:
            s = by_stem[_stem(t)]
            pred = _latest(api, t["id"], new_version)
            mask = prediction_mask(pred["result"], CLASSES, (96, 96))
            assert set(np.unique(mask)) <= {0, CMAP.index(s.labels[0])}
            trained_ious.append(iou(mask > 0, s.load_mask() > 0))
        print(f"after training: mean IoU {np.mean(trained_ious):.3f} (floor {TRAINED_IOU_FLOOR})")
        assert np.mean(trained_ious) >= TRAINED_IOU_FLOOR, trained_ious
        info = json.loads((tmp_path / "models" / str(project) / "current.json").read_text())
        assert info["model_version"] == new_version
        assert (info["n_human"], info["n_pseudo"]) == (3, N_IMAGES - 3)

    except BaseException:
        print(backend.log_tail(120))
        print(ls.process.log_tail(60) if ls.process else "")
        raise
    finally:
        api.close()
        backend.stop()
        ls.stop()


def _choices_project(api: LabelStudioAPI, backend: BackendServer, ds, tmp_path) -> None:
    by_stem = ds.by_stem()
    picked = [next(s for s in ds if s.labels[0] == c) for c in CLASSES]
    project = api.create_project("gfn-autolabel choices", choices_config())
    api.upload(project, [s.image_path for s in picked])
    tasks = sorted(api.tasks(project), key=lambda t: t["id"])
    api.connect_backend(project, backend.url)
    answered, unanswered = tasks[:2], tasks[2]
    for t in answered:  # the annotator only picks the class; the webhook must not store an empty mask
        api.annotate(t["id"], choice_result(by_stem[_stem(t)].labels[0]))
    task_dir = tmp_path / "models" / str(project) / "tasks"
    wait_until(
        lambda: all((task_dir / f"{t['id']}.json").exists() for t in answered),
        60,
        "the chosen labels stored by the webhook",
        on_fail=backend.log_tail,
    )
    assert not list((tmp_path / "models" / str(project) / "human").glob("*.png"))
    out = api.retrieve_predictions(project)
    assert out.get("processed_items") == len(tasks), out
    for t in answered:
        s = by_stem[_stem(t)]
        pred = _latest(api, t["id"], "gfn-initial")
        assert {r["value"]["brushlabels"][0] for r in pred["result"]} == {s.labels[0]}, pred
        got = iou(prediction_mask(pred["result"], CLASSES) > 0, s.load_mask() > 0)
        print(f"<Choices> {s.labels[0]}: IoU {got:.3f}")
        assert got >= 0.5
    empty = _latest(api, unanswered["id"], "gfn-initial")
    assert empty["result"] == []  # no label anywhere and three classes: nothing to segment (the backend says why)
