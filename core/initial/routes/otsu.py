"""Route ``otsu`` (paper 001 IV-A 2, simple-to-complex): Otsu masks on the simple-background
images train a GFN, which labels the others; for a single image, Otsu against the border colour."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.labels import image_classes
from core.initial.probs import fg_to_probs, onehot
from core.initial.resize import resize_longest, resize_mask
from core.initial.result import Collector, InitialResult
from core.initial.routes.base import Box, Point
from core.initial.scores import margin_confidence
from core.progress import Progress

log = logging.getLogger(__name__)


def _pick(samples: list, stats: list, config: InitConfig) -> tuple[list[int], str]:
    """Indices of the simple images (the user's ``simple_stems``, else picked) and who picked them."""
    from core.initial.otsu import pick_simple

    if config.simple_stems is not None:
        index = {s.stem: i for i, s in enumerate(samples)}
        unknown = [st for st in config.simple_stems if st not in index]
        if unknown:
            raise ValueError(f"simple_stems names images not in the dataset: {unknown[:10]}")
        picked, how = sorted(index[st] for st in config.simple_stems), "user"
    else:
        picked, how = pick_simple(stats, config), "auto"
    if not picked:
        raise ValueError("no simple-background image found for the otsu route; pass simple_stems")
    log.info("otsu route: %d of %d images treated as simple (%s)", len(picked), len(samples), how)
    return picked, how


def run(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialResult:
    """Otsu masks of the simple images (``config.simple_stems`` or picked automatically) as they
    are; a GFN trained on them labels the rest. Images take their first label; ``source`` is not used."""
    from core.initial.gfn_bridge import predict_gfn, train_gfn
    from core.initial.otsu import ignore_band, otsu_mask

    cmap = dataset.classmap
    k = cmap.num_classes
    samples = list(dataset)
    masks, stats = [], []
    for i, s in enumerate(samples):
        fg, st = otsu_mask(resize_longest(s.load_image(), config.work_size), config)
        masks.append(fg)
        stats.append(st)
        if progress is not None:
            progress("otsu", i + 1, len(samples))
    picked, how = _pick(samples, stats, config)
    pairs = [
        (
            resize_longest(samples[i].load_image(), config.work_size),
            ignore_band(masks[i].astype(np.uint8), config.ignore_band),
        )
        for i in picked
    ]
    model = train_gfn(pairs, 2, config, progress=progress)
    out = Collector(config.keep_probs)
    picked_set = set(picked)
    for i in picked:
        s = samples[i]
        mask = masks[i].astype(np.uint8) * image_classes(s, cmap)[0]
        out.add(s.stem, onehot(mask, k, soft=0.1), s.image_hw, stats[i].separability, mask=mask)
    rest = [i for i in range(len(samples)) if i not in picked_set]
    preds = predict_gfn(model, [samples[i].image_source for i in rest], config, progress=progress)
    for i, pred in zip(rest, preds):
        s = samples[i]
        probs = fg_to_probs(pred.probs[1], image_classes(s, cmap)[0], k)
        out.add(s.stem, probs, probs.shape[1:], margin_confidence(probs))
    info = {
        "n_simple": len(picked),
        "simple_stems": [samples[i].stem for i in picked],
        "simple_picked_by": how,
        "simple_stats": {samples[i].stem: vars(stats[i]) for i in range(len(samples))},
    }
    return out.result("otsu", info)


def for_image(
    image: np.ndarray, work: np.ndarray, *, box: Box | None, points: Sequence[Point] | None, config: InitConfig
) -> tuple[np.ndarray, float]:
    """Otsu of ``work`` against its border colour; the user's box and clicks are not used.

    Returns the ``(H, W)`` bool foreground at ``image``'s size and Otsu's separability in [0, 1].
    """
    from core.initial.otsu import otsu_mask

    fg, stats = otsu_mask(work, config)
    return resize_mask(fg.astype(np.uint8), image.shape[:2]).astype(bool), float(stats.separability)
