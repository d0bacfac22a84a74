"""The ML backend's routes through FastAPI's TestClient, with a stand-in Label Studio file server.

Predictions before any training use the real engine (``initial_mask_for_image``) and are compared
pixel for pixel with a direct engine call; one test trains a real GFN for one epoch. Tests of the
adapter's own plumbing (model versions, label filtering, /train) use a light engine stand-in.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.classmap import ClassMap
from core.data.example import make_example
from labelstudio_backend.app import create_app
from labelstudio_backend.controls import BrushControl
from labelstudio_backend.engine import Engine, TrainOutcome
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ProjectStore
from tests.labelstudio_harness import (
    CLASSES,
    TOKEN,
    FakeLabelStudio,
    brush_config,
    decode_brush,
    iou,
    polygon_config,
    prediction_mask,
)

LS_URL = "http://ls.test:8080"
CMAP = ClassMap.from_names(CLASSES)
BRUSH = BrushControl(from_name="tag", to_name="image", labels=CLASSES)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    ds = make_example(tmp_path_factory.mktemp("example"), n=6, size=96)
    files = {f"/data/upload/1/{s.stem}.png": Path(s.image_path).read_bytes() for s in ds}
    return ds, files


@pytest.fixture(scope="module")
def real_engine_settings(tmp_path_factory):
    return BackendSettings(
        label_studio_url=LS_URL,
        api_key=TOKEN,
        model_dir=tmp_path_factory.mktemp("models"),
        train_epochs=1,
        train_max_side=96,
        torch_threads=1,
    )


@pytest.fixture(scope="module")
def real_engine(real_engine_settings):
    return Engine(real_engine_settings)


def tasks_of(ds, ids=None, label=True):
    out = []
    for i, s in enumerate(ds):
        if ids is not None and i not in ids:
            continue
        data = {"image": f"/data/upload/1/{s.stem}.png"}
        if label:
            data["label"] = s.labels[0]
        out.append({"id": i + 1, "data": data})
    return out


def client_for(settings, files, engine=None):
    return TestClient(
        create_app(
            settings,
            engine=engine,
            transport=FakeLabelStudio(files).transport(),
            resolver=lambda host: ["93.184.216.34"],
        )
    )


def predict(client, tasks, config=None, context=None, project="1.1700000000"):
    return client.post(
        "/predict",
        json={
            "tasks": tasks,
            "project": project,
            "label_config": config or brush_config(),
            "params": {"login": None, "password": None, "context": context},
        },
    )


class StubEngine(Engine):
    """Engine stand-in: a fixed two-class mask, instant 'training' writing a small file."""

    def __init__(self, settings):
        super().__init__(settings)
        self.trained = []

    def label(self, checkpoint, image, labels):
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        mask[: h // 2] = 1  # ellipse
        mask[h // 2 :, : w // 2] = 3  # ring
        if labels:
            mask[~np.isin(mask, [CMAP.index(n) for n in labels])] = 0
        return mask, 0.5, CMAP

    def label_many(self, checkpoint, images, labels):
        out = []
        for names in labels:  # a plausible object in the middle: the collapse guard lets the version through
            mask = np.zeros((96, 96), np.uint8)
            mask[24:72, 24:72] = CMAP.index(names[0]) if names else 1
            out.append((mask, 0.1))
        return out

    def train(self, pairs, classmap, *, out_path, warm_start, n_human, round_index, progress=None):
        self.trained.append((len(pairs), n_human, round_index))
        Path(out_path).write_bytes(b"stub")
        return TrainOutcome(
            checkpoint=Path(out_path),
            seconds=0.0,
            n_human=n_human,
            n_pseudo=len(pairs) - n_human,
            epochs=1,
            final_loss=0.1,
        )


def annotation_event(task, mask, action="ANNOTATION_CREATED", annotation_id=11, config=None):
    return {
        "action": action,
        "project": {"id": 1, "label_config": config or brush_config()},
        "task": task,
        "annotation": {"id": annotation_id, "task": task["id"], "result": BRUSH.to_results(mask, CMAP.names, 1.0)},
    }


# -- health and setup --------------------------------------------------------------------------------
def test_health(tmp_path, example):
    with client_for(BackendSettings(model_dir=tmp_path), example[1]) as c:
        for path in ("/", "/health"):
            r = c.get(path)
            assert r.status_code == 200 and r.json() == {"status": "UP", "model_class": "GFNSegmenter"}


def test_setup_good_config(tmp_path, example):
    with client_for(BackendSettings(model_dir=tmp_path), example[1]) as c:
        r = c.post(
            "/setup",
            json={
                "project": "7.1700000000",
                "schema": brush_config(),
                "hostname": LS_URL,
                "access_token": "x",
                "extra_params": None,
            },
        )
    assert r.status_code == 200 and r.json() == {"model_version": "gfn-initial"}
    assert ClassMap.load(tmp_path / "7" / "classes.json").names == ("background", *CLASSES)


@pytest.mark.parametrize(
    "schema, match",
    [
        ('<View><Image name="image" value="$image"/></View>', "no <BrushLabels> or <PolygonLabels>"),
        ("<View>", "not valid XML"),
    ],
)
def test_setup_bad_config(tmp_path, example, schema, match):
    with client_for(BackendSettings(model_dir=tmp_path), example[1]) as c:
        r = c.post("/setup", json={"project": "7.1", "schema": schema})
    assert r.status_code == 400 and match in r.json()["error"]


def test_setup_refuses_a_model_whose_classes_the_config_lacks(tmp_path, example):
    store = ProjectStore(tmp_path, "7")
    ckpt = store.new_model_path("gfn-001")
    ckpt.write_bytes(b"x")
    store.set_current("gfn-001", ckpt, ("background", *CLASSES))
    with client_for(BackendSettings(model_dir=tmp_path), example[1]) as c:
        r = c.post("/setup", json={"project": "7.1", "schema": brush_config(["ellipse", "star"])})
    assert r.status_code == 400
    err = r.json()["error"]
    assert "['ring']" in err and "config labels: ['ellipse', 'star']" in err and '<Label value="ring"/>' in err


# -- predictions ------------------------------------------------------------------------------------
def test_predict_brush_rle_matches_the_engine(real_engine_settings, real_engine, example):
    ds, files = example
    with client_for(real_engine_settings, files, real_engine) as c:
        r = predict(c, tasks_of(ds, ids={0, 1}))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2
    for s, pred in zip(ds, results):
        assert pred["model_version"] == "gfn-initial" and 0.0 <= pred["score"] <= 1.0
        assert pred["result"], f"empty prediction for {s.stem}"
        for res in pred["result"]:
            assert (res["original_width"], res["original_height"]) == (96, 96)
            assert res["value"]["brushlabels"] == [s.labels[0]]  # only the task's class
        got = prediction_mask(pred["result"], CLASSES, (96, 96))
        expected, score = real_engine.initial(s.load_image(), CMAP.index(s.labels[0]), CMAP.num_classes)
        assert np.array_equal(got, expected)
        assert pred["score"] == pytest.approx(score)
        assert iou(got > 0, s.load_mask() > 0) > 0.5


def test_predict_polygons(real_engine_settings, real_engine, example):
    ds, files = example
    with client_for(real_engine_settings, files, real_engine) as c:
        r = predict(c, tasks_of(ds, ids={2}), config=polygon_config(), project="2.1")
    assert r.status_code == 200, r.text
    pred = r.json()["results"][0]
    assert pred["result"] and all(x["type"] == "polygonlabels" for x in pred["result"])
    from labelstudio_backend.controls import PolygonControl

    back = PolygonControl(from_name="poly", to_name="image", labels=CLASSES).to_mask(pred["result"], CMAP)
    expected, _ = real_engine.initial(ds[2].load_image(), CMAP.index(ds[2].labels[0]), CMAP.num_classes)
    from scipy.ndimage import binary_fill_holes

    assert iou(back > 0, binary_fill_holes(expected > 0)) > 0.9  # outer contours only: a ring loses its hole


def test_interactive_box_and_clicks(real_engine_settings, real_engine, example):
    ds, files = example
    s = ds[0]
    gt = s.load_mask() > 0
    ys, xs = np.nonzero(gt)
    x0, y0, x1, y1 = xs.min() - 3, ys.min() - 3, xs.max() + 4, ys.max() + 4
    context = {
        "result": [
            {
                "type": "rectanglelabels",
                "from_name": "box",
                "to_name": "image",
                "original_width": 96,
                "original_height": 96,
                "value": {
                    "x": x0 / 96 * 100,
                    "y": y0 / 96 * 100,
                    "width": (x1 - x0) / 96 * 100,
                    "height": (y1 - y0) / 96 * 100,
                    "rectanglelabels": ["ellipse"],
                },
            },
            {
                "type": "keypointlabels",
                "from_name": "kp",
                "to_name": "image",
                "is_positive": False,
                "value": {"x": 1.0, "y": 1.0, "keypointlabels": ["negative"]},
            },
        ]
    }
    task = [{"id": 1, "data": {"image": f"/data/upload/1/{s.stem}.png"}}]  # no image-level label: box names it
    with client_for(real_engine_settings, files, real_engine) as c:
        r = predict(c, task, config=brush_config(prompts=True), context=context, project="3.1")
    assert r.status_code == 200, r.text
    got = prediction_mask(r.json()["results"][0]["result"], CLASSES, (96, 96))
    from labelstudio_backend.prompts import Prompt

    expected, _ = real_engine.initial(
        s.load_image(), 1, CMAP.num_classes, prompt=Prompt(box=(x0, y0, x1, y1), points=((0, 0, False),))
    )
    assert np.array_equal(got, expected)
    assert got.max() == 1 and iou(got > 0, gt) > 0.6
    assert (got[:y0, :] == 0).all()  # nothing outside the box


def test_task_label_keeps_only_that_class_with_a_trained_model(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    store = ProjectStore(tmp_path, "1")
    ckpt = store.new_model_path("gfn-001-x")
    ckpt.write_bytes(b"stub")
    store.set_current("gfn-001-x", ckpt, ("background", *CLASSES))
    with client_for(settings, files, StubEngine(settings)) as c:
        with_label = predict(
            c, [{"id": 1, "data": {"image": f"/data/upload/1/{ds[0].stem}.png", "label": "ring"}}]
        ).json()["results"][0]
        without = predict(c, [{"id": 2, "data": {"image": f"/data/upload/1/{ds[0].stem}.png"}}]).json()["results"][0]
    assert with_label["model_version"] == "gfn-001-x"
    assert [x["value"]["brushlabels"] for x in with_label["result"]] == [["ring"]]
    assert sorted(x["value"]["brushlabels"][0] for x in without["result"]) == ["ellipse", "ring"]


CHOICES_CONFIG = brush_config().replace(
    "</View>",
    '<Choices name="what" toName="image" choice="multiple">'
    + "".join(f'<Choice value="{c}"/>' for c in CLASSES)
    + '<Choice value="unsure"/></Choices></View>',
)


def choices_result(*names):
    return [{"from_name": "what", "to_name": "image", "type": "choices", "value": {"choices": list(names)}}]


def test_choices_give_the_labels_annotations_first_then_predictions(tmp_path, example, caplog):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    store = ProjectStore(tmp_path, "1")
    ckpt = store.new_model_path("gfn-001-x")
    ckpt.write_bytes(b"stub")
    store.set_current("gfn-001-x", ckpt, ("background", *CLASSES))
    image = f"/data/upload/1/{ds[0].stem}.png"
    tasks = [
        {
            "id": 1,
            "data": {"image": image},
            "annotations": [{"id": 5, "result": choices_result("ring")}],
            "predictions": [{"id": 6, "result": choices_result("ellipse")}],
        },
        {
            "id": 2,
            "data": {"image": image},
            "annotations": [],
            "predictions": [{"id": 7, "result": choices_result("ellipse")}],
        },
        {"id": 3, "data": {"image": image}, "annotations": [{"id": 8, "result": choices_result("unsure")}]},
        {"id": 4, "data": {"image": image}, "annotations": [{"id": 9, "result": choices_result("star")}]},
    ]
    caplog.set_level(logging.INFO)
    with client_for(settings, files, StubEngine(settings)) as c:
        r = predict(c, tasks, config=CHOICES_CONFIG)
    assert r.status_code == 200, r.text
    ring, ellipse, unsure, star = r.json()["results"]
    assert [x["value"]["brushlabels"] for x in ring["result"]] == [["ring"]]
    assert [x["value"]["brushlabels"] for x in ellipse["result"]] == [["ellipse"]]
    assert sorted(x["value"]["brushlabels"][0] for x in unsure["result"]) == ["ellipse", "ring"]  # not a class
    assert star["result"] == [] and "found no object ['star']" in star["meta"]["why_empty"]
    assert "task 4: empty prediction: model gfn-001-x found no object ['star']" in caplog.text
    assert store.task_labels("1") == ["ring"] and store.task_labels("3") is None


def test_without_label_or_model_the_empty_prediction_says_why(tmp_path, example, caplog):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    caplog.set_level(logging.INFO)
    with client_for(settings, files, StubEngine(settings)) as c:
        r = predict(c, [{"id": 1, "data": {"image": f"/data/upload/1/{ds[0].stem}.png"}}], config=CHOICES_CONFIG)
    (pred,) = r.json()["results"]
    assert pred["result"] == []
    why = pred["meta"]["why_empty"]
    assert "no image-level label" in why and "<Choices name='what'>" in why and "task data key label/class" in why
    assert why in caplog.text


def test_choices_pick_the_class_for_the_initial_route(real_engine_settings, real_engine, example):
    ds, files = example
    sample = ds[2]
    name = sample.labels[0]
    task = {
        "id": 31,
        "data": {"image": f"/data/upload/1/{sample.stem}.png"},
        "annotations": [{"id": 1, "result": choices_result(name)}],
    }
    with client_for(real_engine_settings, files, real_engine) as c:
        r = predict(c, [task], config=CHOICES_CONFIG, project="31.1")
    (pred,) = r.json()["results"]
    assert pred["result"] and {x["value"]["brushlabels"][0] for x in pred["result"]} == {name}
    got = prediction_mask(pred["result"])
    assert iou(got > 0, sample.load_mask() > 0) > 0.5


def test_a_choices_only_annotation_keeps_the_labels_and_stores_no_mask(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    task = {"id": 3, "data": {"image": f"/data/upload/1/{ds[0].stem}.png"}}
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 1, "label_config": CHOICES_CONFIG},
        "task": task,
        "annotation": {"id": 12, "task": 3, "result": choices_result("star")},
    }
    with client_for(settings, files, StubEngine(settings)) as c:
        assert c.post("/webhook", json=event).status_code == 201
        c.app.state.wait_idle()
    store = ProjectStore(tmp_path, "1")
    assert store.human_ids() == [] and store.task_labels("3") == ["star"]


def test_labels_plus_brush_project_predicts_in_the_merged_form(tmp_path, example):
    ds, files = example
    config = (
        '<View><Image name="image" value="$image"/><Labels name="label" toName="image">'
        + "".join(f'<Label value="{c}"/>' for c in CLASSES)
        + '</Labels><Brush name="brush" toName="image"/></View>'
    )
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    store = ProjectStore(tmp_path, "1")
    ckpt = store.new_model_path("gfn-001-x")
    ckpt.write_bytes(b"stub")
    store.set_current("gfn-001-x", ckpt, ("background", *CLASSES))
    with client_for(settings, files, StubEngine(settings)) as c:
        r = predict(
            c, [{"id": 1, "data": {"image": f"/data/upload/1/{ds[0].stem}.png", "label": "ring"}}], config=config
        )
    (res,) = r.json()["results"][0]["result"]
    assert (res["from_name"], res["to_name"], res["type"]) == ("label", "image", "brushlabels")
    assert res["value"]["brushlabels"] == ["ring"] and res["value"]["format"] == "rle"


def test_unknown_task_label_and_missing_image_key_are_explained(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    with client_for(settings, files, StubEngine(settings)) as c:
        r = predict(c, [{"id": 1, "data": {"image": f"/data/upload/1/{ds[0].stem}.png", "label": "zebra"}}])
        assert r.status_code == 400 and "'zebra'" in r.json()["error"] and "add them as <Label" in r.json()["error"]
        r = predict(c, [{"id": 1, "data": {"img": "x"}}])
        assert r.status_code == 400 and "has no 'image'" in r.json()["error"]


def test_one_bad_task_does_not_fail_the_batch(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    tasks = [
        {"id": 1, "data": {"image": "http://127.0.0.1:22/x.png"}},
        {"id": 2, "data": {"image": f"/data/upload/1/{ds[0].stem}.png"}},
    ]
    store = ProjectStore(tmp_path, "1")
    ckpt = store.new_model_path("gfn-001-x")
    ckpt.write_bytes(b"stub")
    store.set_current("gfn-001-x", ckpt, ("background", *CLASSES))
    with client_for(settings, files, StubEngine(settings)) as c:
        r = predict(c, tasks)
    assert r.status_code == 200
    bad, good = r.json()["results"]
    assert bad["result"] == [] and "ALLOWED_HOSTS" in bad["error"]
    assert good["result"]


# -- security ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:22/x.png", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "/etc/passwd"],
)
def test_ssrf_and_local_files_refused(tmp_path, example, url):
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    with client_for(settings, example[1], StubEngine(settings)) as c:
        r = predict(c, [{"id": 1, "data": {"image": url, "label": "star"}}])
    assert r.status_code == 403, r.text
    assert "refusing" in r.json()["error"]


def test_image_size_limits(tmp_path, example):
    ds, files = example
    task = [{"id": 1, "data": {"image": f"/data/upload/1/{ds[0].stem}.png", "label": "ellipse"}}]
    small_bytes = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path, max_image_bytes=1000)
    with client_for(small_bytes, files, StubEngine(small_bytes)) as c:
        r = predict(c, task)
    assert r.status_code == 413 and "MAX_IMAGE_BYTES" in r.json()["error"]
    few_pixels = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path, max_image_pixels=96 * 95)
    with client_for(few_pixels, files, StubEngine(few_pixels)) as c:
        r = predict(c, task)
    assert r.status_code == 413 and "MAX_IMAGE_PIXELS" in r.json()["error"]
    bomb = io.BytesIO()
    Image.new("L", (6000, 6000)).save(bomb, format="PNG")  # small file, 36 Mpx
    files = {**files, "/data/upload/1/bomb.png": bomb.getvalue()}
    default = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path, max_image_pixels=10_000_000)
    with client_for(default, files, StubEngine(default)) as c:
        r = predict(c, [{"id": 1, "data": {"image": "/data/upload/1/bomb.png"}}])
    assert r.status_code == 413


def test_basic_auth(tmp_path, example):
    settings = BackendSettings(model_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="s3cret")
    good = "Basic " + base64.b64encode(b"ls:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"ls:wrong").decode()
    with client_for(settings, example[1], StubEngine(settings)) as c:
        assert c.get("/health").status_code == 401
        assert c.get("/health", headers={"Authorization": bad}).status_code == 401
        assert c.post("/predict", json={}).status_code == 401
        assert c.get("/health", headers={"Authorization": good}).status_code == 200
        r = c.post("/setup", json={"project": "1.1", "schema": brush_config()}, headers={"Authorization": good})
        assert r.status_code == 200


def test_api_key_is_never_logged(tmp_path, example, caplog):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    caplog.set_level(logging.DEBUG)
    with client_for(settings, files, StubEngine(settings)) as c:
        predict(c, tasks_of(ds, ids={0}))
        c.post("/setup", json={"project": "1.1", "schema": brush_config()})
        # Label Studio refusing the key, and a missing file, are logged as errors
        wrong = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN + "-wrong", model_dir=tmp_path)
        with client_for(wrong, files, StubEngine(wrong)) as c2:
            r = predict(c2, tasks_of(ds, ids={0}))
            assert r.status_code == 502 and "refused the API key" in r.json()["error"]
            assert TOKEN not in r.text
        predict(c, [{"id": 9, "data": {"image": "/data/upload/1/missing.png", "label": "star"}}])
    assert caplog.records, "expected some logging"
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(settings)


# -- annotations and training -----------------------------------------------------------------------
def test_fit_stores_the_human_mask_and_predictions_never_overwrite_it(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    task = tasks_of(ds, ids={1})[0]
    gt = ds[1].load_mask()
    with client_for(settings, files, StubEngine(settings)) as c:
        r = c.post("/webhook", json=annotation_event(task, gt))
        assert r.status_code == 201 and r.json()["queued"] is True
        c.app.state.wait_idle()
        store = ProjectStore(tmp_path, "1")
        assert store.human_ids() == ["2"]
        assert np.array_equal(store.load_human("2", CMAP), gt)
        assert store.image_path("2") is not None  # fetched for training
        predict(c, [task])  # writes a pseudo-label, never the human mask
        assert np.array_equal(store.load_human("2", CMAP), gt)
        assert store.load_pseudo("2", CMAP) is not None
        # deleting the annotation removes the human mask
        r = c.post(
            "/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"id": 11}]}
        )
        c.app.state.wait_idle()
        assert store.human_ids() == []
        r = c.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 1}})
        assert r.status_code == 200 and r.json()["status"] == "Unknown event"


def test_polygon_annotation_is_rasterised(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path)
    from labelstudio_backend.controls import PolygonControl

    poly = PolygonControl(from_name="poly", to_name="image", labels=CLASSES)
    gt = ds[0].load_mask()
    task = tasks_of(ds, ids={0})[0]
    event = {
        "action": "ANNOTATION_UPDATED",
        "project": {"id": 1, "label_config": polygon_config()},
        "task": task,
        "annotation": {"id": 5, "task": 1, "result": poly.to_results(gt, CMAP.names, 1.0)},
    }
    with client_for(settings, files, StubEngine(settings)) as c:
        assert c.post("/webhook", json=event).status_code == 201
        c.app.state.wait_idle()
    human = ProjectStore(tmp_path, "1").load_human("1", CMAP)
    assert iou(human > 0, gt > 0) > 0.9


def test_train_every_n_annotations_then_new_version_is_served(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path, train_every=2)
    engine = StubEngine(settings)
    with client_for(settings, files, engine) as c:
        predict(c, tasks_of(ds))  # pseudo-labels for all six tasks
        c.post("/webhook", json=annotation_event(tasks_of(ds, ids={0})[0], ds[0].load_mask(), annotation_id=1))
        c.app.state.wait_idle()
        assert engine.trained == []  # 1 < TRAIN_EVERY
        c.post("/webhook", json=annotation_event(tasks_of(ds, ids={1})[0], ds[1].load_mask(), annotation_id=2))
        c.app.state.wait_idle()
        assert engine.trained == [(6, 2, 1)]  # 2 human masks + 4 pseudo-labels, round 1
        version = c.post("/setup", json={"project": "1.1", "schema": brush_config()}).json()["model_version"]
        assert version.startswith("gfn-001-")
        assert c.get("/versions", params={"project": "1.1"}).json()["versions"] == [version]
        assert c.get("/versions").json()["versions"] == [version]  # Label Studio 1.23 sends no project
        pred = predict(c, tasks_of(ds, ids={3})).json()["results"][0]
        assert pred["model_version"] == version
        # the older /train call: stores the annotations it carries, then one more round
        task = tasks_of(ds, ids={4})[0]
        task["annotations"] = [{"id": 3, "task": 5, "result": BRUSH.to_results(ds[4].load_mask(), CMAP.names, 1)}]
        r = c.post("/train", json={"annotations": [task], "project": "1.1", "label_config": brush_config()})
        assert r.status_code == 200
        c.app.state.wait_idle()
        assert engine.trained[-1][1:] == (3, 2)
        jobs = sorted((tmp_path / "1" / "jobs").glob("*.json"))
        status = c.post("/job_status", json={"job": jobs[0].stem}).json()
        assert status["job_status"] == "finished"
        assert c.post("/job_status", json={"job": "1-unknown"}).status_code == 410


class CollapsingEngine(StubEngine):
    """A stand-in whose trained model labels every image empty (a collapsed round)."""

    def label_many(self, checkpoint, images, labels):
        return [(np.zeros((96, 96), np.uint8), 0.9) for _ in images]


def test_a_collapsed_version_is_not_published_and_the_job_says_why(tmp_path, example):
    ds, files = example
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path, train_every=1)
    engine = CollapsingEngine(settings)
    with client_for(settings, files, engine) as c:
        predict(c, tasks_of(ds))  # pseudo-labels for all six tasks from the initial route
        store = ProjectStore(tmp_path, "1")
        before = {t: store.load_pseudo(t, CMAP)[0].copy() for t in store.pseudo_ids()}
        assert all((m > 0).any() for m in before.values())
        c.post("/webhook", json=annotation_event(tasks_of(ds, ids={0})[0], ds[0].load_mask(), annotation_id=1))
        c.app.state.wait_idle()
        assert engine.trained == [(6, 1, 1)]
        job = sorted((tmp_path / "1" / "jobs").glob("*.json"))[0].stem
        status = c.post("/job_status", json={"job": job}).json()
        assert status["job_status"] == "collapsed", status
        assert "collapsed and was not published" in status["error"]
        assert status["rejected_version"].startswith("gfn-001-")
        assert any("are empty" in r for r in status["reasons"]) and status["guard"]["emptied"] == 1.0
        served = c.post("/setup", json={"project": "1.1", "schema": brush_config()}).json()["model_version"]
        assert served == "gfn-initial"
        assert store.versions() == [] and not (tmp_path / "1" / "models" / status["rejected_version"]).exists()
        after = {t: store.load_pseudo(t, CMAP)[0] for t in before if t != "1"}
        assert all(np.array_equal(after[t], before[t]) for t in after), "the pseudo-labels were not replaced"


def test_real_training_round(real_engine_settings, real_engine, example):
    """START_TRAINING trains a real GFN (1 epoch) on human masks + pseudo-labels; its model then serves."""
    ds, files = example
    with client_for(real_engine_settings, files, real_engine) as c:
        assert predict(c, tasks_of(ds), project="9.1").status_code == 200
        for i in (0, 1):
            ev = annotation_event(tasks_of(ds, ids={i})[0], ds[i].load_mask(), annotation_id=i + 1)
            ev["project"]["id"] = 9
            c.post("/webhook", json=ev)
        r = c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 9, "label_config": brush_config()}})
        assert r.status_code == 201
        c.app.state.wait_idle(timeout=600)
        version = c.post("/setup", json={"project": "9.1", "schema": brush_config()}).json()["model_version"]
        assert version != "gfn-initial", json.dumps(ProjectStore(real_engine_settings.model_dir, "9").versions())
        pred = predict(c, tasks_of(ds, ids={2}), project="9.1").json()["results"][0]
    assert pred["model_version"] == version
    for res in pred["result"]:
        assert decode_brush(res).shape == (96, 96)
        assert res["value"]["brushlabels"] == [ds[2].labels[0]]
    info = ProjectStore(real_engine_settings.model_dir, "9").current().info
    assert info["n_human"] == 2 and info["n_pseudo"] == 4
