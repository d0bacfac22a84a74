"""The served model on the request path: loaded once per worker process (at start-up), exported to
ONNX once and kept, and applied with the backend's post-processing settings (``POSTPROCESS``,
``POSTPROCESS_MAX_SIDE``, ``GRABCUT_ITERS``) and threads (``TORCH_THREADS``).

A small untrained GFN (real network, real ONNX export, real post-processing chain) is installed as a
project's current model; requests go through the real app (FastAPI test client) and engine.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import core.inference.export as export_module
from core.classmap import ClassMap
from core.data.example import make_example
from core.network.checkpoint import InferenceSettings, save_checkpoint
from core.network.config import GFNConfig
from core.network.factory import build_model
from core.refine.apply import Labeller
from labelstudio_backend.app import create_app
from labelstudio_backend.engine import Engine
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ProjectStore
from tests.labelstudio_harness import CLASSES, TOKEN, FakeLabelStudio, brush_config, prediction_mask

LS_URL = "http://ls.test:8080"
CMAP = ClassMap.from_names(CLASSES)
CHAIN = "crf+grabcut"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    ds = make_example(tmp_path_factory.mktemp("example"), n=4, size=96)
    files = {f"/data/upload/1/{s.stem}.png": Path(s.image_path).read_bytes() for s in ds}
    return ds, files


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small untrained GFN of the config's classes, run at 64 px with flip TTA and ``crf+grabcut``."""
    torch.manual_seed(0)
    cfg = GFNConfig(pretrained=False, num_classes=CMAP.num_classes, aspp_channels=16, low_channels=8)
    net = build_model(cfg).eval()
    inference = InferenceSettings(max_side=64, tta_flip=True, postprocess=CHAIN, post_params={"max_side": 400})
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", net, cfg, CMAP, inference=inference)


def serving(tmp_path: Path, checkpoint: Path, **settings) -> BackendSettings:
    """Settings whose project 1 serves ``checkpoint`` as version ``v1``."""
    s = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path, torch_threads=1, **settings)
    store = ProjectStore(tmp_path, "1")
    store.save_classes(CMAP)
    path = store.new_model_path("v1")
    path.write_bytes(checkpoint.read_bytes())
    store.set_current("v1", path, CMAP.names)
    return s


def client_for(settings: BackendSettings, files: dict[str, bytes]) -> TestClient:
    app = create_app(settings, transport=FakeLabelStudio(files).transport(), resolver=lambda host: ["93.184.216.34"])
    return TestClient(app)


def tasks_of(ds, ids, *, label: bool = True):
    out = []
    for i in ids:
        data = {"image": f"/data/upload/1/{ds[i].stem}.png"}
        if label:
            data["label"] = ds[i].labels[0]
        out.append({"id": i + 1, "data": data})
    return out


def predict(client: TestClient, tasks) -> dict:
    r = client.post("/predict", json={"tasks": tasks, "project": "1.1700000000", "label_config": brush_config()})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_model_is_loaded_and_exported_once_for_many_requests(tmp_path, example, checkpoint, monkeypatch):
    ds, files = example
    loads, exports = [], []
    real_load, real_export = Labeller.from_checkpoint, export_module.export_onnx

    def counting_load(cls, path, **overrides):
        loads.append(Path(path))
        return real_load(path, **overrides)

    def counting_export(model):
        exports.append(type(model).__name__)
        return real_export(model)

    monkeypatch.setattr(Labeller, "from_checkpoint", classmethod(counting_load))
    monkeypatch.setattr(export_module, "export_onnx", counting_export)
    settings = serving(tmp_path, checkpoint)
    with client_for(settings, files) as c:
        answers = [predict(c, tasks_of(ds, [i % len(ds), (i + 1) % len(ds)])) for i in range(4)]
    assert all(a["model_version"] == "v1" for a in answers)
    assert all(p["model_version"] == "v1" and "error" not in p for a in answers for p in a["results"])
    assert len(loads) == 1 and loads[0].name == "model.pt"
    assert exports == ["GFN"], f"the ONNX export ran {len(exports)} times for 8 predictions"


def test_postprocess_settings_reach_the_served_labeller(tmp_path, example, checkpoint):
    ds, files = example
    settings = serving(tmp_path, checkpoint, postprocess="grabcut", postprocess_max_side=48, grabcut_iters=2)
    current = ProjectStore(tmp_path, "1").current()
    lab = Engine(settings).labeller(current.checkpoint)
    assert (lab.postprocess, lab.post_params.max_side, lab.post_params.grabcut_iters) == ("grabcut", 48, 2)
    assert lab.num_threads == 1
    assert (lab.max_side, lab.tta_flip) == (64, True)  # the rest as the checkpoint says

    default = Engine(serving(tmp_path / "d", checkpoint)).labeller(current.checkpoint)
    assert (default.postprocess, default.post_params.max_side, default.post_params.grabcut_iters) == (CHAIN, 400, 5)

    # what /predict serves is that labeller's mask, pixel for pixel (tasks without image-level labels:
    # the untrained network's classes then vary over the image, so the chain has work to do)
    direct = Labeller.from_checkpoint(
        checkpoint, postprocess="grabcut", post_params={"max_side": 48, "grabcut_iters": 2}, num_threads=1
    )
    with client_for(settings, files) as c:
        served = predict(c, tasks_of(ds, [0, 1], label=False))["results"]
    differs = False
    for i, pred in enumerate(served):
        expected, _, _ = direct.label(ds[i].load_image(), None)
        assert np.array_equal(prediction_mask(pred["result"], CLASSES, (96, 96)), expected)
        differs |= not np.array_equal(expected, default.label(ds[i].load_image(), None)[0])
    assert differs, "the settings' chain gave the checkpoint chain's masks: the test images do not tell them apart"


def test_each_worker_preloads_the_served_model_at_start(tmp_path, example, checkpoint, monkeypatch, caplog):
    ds, files = example
    exports = []
    real_export = export_module.export_onnx
    monkeypatch.setattr(export_module, "export_onnx", lambda model: exports.append(1) or real_export(model))
    settings = serving(tmp_path, checkpoint)
    (tmp_path / "7").mkdir()  # a project without a model: nothing to load
    with caplog.at_level("INFO", logger="labelstudio_backend.runtime"), client_for(settings, files) as c:
        c.app.state.wait_idle(timeout=300)  # the start-up preload runs on the event thread
        assert len(exports) == 1 and "project 1: model v1 ready" in caplog.text
        assert predict(c, tasks_of(ds, [0]))["model_version"] == "v1"
    assert len(exports) == 1  # the request found the model loaded and exported


def test_a_broken_served_model_is_logged_at_preload_and_explained_per_request(tmp_path, example, caplog):
    ds, files = example
    store = ProjectStore(tmp_path, "1")
    store.save_classes(CMAP)
    path = store.new_model_path("v1")
    path.write_bytes(b"not a checkpoint")
    store.set_current("v1", path, CMAP.names)
    settings = BackendSettings(label_studio_url=LS_URL, api_key=TOKEN, model_dir=tmp_path, torch_threads=1)
    with caplog.at_level("WARNING", logger="labelstudio_backend.runtime"), client_for(settings, files) as c:
        c.app.state.wait_idle(timeout=60)
        assert "project 1: preloading its model failed" in caplog.text
        assert c.get("/health").status_code == 200  # the worker serves on
        r = c.post("/predict", json={"tasks": tasks_of(ds, [0]), "project": "1.1", "label_config": brush_config()})
    assert r.status_code == 400 and "model.pt: not a readable gfn-autolabel checkpoint" in r.json()["error"]
