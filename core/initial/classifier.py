"""A CAM classifier trained on the image-level labels (paper 001 IV-A 3, Zhou et al. 2016).

ImageNet MobileNetV2 up to its 320-channel stage, frozen; on top a trainable copy of its last
1x1 convolution (320 -> 1280, initialised from ImageNet), global average pooling and a linear
layer with one output per foreground class, trained with multi-label BCE. The frozen part runs
once per image (and its flip), so training costs seconds on a CPU.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from core.initial.imagenet import _resize_to, load_mobilenet, to_tensor
from core.progress import Progress

log = logging.getLogger(__name__)


class TrainedCAM:
    """CAMs of a GAP classifier over ``num_fg`` foreground classes (indices 1..num_fg).

    Use ``fit(images, labels)`` then ``maps(image, classes)``.
    """

    def __init__(
        self,
        num_fg: int,
        *,
        size: int = 320,
        flip: bool = True,
        output_stride: int = 16,
        epochs: int = 25,
        lr: float = 1e-3,
        batch_size: int = 16,
        seed: int = 0,
    ):
        import torch
        import torch.nn as nn

        features, _ = load_mobilenet(output_stride)
        self.trunk = features[:18]
        gen = torch.Generator().manual_seed(seed)
        self.head = copy.deepcopy(features[18])
        for p in self.head.parameters():
            p.requires_grad_(True)
        self.fc = nn.Linear(1280, num_fg)
        with torch.no_grad():
            self.fc.weight.normal_(0.0, 0.01, generator=gen)
            self.fc.bias.zero_()
        self.num_fg, self.size, self.flip = num_fg, size, flip
        self.epochs, self.lr, self.batch_size, self.seed = epochs, lr, batch_size, seed

    def _trunk(self, image: np.ndarray) -> list:
        import torch

        x = to_tensor(_resize_to(image, self.size))
        with torch.no_grad():
            out = [self.trunk(x)[0].half()]
            if self.flip:
                out.append(torch.flip(self.trunk(torch.flip(x, dims=[3]))[0], dims=[2]).half())
        return out

    def fit(
        self,
        images: Sequence[np.ndarray] | Callable[[int], np.ndarray],
        labels: Sequence[Sequence[int]],
        *,
        progress: Progress | None = None,
    ) -> TrainedCAM:
        """Train on images (or a loader ``i -> image``) with class-index label lists (1-based)."""
        import torch
        import torch.nn.functional as F

        n = len(labels)
        get = images if callable(images) else (lambda i: images[i])
        cache = []
        for i in range(n):
            cache.append(self._trunk(get(i)))
            if progress:
                progress("cam-features", i + 1, n)
        target = torch.zeros(n, self.num_fg)
        for i, labs in enumerate(labels):
            for c in labs:
                target[i, c - 1] = 1.0
        params = list(self.head.parameters()) + list(self.fc.parameters())
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=1e-4)
        rng = np.random.default_rng(self.seed)
        self.head.eval()  # keep ImageNet BatchNorm statistics
        for ep in range(self.epochs):
            order = rng.permutation(n)
            total = 0.0
            for b in range(0, n, self.batch_size):
                idx = order[b : b + self.batch_size]
                logits = []
                for i in idx:
                    views = cache[i]
                    f = views[int(rng.integers(len(views)))].float()[None]
                    logits.append(self.fc(self.head(f).mean(dim=(2, 3)))[0])
                loss = F.binary_cross_entropy_with_logits(torch.stack(logits), target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            log.debug("CAM classifier epoch %d/%d: loss %.4f", ep + 1, self.epochs, total / n)
            if progress:
                progress("cam-classifier", ep + 1, self.epochs)
        for p in params:
            p.requires_grad_(False)
        return self

    def maps(self, image: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        """``(len(classes), h, w)`` CAMs in [0, 1] (each normalised by its max) at the image's size."""
        import torch

        h, w = image.shape[:2]
        idx = torch.as_tensor([c - 1 for c in classes], dtype=torch.long)
        acc = np.zeros((len(classes), h, w), np.float32)
        with torch.no_grad():
            views = self._trunk(image)
            for f in views:
                feat = self.head(f.float()[None])[0]
                cams = torch.relu(torch.einsum("kc,chw->khw", self.fc.weight[idx], feat)).numpy()
                for j in range(len(classes)):
                    acc[j] += cv2.resize(cams[j].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        acc /= np.maximum(acc.reshape(len(classes), -1).max(1), 1e-6)[:, None, None]
        return acc
