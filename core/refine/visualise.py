"""Pictures of a run: masks tinted over images (beside the ground truth) and a per-round plot: quality
against ground truth (``plot_rounds``) or, without it, the label-free signals (``plot_signals``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.io.atomic import atomic_path
from core.io.images import read_mask, write_image
from core.io.working import DEFAULT_IMAGE_MAX_SIDE

PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
    ],
    dtype=np.float32,
)


def tint(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(H, W, 3) uint8``: ``image`` with every foreground class of ``mask`` ``(H, W)`` tinted in its colour
    and ignore pixels (255) greyed."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    out = image.astype(np.float32)
    for c in np.unique(mask):
        if c == 0:
            continue
        sel = mask == c
        colour = np.array([128, 128, 128], np.float32) if c == 255 else PALETTE[1 + (int(c) - 1) % (len(PALETTE) - 1)]
        out[sel] = (1 - alpha) * out[sel] + alpha * colour
    return np.clip(out, 0, 255).astype(np.uint8)


def overlay_pair(image: np.ndarray, mask: np.ndarray, gt: np.ndarray | None, gap: int = 4) -> np.ndarray:
    """Tinted prediction and (if given) tinted ground truth side by side, with a white gap."""
    panels = [tint(image, mask)]
    if gt is not None:
        panels.append(tint(image, gt))
    h = image.shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        parts += ([sep] if i else []) + [p]
    return np.concatenate(parts, axis=1)


def write_overlays(
    samples: Sequence,
    masks_dir: Path,
    out_dir: Path,
    *,
    limit: int | None = None,
    max_side: int | None = None,
    image_max_side: int | None = DEFAULT_IMAGE_MAX_SIDE,
) -> list[Path]:
    """``out_dir/<stem>.png`` for each sample (prediction | ground truth when the sample has it).

    ``image_max_side``: pictures larger than this are decoded at reduced size and their masks (at the
    picture's size) shrunk by nearest neighbour to match (``Sample.capped``: as a run sees them), so
    a huge photo is never decoded at full size. ``max_side``: pictures larger than this are then
    shrunk (masks by nearest neighbour) before tinting.
    """
    written = []
    for s in list(samples)[:limit]:
        s = s.capped(image_max_side)
        img = s.load_image()
        pred = s.to_working(read_mask(Path(masks_dir) / f"{s.stem}.png"))
        gt = s.load_mask() if s.has_mask else None
        if max_side is not None and max(img.shape[:2]) > max_side:
            img, pred, gt = _shrunk(img, pred, gt, max_side)
        written.append(write_image(Path(out_dir) / f"{s.stem}.png", overlay_pair(img, pred, gt)))
    return written


def _shrunk(
    img: np.ndarray, pred: np.ndarray, gt: np.ndarray | None, max_side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    import cv2

    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)

    def nearest(m: np.ndarray | None) -> np.ndarray | None:
        return None if m is None else cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)

    return small, nearest(pred), nearest(gt)  # type: ignore[return-value]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_rounds(rows: Sequence[dict], path: str | os.PathLike, title: str = "quality per round") -> Path:
    """Line plot of mIoU, mean image IoU and mean reliability per round (rows from ``round_row``; a
    row's ``collapsed`` puts a red cross at the top)."""
    plt = _pyplot()

    rounds = [r["round"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for key, label, style in (
        ("miou", "mIoU (vs ground truth)", "o-"),
        ("mean_image_iou", "mean image IoU", "s--"),
        ("reliability", "mean reliability (label-free)", "^:"),
    ):
        ys = [r.get(key) for r in rows]
        if any(y is not None for y in ys):
            ax.plot(
                [x for x, y in zip(rounds, ys) if y is not None], [y for y in ys if y is not None], style, label=label
            )
    bad = [r["round"] for r in rows if r.get("collapsed")]
    if bad:
        ax.plot(bad, [0.97] * len(bad), "x", color="red", markersize=9, mew=2, label="collapsed (guard)")
    best = [r["round"] for r in rows if r.get("best")]
    if best:
        ax.axvline(best[0], color="grey", lw=0.8, ls="--", label=f"best round ({best[0]})")
    ax.set_xlabel("round (0 = initial masks)")
    ax.set_xticks(rounds)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_signals(rows: Sequence[dict], path: str | os.PathLike, title: str = "label-free signals per round") -> Path:
    """Line plot of the label-free signals per round, for runs without ground truth.

    ``rows``: one dict per round with ``round``, ``reliability`` (mean, [0, 1]), ``mean_area`` (mean
    foreground fraction of the images, [0, 1]), ``kept`` (fraction of the masks the filters kept for
    training the next round, [0, 1]), ``collapsed`` (the collapse guard's verdict) and ``best``.
    Collapsed rounds are marked with a red cross at the top of the plot.
    """
    plt = _pyplot()
    rounds = [r["round"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for key, label, style in (
        ("reliability", "mean reliability", "^-"),
        ("mean_area", "mean foreground area", "o--"),
        ("kept", "fraction kept by the filters", "s:"),
    ):
        ys = [r.get(key) for r in rows]
        if any(y is not None for y in ys):
            ax.plot(
                [x for x, y in zip(rounds, ys) if y is not None], [y for y in ys if y is not None], style, label=label
            )
    bad = [r["round"] for r in rows if r.get("collapsed")]
    if bad:
        ax.plot(bad, [0.97] * len(bad), "x", color="red", markersize=9, mew=2, label="collapsed (guard)")
    best = [r["round"] for r in rows if r.get("best")]
    if best:
        ax.axvline(best[0], color="grey", lw=0.8, ls="--", label=f"kept round ({best[0]})")
    ax.set_xlabel("round (0 = initial masks)")
    ax.set_xticks(rounds)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
