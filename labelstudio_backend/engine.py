"""The only module of the backend that calls the engine in ``core``.

- :meth:`Engine.label`: a trained model (``core.refine.apply.Labeller``) on one image.
- :meth:`Engine.initial`: ``core.initial.initial_mask_for_image`` before any model is trained,
  and for interactive prompts (box, clicks).
- :meth:`Engine.train`: one refinement round's training on human masks and pseudo-labels: the
  engine's own ``core.refine.round_model.train_round_model``, with the backend's ``RunConfig``.

Heavy imports (torch) happen inside the methods, so importing the app stays fast.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.classmap import ClassMap
from core.progress import Progress
from labelstudio_backend.prompts import Prompt
from labelstudio_backend.settings import BackendSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """What one training round produced."""

    checkpoint: Path
    seconds: float
    n_human: int
    n_pseudo: int
    epochs: int
    final_loss: float | None


class Engine:
    """Engine calls with per-process caching of loaded models (thread-safe)."""

    def __init__(self, settings: BackendSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._labellers: dict[Path, Any] = {}

    # -- configuration -------------------------------------------------------------------------
    def run_config(self):
        """The refinement recipe used for the backend's rounds: the engine's defaults with the settings.

        ``TRAIN_RECIPE=sgd`` swaps in paper 001's SGD recipe (``LEGACY_ROUND_RECIPE``), which the backend
        used before: measured on real photos (8 annotated horses, the rest labelled) the engine's recipe
        is far better (foreground IoU 0.807 / 0.560 against 0.436 / 0.147, seeds 0 / 1)."""
        from core.refine.config import RunConfig
        from core.refine.config_keys import LEGACY_ROUND_RECIPE

        s = self.settings
        changes: dict[str, Any] = {
            **(LEGACY_ROUND_RECIPE if s.train_recipe == "sgd" else {}),
            "network.backbone": s.backbone,
            "network.warm_start": True,
            "num_threads": s.torch_threads,
            "train.min_steps": s.train_min_steps,
        }
        if s.pretrained is not None:
            changes["network.pretrained"] = s.pretrained
        if s.train_epochs is not None:
            changes["train.epochs"] = s.train_epochs
        if s.train_max_side is not None:
            changes["max_side"] = s.train_max_side
        return RunConfig.from_dict(changes)

    # -- inference -----------------------------------------------------------------------------
    def _overrides(self) -> dict[str, Any]:
        """``Labeller.from_checkpoint`` options from the settings (``TORCH_THREADS``, ``POSTPROCESS``)."""
        out: dict[str, Any] = {"num_threads": self.settings.torch_threads}
        if self.settings.postprocess is not None:
            out["postprocess"] = self.settings.postprocess
        return out

    def labeller(self, checkpoint: Path):
        """The ``Labeller`` of ``checkpoint``, loaded once per process (its ONNX Runtime session is made on
        the first prediction and kept with it: ``core.inference.runtime``)."""
        from core.refine.apply import Labeller

        checkpoint = Path(checkpoint)
        with self._lock:
            lab = self._labellers.get(checkpoint)
            if lab is None:
                t0 = time.perf_counter()
                lab = Labeller.from_checkpoint(checkpoint, **self._overrides())
                # POSTPROCESS_MAX_SIDE, GRABCUT_ITERS over the checkpoint's chain parameters
                s = self.settings
                lab.post_params = dataclasses.replace(
                    lab.post_params,
                    max_side=lab.post_params.max_side if s.postprocess_max_side is None else s.postprocess_max_side,
                    grabcut_iters=lab.post_params.grabcut_iters if s.grabcut_iters is None else s.grabcut_iters,
                )
                # keep only the newest model of each project in memory
                for old in [p for p in self._labellers if p.parent.parent == checkpoint.parent.parent]:
                    del self._labellers[old]
                self._labellers[checkpoint] = lab
                log.info(
                    "loaded %s in %.1fs (classes %s; post-processing %r at %d px, GrabCut %d iterations, network at "
                    "%s px, flip TTA %s, %s thread(s))",
                    checkpoint,
                    time.perf_counter() - t0,
                    list(lab.classmap.foreground),
                    lab.postprocess,
                    lab.post_params.max_side,
                    lab.post_params.grabcut_iters,
                    lab.max_side,
                    lab.tta_flip,
                    lab.num_threads or "default",
                )
        return lab

    def label(
        self, checkpoint: Path, image: np.ndarray, labels: Sequence[str] | None
    ) -> tuple[np.ndarray, float, ClassMap]:
        """``(mask (H, W) uint8 in the model's class indices, score, the model's class map)``."""
        lab = self.labeller(checkpoint)
        mask, score, _ = lab.label(image, list(labels) if labels else None)
        return mask, float(score), lab.classmap

    def label_many(
        self, checkpoint: Path, images: Sequence[Path], labels: Sequence[Sequence[str] | None]
    ) -> list[tuple[np.ndarray, float]]:
        lab = self.labeller(checkpoint)
        out = lab.label_many(list(images), [list(x) if x else None for x in labels])
        return [(m, float(s)) for m, s, _ in out]

    def initial(
        self,
        image: np.ndarray,
        class_index: int,
        num_classes: int,
        *,
        prompt: Prompt | None = None,
        route: str | None = None,
    ) -> tuple[np.ndarray, float]:
        """``initial_mask_for_image``: values ``{0, class_index}`` and a reliability score."""
        from core.initial import initial_mask_for_image

        box = points = None
        if prompt is not None and not prompt.empty:
            box = prompt.box
            points = [(x, y, 1 if positive else 0) for x, y, positive in prompt.points] or None
            route = "grabcut"
        mask, score = initial_mask_for_image(
            image,
            int(class_index),
            route=route or self.settings.init_route,
            box=box,
            points=points,
            num_classes=num_classes,
        )
        return np.asarray(mask, dtype=np.uint8), float(score)

    # -- training ------------------------------------------------------------------------------
    def pseudo_training_label(self, mask: np.ndarray) -> np.ndarray:
        """A pseudo-label as the engine trains on it (an ignore band around its boundaries)."""
        from core.refine import filters

        cfg = self.run_config()
        return filters.training_label(mask, None, ignore_margin=0.0, band_fraction=cfg.filters.boundary_band)

    def train(
        self,
        pairs: Sequence[tuple[Path, np.ndarray]],
        classmap: ClassMap,
        *,
        out_path: Path,
        warm_start: Path | None,
        n_human: int,
        round_index: int,
        progress: Progress | None = None,
    ) -> TrainOutcome:
        """Train a GFN on ``pairs`` (image path, class-index mask with 255 = ignore); save to ``out_path``.

        The engine's own round training (``core.refine.round_model.train_round_model``), warm-started
        from ``warm_start`` when its class map and backbone equal this one's.
        """
        from core.refine.round_model import train_round_model

        t0 = time.perf_counter()
        trained = train_round_model(
            pairs,
            classmap,
            self.run_config(),
            round_index=round_index,
            out_path=Path(out_path),
            warm_start=Path(warm_start) if warm_start is not None else None,
            origin="labelstudio",
            n_human=n_human,
            progress=progress,
        )
        return TrainOutcome(
            checkpoint=trained.checkpoint,
            seconds=time.perf_counter() - t0,
            n_human=trained.training.n_human,
            n_pseudo=trained.training.n_pseudo,
            epochs=trained.training.epochs,
            final_loss=trained.losses[-1] if trained.losses else None,
        )
