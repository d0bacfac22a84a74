"""The parts the ML backend's app is assembled from, each alone: basic auth, error mapping, request
counters, the shared :class:`Backend`; then how ``create_app`` orders them."""

from __future__ import annotations

import base64

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from labelstudio_backend.app import create_app
from labelstudio_backend.auth import authorised, basic_auth_middleware
from labelstudio_backend.errors import HANDLED, answer_for, install_error_handlers
from labelstudio_backend.fetch import FetchError
from labelstudio_backend.label_config import ConfigError
from labelstudio_backend.metrics import Metrics, metrics_middleware
from labelstudio_backend.model import TaskError
from labelstudio_backend.runtime import Backend
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ImageTooLarge

CREDS = ("ls", "s3cret")


def basic(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return "Basic " + base64.b64encode(raw).decode()


# -- auth ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, ok",
    [
        (basic("ls:s3cret"), True),
        ("basic " + base64.b64encode(b"ls:s3cret").decode(), True),  # the scheme is case-insensitive
        (basic("ls:s3cret:more"), False),
        (basic("ls:wrong"), False),
        (basic("other:s3cret"), False),
        (basic("ls"), False),
        ("", False),
        ("Basic", False),
        ("Basic ", False),
        ("Bearer " + base64.b64encode(b"ls:s3cret").decode(), False),
        ("Basic not-base64!", False),
        (basic(b"\xff\xfe:\xff"), False),  # not UTF-8
    ],
)
def test_authorised(header, ok):
    assert authorised(header, CREDS) is ok


def test_basic_auth_middleware_alone():
    app = FastAPI()
    app.middleware("http")(basic_auth_middleware(CREDS))
    app.get("/x")(lambda: {"ok": True})
    with TestClient(app) as c:
        r = c.get("/x")
        assert r.status_code == 401
        assert r.json() == {"status": "error", "error": "unauthorised: basic auth required"}
        assert r.headers["www-authenticate"] == 'Basic realm="gfn-autolabel"'
        assert c.get("/missing").status_code == 401  # every path, known or not
        r = c.get("/x", headers={"Authorization": basic("ls:s3cret")})
        assert r.status_code == 200 and r.json() == {"ok": True}


# -- error mapping ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "exc, status, message, logged",
    [
        (FetchError("refusing http://127.0.0.1/", status=403), 403, "refusing http://127.0.0.1/", True),
        (FetchError("Label Studio refused the API key", status=502), 502, "Label Studio refused the API key", True),
        (TaskError("request has no tasks"), 400, "request has no tasks", True),
        (TaskError("gone", status=404), 404, "gone", True),
        (ImageTooLarge("over MAX_IMAGE_PIXELS"), 413, "over MAX_IMAGE_PIXELS", False),
        (ConfigError("no <BrushLabels>"), 400, "no <BrushLabels>", True),
        (ValueError("invalid project id"), 400, "invalid project id", True),
        (KeyError("image"), 400, "image", True),  # the bare key, not "'image'"
        (FileNotFoundError("no such folder"), 400, "no such folder", True),
    ],
)
def test_answer_for(exc, status, message, logged):
    answer = answer_for(exc)
    assert (answer.status, answer.message, answer.log_prefix is not None) == (status, message, logged)


def test_answer_for_refuses_other_exceptions():
    with pytest.raises(TypeError, match="RuntimeError is not a backend error; handled: .*'FetchError'"):
        answer_for(RuntimeError("bug"))


def test_error_handlers_alone(caplog):
    app = FastAPI()
    install_error_handlers(app)
    raised = {
        "fetch": FetchError("refusing x", status=403),
        "size": ImageTooLarge("too big"),
        "key": KeyError("image"),
        "bug": RuntimeError("a bug"),
    }

    @app.get("/raise/{name}")
    def boom(name: str):
        raise raised[name]

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/raise/fetch")
        assert r.status_code == 403 and r.json() == {"status": "error", "error": "refusing x"}
        assert c.get("/raise/size").status_code == 413
        r = c.get("/raise/key")
        assert r.status_code == 400 and r.json()["error"] == "image"
        assert c.get("/raise/bug").status_code == 500  # a bug is not a bad request
    assert "refusing x" in caplog.text and "too big" not in caplog.text
    assert set(HANDLED) >= {FetchError, TaskError, ImageTooLarge, ConfigError, ValueError, KeyError, FileNotFoundError}


# -- metrics ------------------------------------------------------------------------------------------
def test_metrics_middleware_alone():
    metrics = Metrics()
    app = FastAPI()
    app.middleware("http")(metrics_middleware(metrics))
    app.get("/x")(lambda: {"ok": True})
    with TestClient(app) as c:
        c.get("/x")
        c.get("/x")
        c.get("/missing")
    snap = metrics.snapshot()
    assert snap["requests"] == {"/x": 2, "/missing:error": 1}
    assert set(snap["seconds"]) == {"/x", "/missing"}


# -- the shared backend -------------------------------------------------------------------------------
def test_backend_alone(tmp_path):
    backend = Backend.build(BackendSettings(model_dir=tmp_path / "models"))
    try:
        assert (tmp_path / "models").is_dir()
        with pytest.raises(ValueError, match="request has no 'project'"):
            backend.model_for(None, None)
        with pytest.raises(ConfigError, match="no labelling config received yet"):
            backend.model_for("3.17", None)
        done = []
        backend.submit(lambda: done.append(1))
        backend.submit(lambda: done.append(2))
        backend.wait_idle(timeout=10)
        assert done == [1, 2]  # in submission order
    finally:
        backend.shutdown()


# -- assembly -----------------------------------------------------------------------------------------
def test_refused_requests_are_not_counted(tmp_path):
    settings = BackendSettings(model_dir=tmp_path, basic_auth_user=CREDS[0], basic_auth_pass=CREDS[1])
    with TestClient(create_app(settings)) as c:
        assert c.get("/health").status_code == 401
        good = {"Authorization": basic("ls:s3cret")}
        assert c.post("/setup", content=b"[1]", headers=good).status_code == 400
        assert c.get("/health", headers=good).status_code == 200
        requests = c.get("/metrics", headers=good).json()["requests"]
    assert requests == {"/setup:error": 1, "/health": 1}
    assert c.app.state.backend.settings is settings
