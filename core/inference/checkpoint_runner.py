"""A checkpoint file -> a runner, through the on-disk ONNX cache: ``gfn-autolabel predict``'s loader.

On a cache hit the ONNX Runtime session is made from the cached graph and the torch model is not
built at all (it is loaded only if ONNX Runtime then fails on a batch, to predict that batch with
torch). On a miss the checkpoint is loaded, exported (:func:`core.inference.export.export_onnx`,
which verifies the graph against torch) and the graph stored for the next call. A cached graph
that ONNX Runtime cannot load is deleted and rebuilt.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.inference.cache import OnnxCache, checkpoint_key, default_dir
from core.inference.runtime import FallbackRunner, OnnxRunner, Runner, TorchRunner, export_runner

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


@dataclass
class LoadedRunner:
    """What :func:`load_runner` gives.

    Attributes:
        runner: ``images (N, H, W, 3) uint8 -> probs (N, K, H, W) float32``.
        class_names: the checkpoint's class names, index order.
        model: the torch model when it was built (a miss, or ``runtime="torch"``), else ``None``.
        cache: ``"hit"``, ``"miss"`` (exported now, stored), ``"off"`` (no cache used) or
            ``"failed"`` (the export failed: torch runs the model).
        seconds: time per stage (``hash``, ``cache_read``, ``load_checkpoint``, ``export`` (with the
            session on a miss), ``session`` (a hit)).
    """

    runner: Runner
    class_names: list[str]
    model: nn.Module | None
    cache: str
    seconds: dict[str, float] = field(default_factory=dict)


def load_runner(
    checkpoint: str | os.PathLike,
    *,
    runtime: str = "onnx",
    threads: int | None = None,
    cache: OnnxCache | str | None = "default",
) -> LoadedRunner:
    """The runner of the checkpoint file ``checkpoint`` on ``runtime`` (``"onnx"`` or ``"torch"``).

    ``cache``: an :class:`OnnxCache`, ``None`` (no cache) or ``"default"`` (:func:`default_dir`,
    which the environment may disable). ``threads``: ONNX Runtime's intra-op threads (``None`` =
    torch's current setting, as :func:`core.inference.runner_for`).
    """
    from core.inference.runtime import RUNTIMES

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    if isinstance(cache, str):
        if cache != "default":
            raise ValueError(f"cache must be an OnnxCache, None or 'default', got {cache!r}")
        folder = default_dir()
        cache = OnnxCache(folder) if folder is not None else None
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    seconds: dict[str, float] = {}
    n = torch.get_num_threads() if threads is None else threads
    key = None
    if runtime == "onnx" and cache is not None:
        t = time.perf_counter()
        key = checkpoint_key(path)
        seconds["hash"] = time.perf_counter() - t
        t = time.perf_counter()
        entry = cache.get(key)
        seconds["cache_read"] = time.perf_counter() - t
        if entry is not None:
            t = time.perf_counter()
            try:
                onnx = OnnxRunner(entry.onnx, threads=n)
            except Exception as exc:  # ONNX Runtime's load errors have several types
                log.warning("ONNX Runtime cannot load the cached graph %s (%s); exporting again", cache.path(key), exc)
                cache.discard(key)
            else:
                seconds["session"] = time.perf_counter() - t
                names = [str(c) for c in entry.meta.get("classes", [])]
                return LoadedRunner(FallbackRunner(onnx, lambda: _torch_runner(path)), names, None, "hit", seconds)
    from core.network.checkpoint import load_checkpoint

    t = time.perf_counter()
    ckpt = load_checkpoint(path)
    model = ckpt.model.eval()
    names = list(ckpt.classmap.names)
    seconds["load_checkpoint"] = time.perf_counter() - t
    if runtime == "torch" or next(model.parameters()).device.type != "cpu":
        return LoadedRunner(TorchRunner(model), names, model, "off", seconds)
    t = time.perf_counter()
    made = export_runner(model, n)  # (export + session)
    seconds["export"] = time.perf_counter() - t
    if made is None:
        return LoadedRunner(TorchRunner(model), names, model, "failed", seconds)
    runner = FallbackRunner(made[0], lambda: TorchRunner(model))
    if cache is None or key is None:
        return LoadedRunner(runner, names, model, "off", seconds)
    cache.put(key, made[1], {"classes": names, "checkpoint": str(path)})
    return LoadedRunner(runner, names, model, "miss", seconds)


def _torch_runner(path: Path) -> TorchRunner:
    """The checkpoint's model on torch (loaded when ONNX Runtime failed on a batch of a cache hit)."""
    from core.network.checkpoint import load_checkpoint

    return TorchRunner(load_checkpoint(path).model.eval())
