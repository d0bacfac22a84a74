"""ONNX Runtime under ``predict``: parity with torch, never stale weights, torch fallback, the CLI option."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core.classmap import ClassMap
from core.cli import main as cli
from core.data.example import make_example
from core.inference import ExportError, OnnxRunner, TorchRunner, clear_cache, export_onnx, runner_for
from core.io.images import read_mask
from core.network import GFNConfig, build_model, save_checkpoint
from core.network.preprocess import to_input
from core.training.predict import predict

SIZES = [(48, 64), (64, 64), (37, 53), (90, 41)]


def _images(seed: int = 0) -> list[np.ndarray]:
    """Smooth blobs on noise: several sizes, two of the same size in a row (batched together)."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in [*SIZES, SIZES[0]]:
        yy, xx = np.mgrid[:h, :w]
        blob = ((yy - h * rng.uniform(0.3, 0.7)) ** 2 + (xx - w * rng.uniform(0.3, 0.7)) ** 2) < (min(h, w) / 3) ** 2
        im = rng.integers(0, 80, (h, w, 3)) + blob[..., None] * rng.integers(100, 170, 3)
        out.append(im.astype(np.uint8))
    return out


def _model(num_classes: int = 2, seed: int = 0, **kw) -> nn.Module:
    """A random-weight GFN whose probabilities vary across the image: BatchNorm statistics measured on
    the test images (a random init's defaults flatten the features) and a larger classifier init."""
    torch.manual_seed(seed)
    model = build_model(GFNConfig(pretrained=False, num_classes=num_classes, **kw))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for im in _images(seed + 10):
            model(to_input(im))
    nn.init.normal_(model.classifier.weight, std=0.5)
    return model.eval()


def _probs(model: nn.Module, images, runtime: str, **kw) -> list[np.ndarray]:
    return [p.probs for p in predict(model, images, runtime=runtime, batch_size=2, **kw)]


@pytest.mark.parametrize(
    "num_classes, kw",
    [(2, {}), (3, {}), (2, {"guide_channels": 1}), (4, {"use_bg": False, "use_hgl": False, "use_gf": False})],
    ids=["K2", "K3", "K2-gray-guide", "K4-baseline"],
)
def test_onnx_probabilities_match_torch(num_classes, kw):
    model = _model(num_classes, **kw)
    assert isinstance(runner_for(model, "onnx"), OnnxRunner)  # really exported, not the torch fallback
    images = _images()
    for tta in (False, True):
        ref = _probs(model, images, "torch", tta_flip=tta)
        got = _probs(model, images, "onnx", tta_flip=tta)
        assert [g.shape for g in got] == [(num_classes, *im.shape[:2]) for im in images]
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r, atol=1e-3, rtol=0)
            assert r.std(axis=(1, 2)).max() > 0.05  # probabilities vary across the image: a meaningful comparison
    # downscaled for the network, upsampled back: still the same
    big = [np.repeat(np.repeat(images[0], 3, axis=0), 2, axis=1)]
    np.testing.assert_allclose(
        _probs(model, big, "onnx", max_side=100)[0], _probs(model, big, "torch", max_side=100)[0], atol=1e-3, rtol=0
    )


def test_weights_changed_between_calls_give_the_new_weights_result():
    model = _model(seed=1)
    images = _images(1)
    first = _probs(model, images, "onnx")
    runner = runner_for(model, "onnx")
    assert runner_for(model, "onnx") is runner  # unchanged weights: the exported session is reused
    np.testing.assert_allclose(_probs(model, images, "onnx")[0], first[0], atol=0)

    # a training step, as a refinement round does between two predictions
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    x = torch.randn(2, 3, 48, 48)
    loss = -torch.log_softmax(model(x), dim=1)[:, 1].mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    after = _probs(model, images, "onnx")
    assert runner_for(model, "onnx") is not runner
    expected = _probs(model, images, "torch")
    for a, e, f in zip(after, expected, first):
        np.testing.assert_allclose(a, e, atol=1e-3, rtol=0)
        assert np.abs(a - f).max() > 0.01  # the old weights' result would fail this

    # loading other weights in place (load_state_dict copies into the same tensors)
    model.load_state_dict(_model(seed=2).state_dict())
    np.testing.assert_allclose(_probs(model, images, "onnx")[2], _probs(model, images, "torch")[2], atol=1e-3, rtol=0)
    # a setting that is not a tensor: the guided filter's radius
    model.gf.r = 4
    np.testing.assert_allclose(_probs(model, images, "onnx")[3], _probs(model, images, "torch")[3], atol=1e-3, rtol=0)


