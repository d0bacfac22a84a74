"""Fast prediction: trained networks exported to ONNX and run by ONNX Runtime, with reading and
writing overlapped with the network. torch stays for training (and as the fallback runtime)."""

from core.inference.export import ExportError, export_onnx
from core.inference.pipeline import READ_AHEAD, WriteBehind, read_ahead
from core.inference.runtime import RUNTIMES, OnnxRunner, Runner, TorchRunner, clear_cache, runner_for

__all__ = [
    "READ_AHEAD",
    "RUNTIMES",
    "ExportError",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "WriteBehind",
    "clear_cache",
    "export_onnx",
    "read_ahead",
    "runner_for",
]
