"""Coarse per-class foreground maps (CAMs or class-agnostic activation) for a dataset."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from core.classmap import ClassMap
from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.labels import image_classes
from core.initial.resize import resize_longest
from core.progress import Progress

log = logging.getLogger(__name__)


def centre_map(hw: tuple[int, int], side: float) -> np.ndarray:
    """``(h, w)`` map: 1 inside a centred box of ``side`` x the image sides, 0 outside."""
    h, w = hw
    out = np.zeros((h, w), np.float32)
    y0, x0 = round(h * (1 - side) / 2), round(w * (1 - side) / 2)
    out[y0 : h - y0, x0 : w - x0] = 1.0
    return out


def topk_map(image: np.ndarray, config: InitConfig) -> np.ndarray:
    """Class-agnostic ``(h, w)`` map in [0, 1] of one working image: the CAMs of its top-k ImageNet
    classes (the coarse map of a single image, when no label names a class)."""
    from core.initial.imagenet import ImagenetCAM

    cam = ImagenetCAM(
        size=config.cam_size,
        scales=config.cam_scales,
        flip=config.cam_flip,
        output_stride=config.cam_output_stride,
        top_k=config.cam_top_k,
    )
    return cam.maps(image, None)[0]


class CoarseMaps:
    """Per-class coarse maps for the images of one dataset.

    ``cams(image, classes)`` -> ``(len(classes), h, w)`` in [0, 1] at the image's size. The source
    follows ``config.cam_source`` (``trained`` fits a GAP classifier on the labels first) and, for
    GrabCut seeding, ``coarse`` (``topk``, ``activation`` and ``centre`` ignore the class;
    ``auto`` = ``cam`` with several classes, else ``topk``).
    """

    def __init__(
        self,
        dataset: Dataset | None,
        classmap: ClassMap,
        config: InitConfig,
        *,
        coarse: str = "cam",
        progress: Progress | None = None,
    ):
        from core.initial.imagenet import imagenet_indices

        self.cfg, self.classmap, self.coarse = config, classmap, coarse
        self.trained = None
        self.imagenet = None
        self.indices: dict[int, tuple[int, ...] | None] = {}
        if coarse == "centre":
            self.source = "centre"
            return
        multi = len(classmap.foreground) > 1
        if coarse == "auto":
            coarse = "cam" if multi else "topk"
        source = config.cam_source
        if source == "auto":
            source = "trained" if multi else "imagenet"
        if coarse in ("activation", "topk"):
            source = coarse
        self.source = source
        if source == "trained":
            if dataset is None:
                raise ValueError("a trained CAM classifier needs the dataset's images and labels")
            from core.initial.classifier import TrainedCAM

            samples = list(dataset)
            labels = [image_classes(s, classmap) for s in samples]
            present = sorted({c for labs in labels for c in labs})
            if len(present) < 2:
                log.warning(
                    "only one class is present in the labels; a trained classifier cannot tell classes "
                    "apart, using the ImageNet CAM instead"
                )
                self.source = source = "imagenet"
            else:
                self.trained = TrainedCAM(
                    classmap.num_classes - 1,
                    size=config.cam_size,
                    flip=config.cam_flip,
                    output_stride=config.cam_output_stride,
                    epochs=config.classifier_epochs,
                    lr=config.classifier_lr,
                    batch_size=config.classifier_batch_size,
                    seed=config.seed,
                ).fit(lambda i: resize_longest(samples[i].load_image(), config.work_size), labels, progress=progress)
                return
        from core.initial.imagenet import ImagenetCAM

        self.imagenet = ImagenetCAM(
            size=config.cam_size,
            scales=config.cam_scales,
            flip=config.cam_flip,
            output_stride=config.cam_output_stride,
            top_k=config.cam_top_k,
        )
        for c, name in enumerate(classmap.names):
            if c:
                self.indices[c] = imagenet_indices(name, config.imagenet_map) if source == "imagenet" else None

    def describe(self) -> dict:
        """What the maps are made from (for ``InitialResult.info``)."""
        out: dict = {"coarse_source": self.source}
        if self.source == "imagenet":
            out["imagenet_classes"] = {
                self.classmap.names[c]: (list(v) if v else "class-agnostic top-k") for c, v in self.indices.items()
            }
        return out

    def cams(self, image: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        """``(len(classes), h, w)`` float32 maps in [0, 1] for an ``(h, w, 3)`` working image."""
        h, w = image.shape[:2]
        if self.source == "centre":
            m = centre_map((h, w), self.cfg.centre_box)
            return np.repeat(m[None], len(classes), axis=0)
        if self.trained is not None:  # (set only for the "trained" source)
            return self.trained.maps(image, classes)
        if self.imagenet is None:
            raise RuntimeError(f"coarse source {self.source!r} has no ImageNet classifier loaded")
        if self.source == "activation":
            a = self.imagenet.activation(image)
            return np.repeat(a[None], len(classes), axis=0)
        return np.stack([self.imagenet.maps(image, self.indices.get(c))[0] for c in classes])
