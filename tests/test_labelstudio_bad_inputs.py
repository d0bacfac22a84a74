"""The backend's bad-input catalogue (issue 12): one hostile or malformed request per line.

Every case asserts the HTTP status, the one-line message, and that nothing under ``MODEL_DIR``
was added, changed or removed (the project was set up first, so there is something to lose).
Refused Label Studio paths must also never reach Label Studio, and all get the same answer.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from labelstudio_backend.app import create_app
from labelstudio_backend.controls import BrushControl
from labelstudio_backend.fetch import REFUSED_LS_PATH
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ProjectStore
from tests.labelstudio_harness import CLASSES, TOKEN, FakeLabelStudio, bomb_png, brush_config, png_bytes

LS_URL = "http://ls.test:8080"
AUTH = ("ls", "s3cret-pass")
GOOD_AUTH = {"Authorization": "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()}
CONFIG = brush_config()
BODY_LIMIT = 64 * 1024


GOOD = png_bytes(64, 48)
FILES = {
    "/data/upload/1/good.png": GOOD,
    "/data/upload/1/bomb.png": bomb_png(),
    "/data/upload/1/truncated.png": GOOD[: len(GOOD) // 2],
    "/data/upload/1/text.png": b"root:x:0:0:root:/root:/bin/bash\n",
    "/data/upload/1/big.png": png_bytes(400, 400) + b"\0" * 300_000,
}
BRUSH = BrushControl(from_name="tag", to_name="image", labels=CLASSES)


def task(image: Any, tid: Any = 1, **data: Any) -> dict[str, Any]:
    return {"id": tid, "data": {"image": image, **data}}


def predict_body(tasks: Any, **extra: Any) -> dict[str, Any]:
    return {"tasks": tasks, "project": "1.1700000000", "label_config": CONFIG, "params": {"context": None}, **extra}


def webhook_body(**extra: Any) -> dict[str, Any]:
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 10:40] = 1
    body: dict[str, Any] = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 1, "label_config": CONFIG},
        "task": task("/data/upload/1/good.png"),
        "annotation": {"id": 5, "task": 1, "result": BRUSH.to_results(mask, ("background", *CLASSES), 1.0)},
    }
    body.update(extra)
    return body


# (case, method, path, request kwargs, expected status, expected message fragment)
# Every request carries the right credentials unless the case is about them.
CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # -- closed: every route but /health needs the credentials when auth is configured ------------------
    (
        "setup without credentials",
        "POST",
        "/setup",
        {"json": {"project": "1.1", "schema": CONFIG}, "auth": None},
        401,
        "basic auth required",
    ),
    (
        "webhook without credentials",
        "POST",
        "/webhook",
        {"json": webhook_body(), "auth": None},
        401,
        "basic auth required",
    ),
    (
        "train without credentials",
        "POST",
        "/train",
        {"json": {"project": "1.1"}, "auth": None},
        401,
        "basic auth required",
    ),
    (
        "predict without credentials",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png")]), "auth": None},
        401,
        "basic auth required",
    ),
    ("versions without credentials", "GET", "/versions", {"auth": None}, 401, "basic auth required"),
    (
        "job_status without credentials",
        "POST",
        "/job_status",
        {"json": {"job": "1-abc"}, "auth": None},
        401,
        "basic auth required",
    ),
    ("metrics without credentials", "GET", "/metrics", {"auth": None}, 401, "basic auth required"),
    (
        "wrong password",
        "POST",
        "/setup",
        {"json": {"project": "1.1", "schema": CONFIG}, "auth": ("ls", "nope")},
        401,
        "basic auth required",
    ),
    (
        "credentials not base64",
        "POST",
        "/setup",
        {"json": {}, "auth": None, "headers": {"Authorization": "Basic %%%"}},
        401,
        "basic auth required",
    ),
    # -- body size ----------------------------------------------------------------------------------------
    (
        "body over MAX_BODY_BYTES (Content-Length)",
        "POST",
        "/predict",
        {"content": b"{" + b" " * BODY_LIMIT + b"}", "headers": {"content-type": "application/json"}},
        413,
        "MAX_BODY_BYTES",
    ),
    (
        "body over MAX_BODY_BYTES (chunked)",
        "POST",
        "/predict",
        {"content": iter([b"{" + b" " * (BODY_LIMIT // 2)] * 3), "headers": {"content-type": "application/json"}},
        413,
        "MAX_BODY_BYTES",
    ),
    (
        "setup body over MAX_BODY_BYTES",
        "POST",
        "/setup",
        {"content": iter([b" " * (BODY_LIMIT // 2)] * 3)},
        413,
        "MAX_BODY_BYTES",
    ),
    # -- malformed bodies ---------------------------------------------------------------------------------
    (
        '"params": [1]',
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png")], params=[1])},
        400,
        "'params' must be a JSON object",
    ),
    (
        '"params": "x"',
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png")], params="x")},
        400,
        "'params' must be a JSON object",
    ),
    (
        '"context": [1]',
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png")], params={"context": [1]})},
        400,
        "'context' must be a JSON object",
    ),
    ("body is a JSON list", "POST", "/predict", {"json": [1, 2]}, 400, "expected a JSON object"),
    (
        "body is not JSON",
        "POST",
        "/predict",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        400,
        "not valid JSON",
    ),
    ("setup body is not JSON", "POST", "/setup", {"content": b"\xff\xfe"}, 400, "not valid JSON"),
    ("setup body is a list", "POST", "/setup", {"json": [CONFIG]}, 400, "must be a JSON object"),
    ('"tasks": "x"', "POST", "/predict", {"json": predict_body("x")}, 400, "no tasks"),
    ('"tasks": []', "POST", "/predict", {"json": predict_body([])}, 400, "no tasks"),
    ('"tasks": [1]', "POST", "/predict", {"json": predict_body([1])}, 400, "a task must be an object"),
    (
        "task id is a list",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png", tid=[1])])},
        400,
        "invalid task id",
    ),
    (
        "task id with a path",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png", tid="../../x")])},
        400,
        "invalid task id",
    ),
    (
        'task "data": "x"',
        "POST",
        "/predict",
        {"json": predict_body([{"id": 1, "data": "x"}])},
        400,
        "'data' must be an object",
    ),
    ("task image is a number", "POST", "/predict", {"json": predict_body([task(5)])}, 400, "must be a string"),
    (
        "task without the image key",
        "POST",
        "/predict",
        {"json": predict_body([{"id": 1, "data": {"img": "x"}}])},
        400,
        "has no 'image'",
    ),
    (
        "task label not in the config",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png", label="zebra")])},
        400,
        "'zebra'",
    ),
    (
        "project with a path",
        "POST",
        "/predict",
        {"json": {**predict_body([task("/data/upload/1/good.png")]), "project": "../../etc.1"}},
        400,
        "invalid project id",
    ),
    (
        "project is an object without id",
        "POST",
        "/predict",
        {"json": {**predict_body([task("/data/upload/1/good.png")]), "project": {"x": 1}}},
        400,
        "has no 'project'",
    ),
    ("no project", "POST", "/setup", {"json": {"schema": CONFIG}}, 400, "has no 'project'"),
    (
        "label_config is a number",
        "POST",
        "/predict",
        {"json": {**predict_body([task("/data/upload/1/good.png")]), "label_config": 5}},
        400,
        "labelling config as an XML string",
    ),
    (
        "schema is an object",
        "POST",
        "/setup",
        {"json": {"project": "1.1", "schema": {"View": 1}}},
        400,
        "labelling config as an XML string",
    ),
    ("config not XML", "POST", "/setup", {"json": {"project": "1.1", "schema": "<View><Image"}}, 400, "not valid XML"),
    (
        "config with an XXE entity",
        "POST",
        "/setup",
        {
            "json": {
                "project": "1.1",
                "schema": '<!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]><View>&x;</View>',
            }
        },
        400,
        "<!DOCTYPE> or <!ENTITY>",
    ),
    (
        "config without a mask control",
        "POST",
        "/setup",
        {"json": {"project": "1.1", "schema": '<View><Image name="image" value="$image"/></View>'}},
        400,
        "no <BrushLabels>",
    ),
    (
        "prompt with a non-number",
        "POST",
        "/predict",
        {
            "json": predict_body(
                [task("/data/upload/1/good.png", label="star")],
                params={
                    "context": {
                        "result": [
                            {"type": "keypointlabels", "value": {"x": "abc", "y": 1, "keypointlabels": ["star"]}}
                        ]
                    }
                },
            )
        },
        400,
        "is not a number",
    ),
    (
        "prompt result is a string",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/good.png", label="star")], params={"context": {"result": "x"}})},
        400,
        "must be a list",
    ),
    (
        "webhook annotation is a number",
        "POST",
        "/webhook",
        {"json": webhook_body(annotation=5)},
        400,
        "no 'annotation' object",
    ),
    ("webhook without project", "POST", "/webhook", {"json": webhook_body(project=None)}, 400, "no 'project' object"),
    (
        "webhook project id with a path",
        "POST",
        "/webhook",
        {"json": webhook_body(project={"id": "a/b"})},
        400,
        "invalid project id",
    ),
    (
        "webhook annotation result is a string",
        "POST",
        "/webhook",
        {"json": webhook_body(annotation={"id": 5, "task": 1, "result": "x"})},
        400,
        "'result' must be a list",
    ),
    (
        "webhook task id is a list",
        "POST",
        "/webhook",
        {"json": webhook_body(task={"id": [1]}, annotation={"id": 5, "task": [1], "result": []})},
        400,
        "invalid task id",
    ),
    (
        "webhook label_config is a list",
        "POST",
        "/webhook",
        {"json": webhook_body(project={"id": 1, "label_config": [1]})},
        400,
        "labelling config as an XML string",
    ),
    (
        '/train "annotations": "x"',
        "POST",
        "/train",
        {"json": {"project": "1.1", "label_config": CONFIG, "annotations": "x"}},
        400,
        "'annotations' must be a list",
    ),
    (
        "/train annotations of a task not a list",
        "POST",
        "/train",
        {"json": {"project": "1.1", "label_config": CONFIG, "annotations": [{"annotations": 3}]}},
        400,
        "'annotations' must be a list",
    ),
    ("job_status job is a number", "POST", "/job_status", {"json": {"job": 5}}, 400, "'job' must be a training job id"),
    ("job_status job with a path", "POST", "/job_status", {"json": {"job": "../x-1"}}, 400, "invalid project id"),
    ("job_status unknown job", "POST", "/job_status", {"json": {"job": "1-abc"}}, 410, "unknown training job"),
    ("versions of a project with a path", "GET", "/versions?project=../x", {}, 400, "invalid project id"),
    # -- images -------------------------------------------------------------------------------------------
    (
        "20000x20000 header (decompression bomb)",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/bomb.png", label="star")])},
        413,
        "MAX_IMAGE_PIXELS",
    ),
    (
        "truncated PNG",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/truncated.png", label="star")])},
        422,
        "not a readable image",
    ),
    (
        "text file named .png",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/text.png", label="star")])},
        422,
        "not a readable image",
    ),
    (
        "image over MAX_IMAGE_BYTES",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/big.png", label="star")])},
        413,
        "MAX_IMAGE_BYTES",
    ),
    (
        "image Label Studio does not have",
        "POST",
        "/predict",
        {"json": predict_body([task("/data/upload/1/missing.png", label="star")])},
        404,
        "HTTP 404",
    ),
    # -- where images may come from -------------------------------------------------------------------------
    (
        "loopback URL",
        "POST",
        "/predict",
        {"json": predict_body([task("http://127.0.0.1:22/x.png", label="star")])},
        403,
        "ALLOWED_HOSTS",
    ),
    (
        "cloud metadata URL",
        "POST",
        "/predict",
        {"json": predict_body([task("http://169.254.169.254/latest/meta-data/", label="star")])},
        403,
        "ALLOWED_HOSTS",
    ),
    (
        "file:// URL",
        "POST",
        "/predict",
        {"json": predict_body([task("file:///etc/passwd", label="star")])},
        403,
        "LOCAL_ROOTS",
    ),
    (
        "gopher:// URL",
        "POST",
        "/predict",
        {"json": predict_body([task("gopher://127.0.0.1:70/x", label="star")])},
        400,
        "unsupported image reference",
    ),
]

REFUSED_PATHS = [
    "/data/local-files/?d=/etc/passwd",
    "/data/local-files/?d=etc/passwd",
    "/data/local-files/?d=../../etc/passwd.png",
    "/data/local-files/?d=images%2F..%2F..%2Fsecret.png",
    "/data/local-files/?d=a.png&d=b.png",
    "/data/upload/../../etc/passwd",
    "/data/upload/%2e%2e/%2e%2e/etc/passwd",
    "/data/upload/%252e%252e/%252e%252e/x.png",
    "/data/upload/1/%2e%2e%2fx.png",
    "/data/upload/1/good.png?token=x",
    "/data/upload/1//good.png",
    "/data/upload/1/good.png#x",
    "/data/upload/1/good.png\\..\\x.png",
    "/tasks/1/../../api/users",
    "/tasks/1/resolve/?fileuri=x&extra=1",
    "/storage-data/uploaded/?filepath=../../label_studio.sqlite3",
    f"{LS_URL}/api/projects/1/export?exportType=JSON",
    f"{LS_URL}/data/local-files/?d=/etc/shadow",
    "http://user:pw@ls.test:8080/data/upload/1/good.png",
]
"""Label Studio paths that must be refused before any request carries the token, all alike."""


def settings_for(tmp_path: Path, **kw: Any) -> BackendSettings:
    values: dict[str, Any] = dict(
        label_studio_url=LS_URL,
        api_key=TOKEN,
        model_dir=tmp_path / "models",
        basic_auth_user=AUTH[0],
        basic_auth_pass=AUTH[1],
        max_body_bytes=BODY_LIMIT,
        max_image_bytes=200_000,
    )
    values.update(kw)
    return BackendSettings(**values)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` -> the hash of its bytes (lock files aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture()
def served(tmp_path):
    """A backend with basic auth, a stand-in Label Studio, and project 1 set up with one stored prediction."""
    settings = settings_for(tmp_path)
    ls = FakeLabelStudio(FILES)
    app = create_app(settings, transport=ls.transport(), resolver=lambda host: ["93.184.216.34"])
    with TestClient(app) as client:
        client.auth = AUTH
        r = client.post("/setup", json={"project": "1.1700000000", "schema": CONFIG})
        assert r.status_code == 200, r.text
        store = ProjectStore(settings.model_dir, "1")
        classes = store.load_classes()
        assert classes is not None
        store.save_pseudo("7", np.ones((4, 4), np.uint8), 0.5, "gfn-initial", classes)
        ls.requests.clear()
        yield client, settings, ls


@pytest.mark.parametrize("name, method, path, kwargs, status, message", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_named_and_changes_nothing(served, name, method, path, kwargs, status, message):
    client, settings, _ = served
    kwargs = dict(kwargs)
    if "auth" in kwargs and kwargs["auth"] is None:
        kwargs.pop("auth")
        client.auth = None
    before = snapshot(settings.model_dir)
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error" and message in body["error"], body
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    client.app.state.wait_idle()
    assert snapshot(settings.model_dir) == before, "a refused request changed MODEL_DIR"


@pytest.mark.parametrize("value", REFUSED_PATHS)
def test_refused_label_studio_paths_never_reach_it_and_look_alike(served, value):
    client, settings, ls = served
    before = snapshot(settings.model_dir)
    r = client.post("/predict", json=predict_body([task(value, label="star")]))
    assert r.status_code == 403, r.text
    assert r.json()["error"] == REFUSED_LS_PATH  # the same answer whatever the path
    assert ls.requests == [], "a refused path was sent to Label Studio with the token"
    assert snapshot(settings.model_dir) == before


def test_health_needs_the_credentials_too(served):
    client, _, _ = served
    assert client.get("/health").json()["status"] == "UP"
    client.auth = None
    assert client.get("/health").status_code == 401  # Label Studio sends the credentials to /health too


def test_a_bomb_in_a_batch_keeps_the_other_predictions(served):
    client, settings, _ = served
    tasks = [
        task("/data/upload/1/bomb.png", tid=1, label="star"),
        task("/data/upload/1/good.png", tid=2, label="star"),
        task("/data/upload/1/truncated.png", tid=3, label="star"),
        task("/data/local-files/?d=/etc/passwd", tid=4, label="star"),
    ]
    r = client.post("/predict", json=predict_body(tasks))
    assert r.status_code == 200, r.text
    bomb, good, truncated, refused = r.json()["results"]
    assert bomb["result"] == [] and "MAX_IMAGE_PIXELS" in bomb["error"] and bomb["meta"]["why_empty"]
    assert truncated["result"] == [] and "not a readable image" in truncated["error"]
    assert refused["error"] == REFUSED_LS_PATH
    assert good["result"] and good["result"][0]["value"]["brushlabels"] == ["star"]
    images = sorted(p.name for p in (settings.model_dir / "1" / "images").iterdir())
    assert images == ["2.png"]  # only the good task's image was kept
    tasks_seen = sorted(p.name for p in (settings.model_dir / "1" / "tasks").iterdir())
    assert tasks_seen == ["2.json"]


def test_body_limit_applies_before_auth_is_checked_only_for_authorised_clients(tmp_path):
    """Unauthorised clients get 401 without the body being read; authorised ones 413."""
    settings = settings_for(tmp_path)
    with TestClient(create_app(settings, transport=FakeLabelStudio(FILES).transport())) as client:
        big = b"{" + b" " * (BODY_LIMIT * 2) + b"}"
        assert client.post("/predict", content=big).status_code == 401
        client.auth = AUTH
        r = client.post("/predict", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "MAX_BODY_BYTES=65536" in r.json()["error"]
