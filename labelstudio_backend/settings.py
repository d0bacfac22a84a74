"""``BackendSettings``: every knob of the ML backend, read once from the environment.

The API key and the basic-auth password are kept out of ``repr`` so that logging a settings
object never leaks them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODEL_DIR = Path(os.environ.get("GFN_CACHE", "~/.cache/gfn-autolabel")).expanduser() / "labelstudio-models"

# environment variable -> settings field
ENV_VARS: dict[str, str] = {
    "LABEL_STUDIO_URL": "label_studio_url",
    "LABEL_STUDIO_API_KEY": "api_key",
    "MODEL_DIR": "model_dir",
    "ALLOWED_HOSTS": "allowed_hosts",
    "LOCAL_ROOTS": "local_roots",
    "MAX_IMAGE_BYTES": "max_image_bytes",
    "MAX_IMAGE_PIXELS": "max_image_pixels",
    "BASIC_AUTH_USER": "basic_auth_user",
    "BASIC_AUTH_PASS": "basic_auth_pass",
    "ALLOW_UNAUTHENTICATED": "allow_unauthenticated",
    "MAX_BODY_BYTES": "max_body_bytes",
    "MAX_CACHED_IMAGES": "max_cached_images",
    "MAX_CACHED_IMAGE_BYTES": "max_cached_image_bytes",
    "PREDICT_CONCURRENCY": "predict_concurrency",
    "LABEL_KEYS": "label_keys",
    "TRAIN_EVERY": "train_every",
    "TRAIN_EPOCHS": "train_epochs",
    "TRAIN_MIN_STEPS": "train_min_steps",
    "TRAIN_MAX_SIDE": "train_max_side",
    "TRAIN_RECIPE": "train_recipe",
    "BACKBONE": "backbone",
    "PRETRAINED": "pretrained",
    "INIT_ROUTE": "init_route",
    "PSEUDO_MIN_SCORE": "pseudo_min_score",
    "FETCH_TIMEOUT": "fetch_timeout",
    "TORCH_THREADS": "torch_threads",
    "THREADS": "threads",
    "POSTPROCESS": "postprocess",
    "POSTPROCESS_MAX_SIDE": "postprocess_max_side",
    "GRABCUT_ITERS": "grabcut_iters",
}


TRAIN_RECIPES = ("default", "sgd")
"""``TRAIN_RECIPE`` values: the engine's ``TrainConfig`` recipe, or paper 001's SGD (``LEGACY_ROUND_RECIPE``)."""


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.replace(";", ",").split(",") if v.strip())


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected true/false (or 1/0, yes/no)")


@dataclass(frozen=True, kw_only=True)
class BackendSettings:
    """Configuration of the ML backend (see ``docs/LABELSTUDIO.md`` for the environment variables).

    Attributes:
        label_studio_url: base URL of Label Studio (``LABEL_STUDIO_URL``), used to fetch
            ``/data/upload/...`` and ``/data/local-files/?d=...`` images with the API key.
        api_key: Label Studio API token (``LABEL_STUDIO_API_KEY``), sent as
            ``Authorization: Token <key>`` to Label Studio only; never logged.
        model_dir: root of the per-project folders (``MODEL_DIR/<project>/...``).
        allowed_hosts: other hosts whose ``http(s)`` image URLs may be fetched; ``*.example.com``
            matches sub-domains (those must resolve to public addresses).
        local_roots: folders inside which task values that are local paths may be read.
        max_image_bytes, max_image_pixels: limits on one fetched image.
        basic_auth_user, basic_auth_pass: when both are set, every route needs HTTP basic auth.
        allow_unauthenticated: serve on a non-loopback address without basic auth
            (``--allow-unauthenticated``); refused otherwise, and logged at WARNING when used.
        max_body_bytes: largest request body accepted (``413`` above it, checked from
            ``Content-Length`` and while reading).
        max_cached_images, max_cached_image_bytes: per project, the stored task images
            (``images/``) are kept under this count and this many bytes; the oldest are evicted
            (images of tasks with a human mask last).
        predict_concurrency: model computations running at once per worker (the rest wait; image
            fetches are not counted).
        label_keys: task-data keys holding an image-level label (first present wins).
        train_every: start a refinement round after this many new annotations (0 = only when
            Label Studio asks for training).
        train_epochs, train_max_side: training overrides (``None`` = the engine's defaults).
        train_min_steps: at least this many optimiser steps per round: a project's first rounds have
            few annotated tasks, and a handful of steps leaves the network predicting background only.
        train_recipe: ``"default"``: the engine's training recipe (``TrainConfig``: AdamW, four frozen
            backbone stages); ``"sgd"``: paper 001's SGD recipe (``LEGACY_ROUND_RECIPE``), which the
            backend used before. On real photos the default is far better: 8 annotated Weizmann horses,
            the other 156 labelled at foreground IoU 0.807 / 0.560 (seeds 0 / 1) against 0.436 / 0.147
            with SGD; on tiny synthetic shapes SGD does better (``docs/RESULTS.md``).
        backbone, pretrained: the GFN built for a project's first training.
        init_route: initial-mask route for single images before any model is trained.
        pseudo_min_score: pseudo-labels below this reliability are left out of training.
        fetch_timeout: total deadline in seconds for one image download (connection, redirects and
            every byte of the body), not a per-read timeout.
        torch_threads: torch and ONNX Runtime intra-op threads per worker (``None`` = torch's default;
            ``serve-labelstudio`` sets cores // workers when ``TORCH_THREADS`` is unset).
        threads: request threads per worker for the blocking routes (``None`` = 40, anyio's default).
        postprocess: the post-processing chain of the backend's predictions (served, and the pseudo-labels
            its rounds train on), e.g. ``"grabcut"`` (``None`` = the one the model's checkpoint was run
            with, usually ``"crf+grabcut"``).
        postprocess_max_side: the longest side at which that chain works (``None`` = the checkpoint's,
            400 by default); larger images are post-processed at this size and their result enlarged.
        grabcut_iters: GrabCut iterations of that chain (``None`` = the checkpoint's, 5 by default).
            These three trade mask quality for latency: see ``docs/RESULTS.md`` ("Label Studio latency").
    """

    label_studio_url: str = ""
    api_key: str = field(default="", repr=False)
    model_dir: Path = DEFAULT_MODEL_DIR
    allowed_hosts: tuple[str, ...] = ()
    local_roots: tuple[Path, ...] = ()
    max_image_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    basic_auth_user: str = ""
    basic_auth_pass: str = field(default="", repr=False)
    allow_unauthenticated: bool = False
    max_body_bytes: int = 32 * 1024 * 1024
    max_cached_images: int = 5000
    max_cached_image_bytes: int = 2 * 1024**3
    predict_concurrency: int = 1
    label_keys: tuple[str, ...] = ("label", "class")
    train_every: int = 0
    train_epochs: int | None = None
    train_min_steps: int = 60
    train_max_side: int | None = None
    train_recipe: str = "default"
    backbone: str = "mobilenet_v2"
    pretrained: bool | None = None
    init_route: str = "grabcut"
    pseudo_min_score: float = 0.0
    fetch_timeout: float = 20.0
    torch_threads: int | None = None
    threads: int | None = None
    postprocess: str | None = None
    postprocess_max_side: int | None = None
    grabcut_iters: int | None = None

    def __post_init__(self) -> None:
        url = self.label_studio_url.strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(f"LABEL_STUDIO_URL={url!r}: expected an http:// or https:// URL")
        object.__setattr__(self, "label_studio_url", url)
        object.__setattr__(self, "model_dir", Path(self.model_dir).expanduser())
        object.__setattr__(self, "local_roots", tuple(Path(p).expanduser().resolve() for p in self.local_roots))
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in self.allowed_hosts))
        for name in (
            "max_image_bytes",
            "max_image_pixels",
            "max_body_bytes",
            "max_cached_images",
            "max_cached_image_bytes",
            "predict_concurrency",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.train_every < 0:
            raise ValueError(f"TRAIN_EVERY must be >= 0 (0 = only on START_TRAINING), got {self.train_every}")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise ValueError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
        if not self.fetch_timeout > 0:
            raise ValueError(f"FETCH_TIMEOUT must be > 0 seconds, got {self.fetch_timeout}")
        if not self.label_keys:
            raise ValueError("LABEL_KEYS must name at least one task-data key")
        if self.postprocess is not None:
            from core.postprocess.refine import METHODS  # (core.refine.sections.parse_chain's steps, light import)

            steps = [p.strip() for p in self.postprocess.split("+")]
            bad = [p for p in steps if p not in METHODS]
            if bad:
                raise ValueError(
                    f"POSTPROCESS={self.postprocess!r}: unknown step(s) {bad}; use one of {list(METHODS)} "
                    f"or several joined by '+', e.g. 'crf+grabcut'"
                )
        if self.train_recipe not in TRAIN_RECIPES:
            raise ValueError(f"TRAIN_RECIPE={self.train_recipe!r}: expected one of {list(TRAIN_RECIPES)}")
        if self.postprocess_max_side is not None and self.postprocess_max_side < 16:
            raise ValueError(f"POSTPROCESS_MAX_SIDE must be >= 16 pixels, got {self.postprocess_max_side}")
        if self.grabcut_iters is not None and self.grabcut_iters < 1:
            raise ValueError(f"GRABCUT_ITERS must be >= 1, got {self.grabcut_iters}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"TORCH_THREADS must be >= 1, got {self.torch_threads}")

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        return (self.basic_auth_user, self.basic_auth_pass) if self.basic_auth_user else None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BackendSettings:
        """From field names; unknown keys are refused with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown backend setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> BackendSettings:
        """Read the variables of :data:`ENV_VARS`; ``overrides`` (field names) win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, name in ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _parse(var, name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values)


def _parse(var: str, name: str, raw: str) -> Any:
    if name in ("allowed_hosts", "label_keys"):
        return _split(raw)
    if name == "local_roots":
        return tuple(Path(p) for p in _split(raw.replace(os.pathsep, ",")))
    if name in ("pretrained", "allow_unauthenticated"):
        return _bool(var, raw)
    if name in (
        "max_image_bytes",
        "max_image_pixels",
        "max_body_bytes",
        "max_cached_images",
        "max_cached_image_bytes",
        "predict_concurrency",
        "train_every",
        "train_epochs",
        "train_min_steps",
        "train_max_side",
        "torch_threads",
        "threads",
        "postprocess_max_side",
        "grabcut_iters",
    ):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r}: expected an integer") from None
    if name in ("pseudo_min_score", "fetch_timeout"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r}: expected a number") from None
    return raw
