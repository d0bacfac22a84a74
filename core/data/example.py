"""A deterministic built-in example dataset, generated on the fly (nothing to download).

Textured objects of a few shapes ("ellipse", "star", "ring": the ring has a hole; some
"ellipse" images hold two separate parts) on plain backgrounds (every other image) and on
cluttered ones. Each image has an image-level label and an exact ground-truth mask.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np

from core.classmap import ClassMap
from core.data.dataset import Dataset, Sample
from core.io.atomic import write_text_atomic
from core.io.images import write_image, write_mask

log = logging.getLogger(__name__)

EXAMPLE_CLASSES = ("ellipse", "star", "ring")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(size)
    cy, cx = rng.uniform(0.38, 0.62, size=2) * size
    r = rng.uniform(0.22, 0.32) * size
    if kind == "ellipse":
        a, b = r, r * rng.uniform(0.55, 0.9)
        t = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        m = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        if rng.random() < 0.35:  # a second, separate part
            oy, ox = (cy + 0.62 * size) % size, (cx + 0.55 * size) % size
            oy = float(np.clip(oy, 0.15 * size, 0.85 * size))
            ox = float(np.clip(ox, 0.15 * size, 0.85 * size))
            small = ((xx - ox) ** 2 + (yy - oy) ** 2) <= (0.1 * size) ** 2
            if not (small & m).any() and not (np.roll(small, 2, 0) & m).any():
                m = m | small
        return m
    ang = np.arctan2(yy - cy, xx - cx)
    dist = np.hypot(yy - cy, xx - cx)
    if kind == "star":
        k = int(rng.integers(5, 7))
        phase = rng.uniform(0, 2 * np.pi)
        radius = r * (0.72 + 0.28 * np.cos(k * ang + phase))
        return dist <= radius
    if kind == "ring":
        inner = r * rng.uniform(0.4, 0.55)
        return (dist <= r) & (dist >= inner)
    raise ValueError(f"unknown example shape {kind!r}; known: {list(EXAMPLE_CLASSES)}")


def _texture(size: int, rng: np.random.Generator, base: np.ndarray, strength: float) -> np.ndarray:
    yy, xx = _grid(size)
    f = rng.uniform(0.15, 0.45)
    t = rng.uniform(0, np.pi)
    stripes = np.sin(f * (xx * np.cos(t) + yy * np.sin(t)))[..., None]
    noise = rng.normal(0, 1, size=(size, size, 1))
    img = base[None, None, :] + strength * (0.6 * stripes + 0.4 * noise) * 40.0
    return img


def _background(size: int, rng: np.random.Generator, cluttered: bool) -> np.ndarray:
    base = rng.uniform(20, 235, size=3)
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float64) + rng.normal(0, 3, (size, size, 3))
    if cluttered:
        img = _texture(size, rng, base, 0.8)
        yy, xx = _grid(size)
        for _ in range(int(rng.integers(4, 9))):
            cy, cx = rng.uniform(0, size, 2)
            rr = rng.uniform(0.05, 0.16) * size
            blob = ((yy - cy) ** 2 + (xx - cx) ** 2) <= rr**2
            img[blob] = rng.uniform(0, 255, 3)
    return img


def _render(kind: str, size: int, rng: np.random.Generator, cluttered: bool) -> tuple[np.ndarray, np.ndarray]:
    mask = _shape_mask(kind, size, rng)
    bg = _background(size, rng, cluttered)
    # Object colour far from the background mean, so plain images are easy to threshold.
    bg_mean = bg.reshape(-1, 3).mean(0)
    colour = np.where(bg_mean > 127, rng.uniform(0, 90, 3), rng.uniform(165, 255, 3))
    obj = _texture(size, rng, colour, 0.35)
    img = np.where(mask[..., None], obj, bg)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def example_classmap(classes: tuple[str, ...] = EXAMPLE_CLASSES) -> ClassMap:
    return ClassMap.from_names(classes)


def generate_arrays(n: int = 24, size: int = 96, seed: int = 0, classes: tuple[str, ...] = EXAMPLE_CLASSES):
    """Yield ``(stem, label, image (S, S, 3) uint8, mask (S, S) uint8 class indices, cluttered)``.

    Deterministic for a given ``(n, size, seed, classes)``; image ``i`` does not depend on ``n``.
    """
    if n < 1 or size < 16:
        raise ValueError(f"need n >= 1 and size >= 16, got n={n}, size={size}")
    cmap = example_classmap(classes)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        kind = classes[i % len(classes)]
        cluttered = (i // len(classes)) % 2 == 1
        img, m = _render(kind, size, rng, cluttered)
        mask = (m.astype(np.uint8) * cmap.index(kind)).astype(np.uint8)
        yield f"{kind}_{i:04d}", kind, img, mask, cluttered


def make_example(
    out_dir: str | os.PathLike, n: int = 24, size: int = 96, seed: int = 0, classes: tuple[str, ...] = EXAMPLE_CLASSES
) -> Dataset:
    """Write the example to ``out_dir`` and return it as a ``Dataset``.

    Layout: ``images/<stem>.png``, ``masks/<stem>.png`` (class indices), ``labels.csv``
    (``filename,label``), ``classes.json`` (the class map), ``simple.txt`` (stems with plain
    backgrounds). Files already present with the same parameters are reused.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    cmap = example_classmap(classes)
    stamp = f"n={n} size={size} seed={seed} classes={','.join(classes)}"
    stamp_file = out / ".example"
    fresh = not (stamp_file.exists() and stamp_file.read_text() == stamp)
    samples, rows, simple = [], [], []
    for stem, label, img, mask, cluttered in generate_arrays(n, size, seed, classes):
        ip, mp = out / "images" / f"{stem}.png", out / "masks" / f"{stem}.png"
        if fresh or not ip.exists() or not mp.exists():
            write_image(ip, img)
            write_mask(mp, mask)
        samples.append(Sample(stem=stem, image_path=ip, labels=(label,), mask_path=mp))
        rows.append((ip.name, label))
        if not cluttered:
            simple.append(stem)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("filename", "label"))
    w.writerows(rows)
    write_text_atomic(out / "labels.csv", buf.getvalue())
    write_text_atomic(out / "simple.txt", "\n".join(simple) + "\n")
    cmap.save(out / "classes.json")
    write_text_atomic(stamp_file, stamp)
    log.info("example dataset: %d images of %dpx in %s", n, size, out)
    return Dataset(samples=tuple(samples), classmap=cmap)
