"""``Labeller``: apply a run's trained GFN to new images (FiftyOne "apply model", Label Studio backend).

Same steps as a refinement round without the previous round: predict (flip TTA), category
consistency with the image's labels (when given), post-process, reliability score.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.classmap import ClassMap
from core.io.working import DEFAULT_IMAGE_MAX_SIDE, WorkingImage, check_max_side, to_size, working_hw
from core.progress import Progress
from core.refine import filters
from core.threads import torch_threads

log = logging.getLogger(__name__)

ImageLike = str | os.PathLike | np.ndarray


class Labeller:
    """A trained GFN plus the post-processing it was run with.

    ``label(image, labels)`` -> ``(mask (H, W) uint8, score in [0, 1], probs (K, h, w) float32)``:
    the mask at the picture's own size, the probabilities at its working size (``image_max_side``,
    as in a run: a larger picture is decoded, predicted and post-processed at that longer side and
    only its mask is enlarged, by nearest neighbour; smaller pictures are labelled at their size).
    """

    def __init__(
        self,
        model,
        classmap: ClassMap,
        *,
        postprocess: str = "crf+grabcut",
        tta_flip: bool = True,
        max_side: int | None = 256,
        num_threads: int | None = None,
        consistency: str = "objectness",
        post_params: Mapping[str, Any] | None = None,
        image_max_side: int | None = DEFAULT_IMAGE_MAX_SIDE,
    ):
        from core.postprocess.refine import PostprocessConfig
        from core.refine.config import CONSISTENCY, parse_chain

        parse_chain(postprocess)
        self.model = model.eval()
        self.classmap = classmap
        self.postprocess = postprocess
        self.post_params = PostprocessConfig.from_dict(post_params or {})
        """The chain's parameters (a run's ``post.params``)."""
        self.tta_flip = tta_flip
        self.max_side = max_side
        check_max_side("image_max_side", image_max_side)
        self.image_max_side = image_max_side
        """Pictures are held at this longer side at most (``core.io.working``); ``None``: their own size."""
        self.num_threads = num_threads
        if consistency not in CONSISTENCY:
            raise ValueError(f"consistency {consistency!r} is unknown; choose one of {list(CONSISTENCY)}")
        self.consistency = consistency

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **overrides) -> Labeller:
        """Load ``model.pt`` of a run round (its post-processing and sizes come from the checkpoint;
        ``overrides``: ``postprocess``, ``tta_flip``, ``max_side``, ``num_threads``, ``consistency``,
        ``post_params``, ``image_max_side``)."""
        from core.network.checkpoint import load_checkpoint

        known = ("postprocess", "tta_flip", "max_side", "num_threads", "consistency", "post_params", "image_max_side")
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"unknown Labeller option(s) {unknown}; known: {list(known)}")
        ckpt = load_checkpoint(path)
        opts: dict[str, Any] = ckpt.inference.to_dict() if ckpt.inference is not None else {}
        opts.update(overrides)
        return cls(ckpt.model, ckpt.classmap, **opts)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, round_index: int | None = None, **overrides) -> Labeller:
        """The model of a run's best round (or of ``round_index``). Round 0 has no model: the nearest
        later round's model is used then, never the model of a round the collapse guard flagged."""
        from core.refine.runner import load_run

        run = load_run(Path(run_dir))
        want = run.best_round if round_index is None else round_index
        flagged = zip(run.rounds, run.verdicts) if run.config.stop.collapse_guard else ()
        collapsed = {r.index for r, v in flagged if v.collapsed and r.index != round_index}
        with_model = [(r.index, r.checkpoint) for r in run.rounds if r.checkpoint is not None]
        if collapsed and not [i for i, _ in with_model if i not in collapsed]:
            raise ValueError(f"run {run_dir} has no usable trained model: round(s) {sorted(collapsed)} collapsed")
        with_model = [(i, c) for i, c in with_model if i not in collapsed]
        if not with_model:
            raise ValueError(f"run {run_dir} has no trained model yet (only round 0 is finished)")
        index, checkpoint = next(((i, c) for i, c in with_model if i >= want), with_model[-1])
        if index != want:
            log.info("round %d has no model; using round %d's", want, index)
        return cls.from_checkpoint(checkpoint, **overrides)

    def _allowed(self, labels: Sequence[str | int] | None) -> list[int] | None:
        if labels is None:
            return None
        if isinstance(labels, (str, int)):
            labels = [labels]
        idx = [self.classmap.index(n) if isinstance(n, str) else int(n) for n in labels]
        return filters.allowed_classes(idx, self.classmap.num_classes)

    def _finish(
        self, image: np.ndarray, probs: np.ndarray, allowed: list[int] | None
    ) -> tuple[np.ndarray, float, np.ndarray]:
        from core.refine.postchain import postprocess

        probs = np.asarray(probs, dtype=np.float32)
        if allowed is not None:
            probs = filters.consistent_probs(probs, allowed, self.consistency)
        net_mask = probs.argmax(axis=0).astype(np.uint8)
        mask, _ = postprocess(image, probs, self.postprocess, params=self.post_params)
        if allowed is not None:
            mask = filters.consistent_mask(mask, allowed)
        score = filters.reliability(probs, mask, net_mask, None)["score"]
        return mask, score, probs

    def label(
        self, image: ImageLike, labels: Sequence[str | int] | str | None = None
    ) -> tuple[np.ndarray, float, np.ndarray]:
        """Label one image (``(H, W, 3) uint8`` RGB array or path). ``labels``: the image's class
        names (or indices); pixels of other classes become background. Without labels every class
        of the class map may appear."""
        return self.label_many([image], None if labels is None else [labels])[0]

    def label_many(
        self,
        images: Iterable[ImageLike],
        labels: Sequence[Sequence[str | int] | str | None] | None = None,
        progress: Progress | None = None,
    ) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """``label`` for many images; ``labels`` is ``None`` or one entry per image (each may be ``None``).

        Paths are decoded at the working size (``image_max_side``), never at full size when larger;
        arrays larger than it are shrunk (area interpolation). Each mask comes back at its picture's
        own size."""
        from core.io.images import image_size, read_image
        from core.training.predict import predict

        images = list(images)
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"got {len(labels)} label entries for {len(images)} images; give one per image or None")
        allowed = [self._allowed(None if labels is None else labels[i]) for i in range(len(images))]
        sizes: list[tuple[int, int]] = []
        arrays = []
        for im in images:
            if isinstance(im, (str, os.PathLike)):
                sizes.append(image_size(im))
                arrays.append(read_image(WorkingImage(Path(im), self.image_max_side)))
            else:
                sizes.append(_check_image(im).shape[:2])
                arrays.append(_shrink(im, self.image_max_side))
        out = []
        with torch_threads(self.num_threads):
            preds = predict(self.model, arrays, tta_flip=self.tta_flip, max_side=self.max_side)
            for i, (img, pred) in enumerate(zip(arrays, preds)):
                mask, score, probs = self._finish(img, pred.probs, allowed[i])
                out.append((to_size(mask, sizes[i]), score, probs))
                if progress is not None:
                    progress("label", i + 1, len(arrays))
        return out


def _shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``(H, W, 3)`` array held at ``working_hw`` (area interpolation); itself when not larger."""
    import cv2

    h, w = working_hw(image.shape[:2], max_side)
    return image if (h, w) == image.shape[:2] else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array or a path, got "
            f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}"
        )
    return image
