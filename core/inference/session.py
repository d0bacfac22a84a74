"""ONNX Runtime sessions for prediction on the CPU: one place for the session options."""

from __future__ import annotations

import os

import onnxruntime as ort  # type: ignore[import-untyped]


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def make_session(model: bytes | str | os.PathLike, *, threads: int | None = None) -> ort.InferenceSession:
    """A CPU ``InferenceSession`` for ``model`` (serialised ONNX or a path).

    Options: all graph optimisations, sequential execution (one node at a time, each over
    ``threads`` intra-op threads; ``None`` = :func:`cpu_count`), one inter-op thread, and intra-op
    threads that sleep instead of spinning between nodes, so the reader thread that decodes the next
    images and other processes on a busy machine get the cores back.
    """
    n = cpu_count() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = n
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
