"""Route ``transfer`` (paper 001 IV-A 1): segmentation knowledge from a related labelled source,
either a labelled ``Dataset`` (a GFN trained on it) or a torchvision VOC-pretrained model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from core.classmap import ClassMap
from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.labels import image_classes
from core.initial.probs import fg_to_probs, keep_classes
from core.initial.resize import resize_longest
from core.initial.result import Collector, InitialResult
from core.initial.scores import margin_confidence
from core.progress import Progress


def run(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialResult:
    """Masks from ``source``: a labelled ``Dataset`` or its folder (a GFN trained on it, its masks
    binarised unless the class maps agree; the trained network comes back as the result's
    ``source_model``), a GFN checkpoint file (a source trained once: ``train``'s, or an earlier run's
    ``round_00/source_model.pt``), or a torchvision VOC model name
    (``deeplabv3_mobilenet_v3_large``, ..., ``voc`` = ``config.voc_model``, ``torchvision:`` prefix allowed)."""
    from core.initial.transfer import VOC_MODELS

    if source is None:
        raise ValueError(
            "route 'transfer' needs a source: a labelled Dataset (or its folder) of a related class, "
            f"or a torchvision VOC model name {list(VOC_MODELS)} (or 'voc')"
        )
    if isinstance(source, str) and not Path(source).exists():
        name = source.split(":", 1)[1] if source.startswith("torchvision:") else source
        return _from_voc_model(dataset, config.voc_model if name == "voc" else name, config, progress)
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        return _from_checkpoint(dataset, Path(source), config, progress)
    return _from_dataset(dataset, _load_source(source), config, progress)


def _load_source(source: Any) -> Dataset:
    if isinstance(source, Dataset):
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        from core.data.readers import load_dataset

        return load_dataset(source)
    raise ValueError(f"source must be a Dataset, a dataset folder or a torchvision VOC model name; got {source!r}")


def _from_voc_model(dataset: Dataset, model_name: str, config: InitConfig, progress: Progress | None) -> InitialResult:
    from core.initial.transfer import load_voc_model, voc_class, voc_foreground

    cmap = dataset.classmap
    k = cmap.num_classes
    model = load_voc_model(model_name, config.voc_weights)
    mapping = {c: voc_class(cmap.names[c], config.voc_map) for c in range(1, k)}
    out = Collector(config.keep_probs)
    for i, s in enumerate(dataset):
        classes = image_classes(s, cmap)
        image = s.load_image()
        work = resize_longest(image, config.work_size)
        probs = np.zeros((k, *work.shape[:2]), np.float32)
        fgs = np.stack([voc_foreground(model, work, mapping[c], flip=config.predict_flip) for c in classes])
        probs[0] = np.clip(1.0 - fgs.max(0), 0.0, 1.0)
        for j, c in enumerate(classes):
            probs[c] = fgs[j]
        probs /= np.maximum(probs.sum(0, keepdims=True), 1e-8)
        out.add(s.stem, probs, image.shape[:2], margin_confidence(probs))
        if progress is not None:
            progress("initial masks (transfer)", i + 1, len(dataset))
    info = {
        "source": f"torchvision:{model_name}",
        "weights": config.voc_weights,
        "voc_classes": {cmap.names[c]: v or "any" for c, v in mapping.items()},
    }
    return out.result("transfer", info)


def _from_dataset(dataset: Dataset, source: Dataset, config: InitConfig, progress: Progress | None) -> InitialResult:
    from core.initial.gfn_bridge import train_gfn
    from core.initial.transfer import binarise_source_mask

    src = source.with_gt()
    if len(src) == 0:
        raise ValueError("the transfer source has no ground-truth masks (Sample.mask_path / mask_fn)")
    cmap = dataset.classmap
    k = cmap.num_classes
    same = src.classmap == cmap and k > 2
    pairs = []
    for s in src:
        m = s.require_mask()
        pairs.append((s.image_source, m if same else binarise_source_mask(m)))
    model = train_gfn(pairs, k if same else 2, config, progress=progress)
    model_classes = cmap if same else ClassMap(("background", "object"))
    info = {
        "source": "dataset",
        "source_images": len(src),
        "source_classes": list(src.classmap.names),
        "binarised": not same,
    }
    result = _label_with(dataset, model, model_classes, config, progress, info)
    result.source_model = (model, model_classes)
    return result


def _from_checkpoint(dataset: Dataset, path: Path, config: InitConfig, progress: Progress | None) -> InitialResult:
    from core.network.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    info = {"source": "model", "source_model": str(path), "source_classes": list(ckpt.classmap.names)}
    return _label_with(dataset, ckpt.model, ckpt.classmap, config, progress, info)


def _label_with(
    dataset: Dataset, model: Any, model_classes: ClassMap, config: InitConfig, progress: Progress | None, info: dict
) -> InitialResult:
    """Label ``dataset`` with a source network whose classes are ``model_classes``: class by class when
    they equal the target's (and there is more than one), else its foreground (1 - background) goes to
    each image's own class."""
    from core.initial.gfn_bridge import predict_gfn

    cmap = dataset.classmap
    k = cmap.num_classes
    same = model_classes == cmap and k > 2
    out = Collector(config.keep_probs)
    samples = list(dataset)
    for s, pred in zip(samples, predict_gfn(model, [s.image_source for s in samples], config, progress=progress)):
        classes = image_classes(s, cmap)
        probs = keep_classes(pred.probs, classes) if same else fg_to_probs(1.0 - pred.probs[0], classes[0], k)
        out.add(s.stem, probs, probs.shape[1:], margin_confidence(probs))
    return out.result("transfer", info)
