"""The on-disk cache of exported ONNX graphs (``core.inference.cache``) and ``predict``'s loader over it:
hit without export or torch model, miss after the weights change, damaged entries rebuilt, disabled."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import core.inference.checkpoint_runner as checkpoint_runner
from core.classmap import ClassMap
from core.cli import main as cli
from core.data.example import make_example
from core.inference import TorchRunner
from core.inference.cache import ENV, OnnxCache, checkpoint_key, default_dir
from core.inference.checkpoint_runner import load_runner
from core.io.images import read_mask
from core.network import save_checkpoint
from tests.test_inference import _images, _model

CLASSES = ("background", "thing")


@pytest.fixture
def cache(tmp_path: Path) -> OnnxCache:
    return OnnxCache(tmp_path / "cache")


def _checkpoint(path: Path, seed: int) -> Path:
    model = _model(seed=seed)
    return save_checkpoint(path, model, model.config, ClassMap(CLASSES))


def _no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every export or checkpoint load fail the test."""

    def refuse(*_a, **_k):
        raise AssertionError("a cache hit must neither export nor build the torch model")

    monkeypatch.setattr("core.inference.export.export_onnx", refuse)
    monkeypatch.setattr("core.network.checkpoint.load_checkpoint", refuse)


def test_entry_round_trip_and_damage_detected(cache: OnnxCache, caplog):
    key = "ab" * 32
    assert cache.get(key) is None  # nothing there: a plain miss
    path = cache.put(key, b"onnx-bytes" * 100, {"classes": ["a", "b"]})
    assert path == cache.path(key) and path.is_file()
    entry = cache.get(key)
    assert entry is not None and entry.onnx == b"onnx-bytes" * 100 and entry.meta == {"classes": ["a", "b"]}
    good = path.read_bytes()
    damages = {
        "payload bit flipped": good[:-5] + bytes([good[-5] ^ 1]) + good[-4:],
        "truncated": good[: len(good) // 2],
        "header cut": good[:12],
        "not an entry": b"\x00" * 64,
        "header garbage": good[:16] + b"\xff" * (len(good) - 16),
    }
    for what, raw in damages.items():
        path.write_bytes(raw)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert cache.get(key) is None, what
        assert "damaged" in caplog.text, what
        assert not path.exists(), what  # deleted, so the rebuild replaces it
    # an entry copied under another key is not served
    cache.put(key, b"x")
    other = "cd" * 32
    cache.path(other).write_bytes(cache.path(key).read_bytes())
    assert cache.get(other) is None
    with pytest.raises(ValueError, match="64 lower-case hex"):
        cache.path("../../etc/passwd")


def test_key_follows_the_bytes_and_the_export_settings(tmp_path: Path):
    a = _checkpoint(tmp_path / "a.pt", seed=0)
    b = tmp_path / "b.pt"
    b.write_bytes(a.read_bytes())
    assert checkpoint_key(a) == checkpoint_key(b)  # the content, not the path
    settings = {"opset": 17, "wrapper": 1, "torch": torch.__version__, "io": ["images", "probs"]}
    assert checkpoint_key(a, settings) != checkpoint_key(a, {**settings, "opset": 18})
    _checkpoint(b, seed=1)
    assert checkpoint_key(a) != checkpoint_key(b)


def test_hit_neither_exports_nor_builds_the_model_and_matches_torch(tmp_path: Path, cache, monkeypatch):
    ckpt = _checkpoint(tmp_path / "m.pt", seed=0)
    first = load_runner(ckpt, cache=cache)
    assert first.cache == "miss" and first.model is not None and first.class_names == list(CLASSES)
    assert "export" in first.seconds and len(list(cache.folder.iterdir())) == 1
    images = np.stack([_images()[0], _images()[4]])  # two of the same size: one batch
    expected = TorchRunner(first.model)(images)
    _no_export(monkeypatch)
    second = load_runner(ckpt, cache=cache)
    assert second.cache == "hit" and second.model is None and second.class_names == list(CLASSES)
    got = second.runner(images)
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
    np.testing.assert_array_equal(got, first.runner(images))  # the very graph that was exported
    assert expected.std(axis=(2, 3)).max() > 0.05  # probabilities vary: a meaningful comparison


def test_changed_weights_miss_and_give_the_new_weights_result(tmp_path: Path, cache):
    ckpt = _checkpoint(tmp_path / "m.pt", seed=0)
    images = _images()[1][None]
    old = load_runner(ckpt, cache=cache).runner(images)
    _checkpoint(ckpt, seed=3)  # other weights written over the same file
    new = load_runner(ckpt, cache=cache)
    assert new.cache == "miss" and new.model is not None
    got = new.runner(images)
    np.testing.assert_allclose(got, TorchRunner(new.model)(images), atol=1e-3, rtol=0)
    assert np.abs(got - old).max() > 0.01  # the stale graph would fail this
    assert len(list(cache.folder.iterdir())) == 2


def test_damaged_entries_are_rebuilt(tmp_path: Path, cache, caplog):
    ckpt = _checkpoint(tmp_path / "m.pt", seed=0)
    good = load_runner(ckpt, cache=cache)
    entry = cache.path(checkpoint_key(ckpt))
    raw = entry.read_bytes()
    entry.write_bytes(raw[: len(raw) - 1000])  # truncated (e.g. a full disk)
    with caplog.at_level(logging.WARNING):
        rebuilt = load_runner(ckpt, cache=cache)
    assert rebuilt.cache == "miss" and "damaged" in caplog.text
    assert load_runner(ckpt, cache=cache).cache == "hit"
    # a consistent entry whose graph ONNX Runtime cannot load
    key = checkpoint_key(ckpt)
    cache.put(key, b"not an onnx model", {"classes": list(CLASSES)})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = load_runner(ckpt, cache=cache)
    assert again.cache == "miss" and "cannot load the cached graph" in caplog.text
    images = _images()[2][None]
    np.testing.assert_allclose(again.runner(images), good.runner(images), atol=1e-6, rtol=0)
    assert load_runner(ckpt, cache=cache).cache == "hit"


def test_default_dir_follows_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "c"))
    assert default_dir() == tmp_path / "c"
    for off in ("off", "0", "", "None"):
        monkeypatch.setenv(ENV, off)
        assert default_dir() is None
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_dir() == tmp_path / "xdg" / "gfn-autolabel" / "onnx"


