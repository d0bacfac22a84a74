"""core.io.images: every kind of picture comes back as (H, W, 3) uint8 RGB; bad files are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.io.atomic import OutputExistsError, atomic_path, check_can_write, write_text_atomic
from core.io.images import (
    ImageReadError,
    check_images,
    image_size,
    list_images,
    read_image,
    read_mask,
    write_image,
    write_mask,
)


def _rgb(h: int = 6, w: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_round_trip(tmp_path):
    img = _rgb()
    write_image(tmp_path / "a.png", img)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 4, 3)
    assert out.flags.writeable and out.flags.c_contiguous
    np.testing.assert_array_equal(out, img)


def test_grayscale_becomes_rgb(tmp_path):
    Image.fromarray(np.arange(24, dtype=np.uint8).reshape(6, 4), mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (6, 4, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), dtype=np.uint8)
    a[0, 0] = (255, 0, 0, 255)  # opaque red; the rest transparent
    Image.fromarray(a, mode="RGBA").save(tmp_path / "t.png")
    out = read_image(tmp_path / "t.png")
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[1, 1]) == (255, 255, 255)


def test_palette_image(tmp_path):
    img = Image.new("P", (3, 2))
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert tuple(out[0, 1]) == (10, 20, 30)


def test_16bit_grayscale_scaled(tmp_path):
    arr = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    assert out.shape == (2, 2, 3)
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255 and 120 <= out[1, 0, 0] <= 135


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (5, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (3, 5, 3)
    assert out[1, 2, 0] > 200 and out[1, 2, 1] < 60


def test_exif_orientation_applied(tmp_path):
    img = Image.fromarray(_rgb(6, 4))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "r.jpg").shape == (4, 6, 3)
    assert image_size(tmp_path / "r.jpg") == (4, 6)


def test_missing_and_corrupt_are_named(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageReadError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_check_images_lists_every_bad_file(tmp_path):
    write_image(tmp_path / "ok.png", _rgb())
    (tmp_path / "bad1.jpg").write_bytes(b"garbage")
    (tmp_path / "bad2.png").write_bytes(b"\x89PNG broken")
    paths = [tmp_path / n for n in ("ok.png", "bad1.jpg", "bad2.png", "gone.png")]
    with pytest.raises(ImageReadError) as exc:
        check_images(paths)
    msg = str(exc.value)
    assert "3 image(s)" in msg and all(n in msg for n in ("bad1.jpg", "bad2.png", "gone.png"))
    assert set(exc.value.failures) == {str(p) for p in paths[1:]}


def test_check_images_skip_bad_warns(tmp_path, caplog):
    write_image(tmp_path / "ok.png", _rgb())
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    good = check_images([tmp_path / "ok.png", tmp_path / "bad.jpg"], skip_bad=True)
    assert good == [tmp_path / "ok.png"]
    assert "bad.jpg" in caplog.text


def test_list_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        list_images(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path)
    write_image(tmp_path / "b.png", _rgb())
    write_image(tmp_path / "a.jpg", _rgb())
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]


def test_mask_round_trip_plain_and_palette(tmp_path):
    m = np.array([[0, 1, 2], [255, 3, 0]], dtype=np.uint8)
    write_mask(tmp_path / "m.png", m)
    back = read_mask(tmp_path / "m.png")
    np.testing.assert_array_equal(back, m)
    assert back.flags.writeable and back.dtype == np.uint8
    write_mask(tmp_path / "p.png", m, palette=[0, 0, 0, 128, 0, 0] * 128)
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), m)


def test_read_mask_rejects_rgb(tmp_path):
    write_image(tmp_path / "rgb.png", _rgb())
    with pytest.raises(ImageReadError, match="rgb.png"):
        read_mask(tmp_path / "rgb.png")


def test_write_mask_rejects_3d(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        write_mask(tmp_path / "x.png", np.zeros((2, 2, 3), dtype=np.uint8))


def test_atomic_write_refuses_overwrite_and_leaves_no_temp(tmp_path):
    p = tmp_path / "out.txt"
    write_text_atomic(p, "one")
    with pytest.raises(OutputExistsError, match="out.txt"):
        write_text_atomic(p, "two", overwrite=False)
    with pytest.raises(OutputExistsError):
        check_can_write(p, overwrite=False)
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert p.read_text() == "one"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os

    p = write_text_atomic(tmp_path / "perm.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
