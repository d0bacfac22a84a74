"""Transfer route (paper 001 IV-A 1): segmentation knowledge from a related labelled source.

Two sources: a labelled ``Dataset`` (a GFN is trained on it, masks binarised to object /
background unless the class maps agree), or a torchvision segmentation model pretrained on the
21 VOC classes (``deeplabv3_mobilenet_v3_large``, ``lraspp_mobilenet_v3_large``,
``fcn_resnet50``, ...), weights downloaded by torchvision, with the user's class mapped to a VOC
class (``object`` or unknown names: any non-background class).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

import numpy as np

from core.data.voc_labelmap import VOC_CLASSES

log = logging.getLogger(__name__)


VOC_SYNONYMS: dict[str, str] = {
    "airplane": "aeroplane",
    "plane": "aeroplane",
    "aircraft": "aeroplane",
    "jet": "aeroplane",
    "bike": "bicycle",
    "motorcycle": "motorbike",
    "scooter": "motorbike",
    "ship": "boat",
    "yacht": "boat",
    "canoe": "boat",
    "kitten": "cat",
    "puppy": "dog",
    "pony": "horse",
    "foal": "horse",
    "cattle": "cow",
    "calf": "cow",
    "ox": "cow",
    "lamb": "sheep",
    "people": "person",
    "man": "person",
    "woman": "person",
    "child": "person",
    "pedestrian": "person",
    "table": "diningtable",
    "dining table": "diningtable",
    "couch": "sofa",
    "tv": "tvmonitor",
    "monitor": "tvmonitor",
    "television": "tvmonitor",
    "screen": "tvmonitor",
    "plant": "pottedplant",
    "potted plant": "pottedplant",
    "flower": "pottedplant",
    "orchid": "pottedplant",
    "truck": "car",
    "van": "car",
    "taxi": "car",
    "locomotive": "train",
    "tram": "train",
    "parrot": "bird",
    "eagle": "bird",
    "sparrow": "bird",
}

VOC_MODELS = (
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
)


def voc_class(name: str, overrides: Mapping[str, str] | None = None) -> str | None:
    """VOC class for a user class name, or ``None`` = any non-background class."""
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    for k in (key, key.rstrip("s")):
        if overrides and k in overrides:
            v = overrides[k]
            if v not in VOC_CLASSES[1:] and v not in ("object", "any"):
                raise ValueError(
                    f"voc_map maps {name!r} to {v!r}, not a VOC class; VOC classes: {list(VOC_CLASSES[1:])}"
                )
            return None if v in ("object", "any") else v
        if k.replace(" ", "") in VOC_CLASSES[1:]:
            return k.replace(" ", "")
        if k in VOC_SYNONYMS:
            return VOC_SYNONYMS[k]
    return None


@functools.lru_cache(maxsize=2)
def load_voc_model(name: str, weights: str | None):
    """A torchvision VOC segmentation model in eval mode (cached per process)."""
    import torchvision.models.segmentation as seg

    if name not in VOC_MODELS:
        raise ValueError(f"unknown torchvision segmentation model {name!r}; valid: {list(VOC_MODELS)}")
    fn = getattr(seg, name)
    if weights is None:
        model = fn(weights=None, weights_backbone=None, num_classes=len(VOC_CLASSES), aux_loss=None)
    else:
        try:
            model = fn(weights=weights)
        except Exception as exc:
            raise RuntimeError(
                f"could not load the {name} weights {weights!r} (torchvision downloads them on "
                f"first use; is the internet reachable?): {exc}"
            ) from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def voc_foreground(model, image: np.ndarray, voc_name: str | None, *, flip: bool = True) -> np.ndarray:
    """``(h, w)`` probability of the VOC class (or of any non-background class) for an image."""
    import torch

    from core.initial.imagenet import to_tensor

    x = to_tensor(image)
    with torch.no_grad():
        p = torch.softmax(model(x)["out"], dim=1)
        if flip:
            p = (p + torch.flip(torch.softmax(model(torch.flip(x, dims=[3]))["out"], dim=1), dims=[3])) / 2
    probs = p[0].numpy()
    if voc_name is None:
        return (1.0 - probs[0]).astype(np.float32)
    return probs[VOC_CLASSES.index(voc_name)].astype(np.float32)


def binarise_source_mask(mask: np.ndarray) -> np.ndarray:
    """Any class (non-zero, non-255) -> 1, background 0, ignore 255 kept."""
    out = (mask != 0).astype(np.uint8)
    out[mask == 255] = 255
    return out