class _NumpyHead(nn.Module):
    """A model that cannot be exported: part of it runs in NumPy, so a trace freezes it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.from_numpy(np.ascontiguousarray(y.detach().numpy()[:, ::-1]))


def test_a_model_that_cannot_be_exported_runs_on_torch_with_a_warning(caplog):
    model = _NumpyHead().eval()
    with pytest.raises(ExportError, match="export of _NumpyHead failed|differ from torch's"):
        export_onnx(model)
    images = _images()[:3]
    with caplog.at_level(logging.WARNING):
        got = _probs(model, images, "onnx")
    assert any("predicting with torch instead" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    assert isinstance(runner_for(model, "onnx"), TorchRunner)
    for g, r in zip(got, _probs(model, images, "torch")):
        np.testing.assert_array_equal(g, r)


def test_predict_refuses_an_unknown_runtime():
    with pytest.raises(ValueError, match=r"runtime must be one of \['onnx', 'torch'\]"):
        predict(nn.Conv2d(3, 2, 1), _images()[:1], runtime="tensorrt")


def test_predict_streams_with_a_bounded_read_ahead():
    model = _model()
    consumed: list[int] = []

    def gen():
        for i in range(40):
            consumed.append(i)
            yield _images()[0]

    it = predict(model, gen(), batch_size=2)
    assert consumed == []
    next(it)
    assert len(consumed) <= 2 + 1 + 2 + 1  # the batch, the image that closed it, the queue, the one in hand
    assert sum(1 for _ in it) == 39
    clear_cache()


def test_cli_predict_runtimes_write_the_same_masks(tmp_path: Path, capsys):
    make_example(tmp_path / "ex", n=4, size=48)
    model = _model()
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, model, model.config, ClassMap(("background", "thing")))
    images = tmp_path / "ex" / "images"
    outs = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"out_{runtime}"
        argv = ["predict", "--model", str(ckpt), "--images", str(images), "--out", str(out), "--runtime", runtime]
        assert cli(argv) == 0
        outs[runtime] = {p.name: read_mask(p) for p in sorted(out.glob("*.png"))}
    assert len(outs["onnx"]) == 4 and outs["onnx"].keys() == outs["torch"].keys()
    agree = np.mean([np.mean(outs["onnx"][k] == outs["torch"][k]) for k in outs["onnx"]])
    assert agree > 0.999  # argmax ties at 1e-6 may flip a pixel
    assert "wrote 4 mask(s)" in capsys.readouterr().out


def test_a_batch_onnx_runtime_fails_on_is_predicted_with_torch(monkeypatch, caplog):
    """``FallbackRunner``: the one fallback of ``predict`` and of the cached-graph loader."""
    model = _model()
    images = _images()[:3]
    real = runner_for(model, "onnx")
    calls = {"onnx": 0}

    def flaky(x: np.ndarray) -> np.ndarray:
        calls["onnx"] += 1
        if calls["onnx"] == 2:
            raise RuntimeError("simulated ONNX Runtime failure")
        return real(x)

    monkeypatch.setattr(sys.modules[predict.__module__], "runner_for", lambda *_a, **_k: flaky)
    with caplog.at_level(logging.WARNING):
        got = [p.probs for p in predict(model, images, runtime="onnx", batch_size=1)]
    assert calls["onnx"] == 3
    warned = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("failed on a batch" in m and "predicting it with torch" in m for m in warned) == 1
    for g, r in zip(got, _probs(model, images, "torch"), strict=True):
        np.testing.assert_allclose(g, r, atol=1e-3, rtol=0)
