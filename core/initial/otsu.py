"""Simple-to-complex route (paper 001 IV-A 2): Otsu masks on simple-background images.

Simple images are picked automatically: a uniform border (low colour spread in Lab) and a
bimodal feature histogram (high Otsu between-class / total variance ratio). The feature is the
Lab distance to the border's median colour (or the gray level); the side holding most of the
border is background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.initial.config import InitConfig
from core.postprocess.clean import clean_binary


@dataclass(frozen=True)
class OtsuStats:
    """Per-image simplicity measurements (all at working size)."""

    border_std: float
    """Mean per-channel standard deviation of the border strip in Lab."""
    separability: float
    """Otsu's between-class / total variance of the feature, in [0, 1]."""
    fg_fraction: float
    border_fg: float
    """Fraction of the border strip labelled foreground (should be ~0 for a simple image)."""

    @property
    def simplicity(self) -> float:
        """Ranking score: high separability, low border spread."""
        return float(self.separability * np.exp(-self.border_std / 20.0))


def _border(h: int, w: int) -> np.ndarray:
    b = max(2, round(0.04 * min(h, w)))
    m = np.zeros((h, w), bool)
    m[:b], m[-b:], m[:, :b], m[:, -b:] = True, True, True, True
    return m


def _otsu_threshold(values: np.ndarray) -> tuple[float, float]:
    """Otsu threshold of uint8 ``values`` and its between/total variance ratio."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(p)
    mu = np.cumsum(p * levels)
    mu_t = mu[-1]
    var_t = float((p * (levels - mu_t) ** 2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - mu) ** 2 / (w0 * (1.0 - w0))
    between = np.nan_to_num(between, nan=0.0, posinf=0.0)
    t = int(np.argmax(between))
    return float(t), float(between[t] / var_t) if var_t > 0 else 0.0


def otsu_mask(image: np.ndarray, cfg: InitConfig) -> tuple[np.ndarray, OtsuStats]:
    """Otsu foreground ``(h, w)`` bool of an ``(h, w, 3) uint8`` image and its simplicity stats."""
    h, w = image.shape[:2]
    border = _border(h, w)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    border_std = float(lab[border].std(axis=0).mean())
    if cfg.otsu_feature == "gray":
        feat = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    else:
        ref = np.median(lab[border], axis=0)
        d = np.linalg.norm(lab - ref, axis=2)
        d = cv2.GaussianBlur(d, (0, 0), 1.0)
        feat = np.clip(d * (255.0 / max(float(np.percentile(d, 99.5)), 1e-6)), 0, 255).astype(np.uint8)
    t, sep = _otsu_threshold(feat)
    fg = feat > t
    if fg[border].mean() > 0.5:  # the border is background: flip the polarity
        fg = ~fg
    k = max(1, round(0.01 * max(h, w)))
    fg = clean_binary(fg, min_rel_area=0.1, hole_area=0.005, open_px=k)
    stats = OtsuStats(
        border_std=border_std, separability=sep, fg_fraction=float(fg.mean()), border_fg=float(fg[border].mean())
    )
    return fg, stats


def is_simple(stats: OtsuStats, cfg: InitConfig) -> bool:
    """Whether an image passes the simple-background criteria."""
    return (
        stats.border_std <= cfg.simple_border_std
        and stats.separability >= cfg.simple_separability
        and 0.02 <= stats.fg_fraction <= 0.85
        and stats.border_fg <= 0.1
    )


def pick_simple(stats: list[OtsuStats], cfg: InitConfig) -> list[int]:
    """Indices of the images treated as simple: those passing ``is_simple`` (at most
    ``simple_max_fraction`` of all, the most simple first), topped up to ``simple_min`` by rank."""
    order = sorted(range(len(stats)), key=lambda i: -stats[i].simplicity)
    picked = [i for i in order if is_simple(stats[i], cfg)]
    cap = max(1, int(np.floor(cfg.simple_max_fraction * len(stats))))
    picked = picked[:cap]
    if len(picked) < min(cfg.simple_min, len(stats)):
        for i in order:
            if i not in picked and 0.02 <= stats[i].fg_fraction <= 0.85:
                picked.append(i)
            if len(picked) >= cfg.simple_min:
                break
    return sorted(picked)


def ignore_band(mask: np.ndarray, px: int) -> np.ndarray:
    """Mark ``px`` pixels either side of class boundaries as 255 (ignore); ``(h, w) uint8``."""
    if px <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    edge = cv2.dilate(mask, k) != cv2.erode(mask, k)
    out = mask.copy()
    out[edge] = 255
    return out