def test_disabled_cache_writes_nothing(tmp_path: Path, monkeypatch):
    ckpt = _checkpoint(tmp_path / "m.pt", seed=0)
    monkeypatch.setenv(ENV, "off")
    loaded = load_runner(ckpt)
    assert loaded.cache == "off" and loaded.model is not None and loaded.runner.name == "onnx"
    assert load_runner(ckpt, cache=None).cache == "off"
    torch_loaded = load_runner(ckpt, runtime="torch", cache=OnnxCache(tmp_path / "c"))
    assert torch_loaded.cache == "off" and isinstance(torch_loaded.runner, TorchRunner)
    assert not (tmp_path / "c").exists()


def test_cli_second_call_hits_the_cache_and_writes_the_same_masks(tmp_path: Path, monkeypatch, capsys):
    make_example(tmp_path / "ex", n=4, size=48)
    ckpt = _checkpoint(tmp_path / "m.pt", seed=0)
    folder = tmp_path / "cache"
    monkeypatch.setenv(ENV, str(folder))
    images = tmp_path / "ex" / "images"

    def run(out: str, *extra: str) -> dict[str, np.ndarray]:
        argv = ["predict", "--model", str(ckpt), "--images", str(images), "--out", str(tmp_path / out), *extra]
        assert cli(argv) == 0
        return {p.name: read_mask(p) for p in sorted((tmp_path / out).glob("*.png"))}

    cold = run("cold")
    assert len(list(folder.iterdir())) == 1
    calls = []
    real = checkpoint_runner.load_runner

    def spy(*a, **k):
        loaded = real(*a, **k)
        calls.append(loaded.cache)
        return loaded

    monkeypatch.setattr(checkpoint_runner, "load_runner", spy)
    _no_export(monkeypatch)
    warm = run("warm")
    assert calls == ["hit"]
    assert len(cold) == 4 and cold.keys() == warm.keys()
    for k in cold:
        np.testing.assert_array_equal(warm[k], cold[k])
    assert "wrote 4 mask(s)" in capsys.readouterr().out
    # --no-onnx-cache: exports again (so the refusing patch must go) and leaves the cache alone
    monkeypatch.undo()
    monkeypatch.setenv(ENV, str(folder))
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    off = run("off", "--no-onnx-cache")
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    for k in cold:
        np.testing.assert_array_equal(off[k], cold[k])
