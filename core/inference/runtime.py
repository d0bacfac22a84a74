"""Runners: ``images (N, H, W, 3) uint8 RGB -> probs (N, K, H, W) float32``, with torch or ONNX Runtime.

:func:`runner_for` gives the runner of a model. For ``"onnx"`` it exports the model once and keeps
the ONNX Runtime session while the weights stay the same: the cache is keyed on the identity, the
storage and the version counter of every parameter and buffer (each optimiser step, each
``load_state_dict`` and each BatchNorm statistics update bumps a counter) and on the modules' own
settings (their ``repr``, e.g. the guided filter's ``r`` and ``eps``), so a model trained further
after a prediction is exported again, never served with its old weights. When the export fails, a
WARNING is logged and torch runs the model (the results stay correct).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from core.network.preprocess import to_input

log = logging.getLogger(__name__)

Runtime = Literal["onnx", "torch"]
RUNTIMES: tuple[str, ...] = ("onnx", "torch")


class Runner(Protocol):
    """``runner(images (N, H, W, 3) uint8) -> probs (N, K, H, W) float32`` (softmax over K)."""

    name: str

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class TorchRunner:
    """The model itself, eagerly, under ``torch.no_grad`` (the model must be in eval mode). Not
    ``inference_mode``: tensors made there cannot be updated in place later, and modules may keep
    buffers from one call to the next (the guided filter's CPU engine does)."""

    name = "torch"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = to_input(images).to(_device(self.model))
        return torch.softmax(self.model(x), dim=1).float().cpu().numpy()


class OnnxRunner:
    """An ONNX Runtime session of a graph made by :func:`core.inference.export.export_onnx`."""

    name = "onnx"

    def __init__(self, onnx_model: bytes, *, threads: int | None = None) -> None:
        from core.inference.export import INPUT
        from core.inference.session import make_session

        self.session = make_session(onnx_model, threads=threads)
        self._input = INPUT

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self._input: np.ascontiguousarray(images, dtype=np.uint8)})[0]
        return np.asarray(out, dtype=np.float32)


class FallbackRunner:
    """An ONNX Runtime runner with torch behind it: a batch ONNX Runtime fails on is logged (WARNING)
    and predicted with the torch runner ``make_torch()`` gives (made on the first failure, then kept:
    for a cached graph that is when the checkpoint is loaded)."""

    name = "onnx"

    def __init__(self, onnx: Runner, make_torch: Callable[[], Runner]) -> None:
        self.onnx = onnx
        self._make_torch = make_torch
        self._torch: Runner | None = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        try:
            return self.onnx(images)
        except Exception as exc:
            log.warning("ONNX Runtime failed on a batch of shape %s (%s); predicting it with torch", images.shape, exc)
            if self._torch is None:
                self._torch = self._make_torch()
            return self._torch(images)


def export_runner(model: nn.Module, threads: int) -> tuple[OnnxRunner, bytes] | None:
    """``model`` exported (:func:`core.inference.export.export_onnx`) and its session, with the graph's
    bytes; ``None`` with a WARNING when the export fails (the caller runs torch)."""
    from core.inference.export import ExportError, export_onnx

    try:
        data = export_onnx(model)
    except ExportError as exc:
        log.warning("%s; predicting with torch instead", exc)
        return None
    return OnnxRunner(data, threads=threads), data


def weights_key(model: nn.Module) -> Hashable | None:
    """What identifies ``model``'s current weights and settings, or ``None`` when it cannot be told
    (tensors made under ``torch.inference_mode`` have no version counter)."""
    try:
        tensors = tuple(
            (id(t), t.data_ptr(), t._version, tuple(t.shape), t.dtype) for t in (*model.parameters(), *model.buffers())
        )
    except RuntimeError:
        return None
    return tensors, repr(model)


_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[nn.Module, tuple[Hashable, int, OnnxRunner | None]] = weakref.WeakKeyDictionary()


def onnx_runner(model: nn.Module, *, threads: int | None = None) -> OnnxRunner | None:
    """The cached :class:`OnnxRunner` of ``model``'s current weights (exported now if they changed),
    or ``None`` (with a WARNING, once per weights) when the export fails."""
    n = torch.get_num_threads() if threads is None else threads
    key = weights_key(model)
    with _lock:
        hit = _cache.get(model)
        if key is not None and hit is not None and hit[0] == key and hit[1] == n:
            return hit[2]
        made = export_runner(model, n)
        runner = made[0] if made is not None else None
        if key is not None:
            _cache[model] = (key, n, runner)
        return runner


def runner_for(model: nn.Module, runtime: str = "onnx", *, threads: int | None = None) -> Runner:
    """The runner for ``model`` (in eval mode) on ``runtime``: ``"onnx"`` (ONNX Runtime, the default;
    torch when the model is not on the CPU or cannot be exported) or ``"torch"``.

    ``threads``: ONNX Runtime's intra-op threads; ``None`` = torch's current setting
    (``torch.get_num_threads()``, by default the cores available), so ``--threads`` and
    ``core.threads.torch_threads`` apply to both runtimes.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx" and _device(model).type == "cpu":
        runner = onnx_runner(model, threads=threads)
        if runner is not None:
            return runner
    return TorchRunner(model)


def clear_cache() -> None:
    """Forget every exported model (their sessions are freed)."""
    with _lock:
        _cache.clear()
