"""A persistent on-disk cache of exported ONNX graphs, so a repeated ``predict`` with the same
checkpoint neither exports the network again nor builds the torch model at all.

An entry is keyed by the SHA-256 of the checkpoint file's bytes (weights, config and class map
together: any change to the weights or to a module's settings is a different key) and by the
export settings (:data:`EXPORT_SETTINGS`: the ONNX opset, the wrapper's version, torch's version).
It is one file ``<key>.onnxc`` (written atomically: a temporary file renamed into place)::

    b"GFNONNX1"  |  header length (8 bytes, little endian)  |  header (JSON)  |  ONNX model bytes

The header holds the key, the payload's size and SHA-256 and what the caller stored with it (e.g.
the class names). :meth:`OnnxCache.get` checks all of them: a truncated, corrupt or foreign entry
is logged, deleted and reported as a miss, so the caller rebuilds it.

Where: ``$GFN_AUTOLABEL_ONNX_CACHE`` when set (``0``, ``off``, ``no``, ``none`` or empty: no
cache), else ``$XDG_CACHE_HOME/gfn-autolabel/onnx``, else ``~/.cache/gfn-autolabel/onnx``. A
folder that cannot be written is logged once and the cache is then not used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "GFN_AUTOLABEL_ONNX_CACHE"
"""Environment variable: the cache folder, or ``0``/``off``/``no``/``none``/empty to disable it."""

_OFF = ("", "0", "off", "no", "none", "false")
_MAGIC = b"GFNONNX1"
_SUFFIX = ".onnxc"
WRAPPER_VERSION = 2
"""Bump when :class:`core.inference.export.ProbsWrapper` or the export options change the graph."""


def export_settings() -> dict[str, Any]:
    """What besides the weights decides the exported graph (part of every key)."""
    import torch

    from core.inference.export import INPUT, OPSET, OUTPUT

    return {"opset": OPSET, "wrapper": WRAPPER_VERSION, "torch": torch.__version__, "io": [INPUT, OUTPUT]}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_key(path: str | os.PathLike, settings: Mapping[str, Any] | None = None) -> str:
    """The cache key (64 hex digits) of the checkpoint file at ``path`` under export ``settings``
    (default :func:`export_settings`)."""
    s = export_settings() if settings is None else dict(settings)
    h = hashlib.sha256(file_sha256(path).encode())
    h.update(json.dumps(s, sort_keys=True).encode())
    return h.hexdigest()


def default_dir() -> Path | None:
    """The cache folder from the environment (see the module's docstring), or ``None`` when disabled."""
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gfn-autolabel" / "onnx"


@dataclass(frozen=True)
class Entry:
    """A cache hit: ``onnx`` the serialised model, ``meta`` what was stored with it."""

    onnx: bytes
    meta: dict[str, Any]


class OnnxCache:
    """ONNX graphs on disk in ``folder`` (created when first written), one file per key."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"cache key must be 64 lower-case hex digits, got {key!r}")
        return self.folder / f"{key}{_SUFFIX}"

    def get(self, key: str) -> Entry | None:
        """The entry of ``key``, or ``None`` when there is none or it is damaged (then it is deleted
        with a WARNING, so the caller's rebuild replaces it)."""
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the ONNX cache entry %s (%s); exporting again", path, exc)
            return None
        try:
            return _parse(raw, key)
        except ValueError as exc:
            log.warning("ONNX cache entry %s is damaged (%s); deleting it and exporting again", path, exc)
            self.discard(key)
            return None

    def put(self, key: str, onnx: bytes, meta: Mapping[str, Any] | None = None) -> Path | None:
        """Store ``onnx`` with ``meta`` (plain JSON data) under ``key``, atomically. Returns the
        entry's path, or ``None`` (with a WARNING) when the folder cannot be written."""
        from core.io.atomic import write_bytes_atomic

        header = {
            "key": key,
            "size": len(onnx),
            "sha256": hashlib.sha256(onnx).hexdigest(),
            "meta": dict(meta or {}),
        }
        head = json.dumps(header, sort_keys=True).encode()
        data = _MAGIC + len(head).to_bytes(8, "little") + head + onnx
        path = self.path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, data, overwrite=True)
        except OSError as exc:
            log.warning("cannot write the ONNX cache entry %s (%s); the next call will export again", path, exc)
            return None
        log.debug("cached the ONNX graph %s (%.1f MB)", path, len(data) / 1e6)
        return path

    def discard(self, key: str) -> None:
        """Delete the entry of ``key`` if there is one."""
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot delete the ONNX cache entry %s (%s)", self.path(key), exc)


def _parse(raw: bytes, key: str) -> Entry:
    """Split and check an entry's bytes; ``ValueError`` says what is wrong."""
    if not raw.startswith(_MAGIC):
        raise ValueError("not an ONNX cache entry (wrong magic bytes)")
    n = int.from_bytes(raw[len(_MAGIC) : len(_MAGIC) + 8], "little")
    start = len(_MAGIC) + 8
    if start + n > len(raw):
        raise ValueError(f"truncated header ({len(raw)} bytes in the file)")
    try:
        header = json.loads(raw[start : start + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable header ({exc})") from None
    if not isinstance(header, dict) or not {"key", "size", "sha256", "meta"} <= header.keys():
        raise ValueError("the header lacks key/size/sha256/meta")
    onnx = raw[start + n :]
    if header["key"] != key:
        raise ValueError(f"it belongs to key {str(header['key'])[:12]}...")
    if len(onnx) != header["size"]:
        raise ValueError(f"the model has {len(onnx)} bytes where {header['size']} were written")
    if hashlib.sha256(onnx).hexdigest() != header["sha256"]:
        raise ValueError("the model's SHA-256 differs from the one written")
    if not isinstance(header["meta"], dict):
        raise ValueError("meta is not a mapping")
    return Entry(onnx=onnx, meta=header["meta"])
