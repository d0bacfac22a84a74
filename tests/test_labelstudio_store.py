"""``ProjectStore``'s task images: refused before anything is written, and a bounded cache."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from core.classmap import ClassMap
from core.io.images import ImageReadError
from labelstudio_backend.store import ImageTooLarge, ProjectStore
from tests.labelstudio_harness import bomb_png

CMAP = ClassMap.from_names(("star",))


def png(side: int, value: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def stored(store: ProjectStore) -> list[str]:
    return sorted(p.stem for p in (store.root / "images").iterdir())


def test_bomb_and_undecodable_bytes_leave_nothing(tmp_path):
    store = ProjectStore(tmp_path, "1")
    with pytest.raises(ImageTooLarge, match="MAX_IMAGE_PIXELS"):
        store.save_image("1", bomb_png(), ".png", max_pixels=40_000_000)
    with pytest.raises(ImageReadError, match="not a readable image"):
        store.save_image("2", b"<svg/>", ".png", max_pixels=40_000_000)
    with pytest.raises(ImageReadError):
        store.save_image("3", png(64)[:60], ".png", max_pixels=40_000_000)  # header fine, data truncated
    assert stored(store) == []


def test_the_image_cache_keeps_the_newest_and_human_masks_longest(tmp_path):
    store = ProjectStore(tmp_path, "1")
    for i in range(4):
        store.save_image(str(i), png(16, i), ".png", max_pixels=10_000)
        os.utime(store.root / "images" / f"{i}.png", (1000 + i, 1000 + i))  # oldest first: 0, 1, 2, 3
    store.save_human("0", np.zeros((16, 16), np.uint8), CMAP)  # task 0 was annotated
    path, image = store.save_image("4", png(16, 4), ".png", max_pixels=10_000, max_images=3)
    assert image.shape == (16, 16, 3) and path.exists()
    assert stored(store) == ["0", "3", "4"]  # 1 and 2 evicted; 0 has a human mask


def test_the_image_cache_is_bounded_in_bytes_and_keeps_the_new_image(tmp_path):
    store = ProjectStore(tmp_path, "1")
    big = png(256, 7)
    size = len(big)
    for i in range(3):
        store.save_image(str(i), png(256, i), ".png", max_pixels=100_000)
        os.utime(store.root / "images" / f"{i}.png", (1000 + i, 1000 + i))
    store.save_image("9", big, ".png", max_pixels=100_000, max_image_bytes=size)
    assert stored(store) == ["9"]
    assert store.trim_images(max_images=None, max_bytes=size) == []
