"""Image loading edge cases: modes, bit depths, CMYK, EXIF rotation, broken files, input lists."""

import numpy as np
import pytest
from PIL import Image

from maskface.inference.image_io import (
    ImageLoadError,
    InputSpecError,
    collect_inputs,
    load_image,
    resize_max_side,
    to_rgb_array,
)


def test_grayscale_png(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(np.full((10, 12), 77, np.uint8), "L").save(p)
    img = load_image(p)
    assert img.shape == (10, 12, 3) and img.dtype == np.uint8
    assert (img == 77).all()


def test_rgba_png_composited_over_white(tmp_path):
    p = tmp_path / "a.png"
    arr = np.zeros((6, 6, 4), np.uint8)
    arr[..., 0] = 200
    arr[:3, :, 3] = 255  # top half opaque red, bottom transparent
    Image.fromarray(arr, "RGBA").save(p)
    img = load_image(p)
    assert img.shape == (6, 6, 3)
    assert tuple(img[0, 0]) == (200, 0, 0)
    assert tuple(img[5, 5]) == (255, 255, 255)


def test_16bit_grayscale_png(tmp_path):
    p = tmp_path / "g16.png"
    arr = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=np.uint16)
    Image.fromarray(arr).save(p)
    img = load_image(p)
    assert img.shape == (2, 2, 3)
    assert img[:, :, 0].tolist() == [[0, 100], [255, 200]]


def test_16bit_rgb_png(tmp_path):
    import cv2

    p = tmp_path / "rgb16.png"
    bgr16 = np.zeros((4, 5, 3), np.uint16)
    bgr16[..., 2] = 65535  # red in BGR order
    bgr16[..., 1] = 257 * 50
    assert cv2.imwrite(str(p), bgr16)
    img = load_image(p)
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert abs(int(img[0, 0, 0]) - 255) <= 1 and abs(int(img[0, 0, 1]) - 50) <= 1 and img[0, 0, 2] == 0


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    img = load_image(p)
    assert img.shape == (8, 16, 3)
    r, g, b = img[4, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_rotation_applied(tmp_path):
    p = tmp_path / "rot.jpg"
    arr = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide x 20 high
    arr[:10, :10] = (255, 0, 0)  # red block at the stored top-left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 deg clockwise to display
    im.save(p, exif=exif, quality=95)
    img = load_image(p)
    assert img.shape == (40, 20, 3)  # displayed 20 wide x 40 high
    # clockwise rotation moves the stored top-left corner to the displayed top-right
    assert img[2, 17, 0] > 200 and img[2, 2, 0] < 60


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"not an image at all" * 10, "not a recognised")])
def test_broken_files(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason) as e:
        load_image(p)
    assert str(p) in str(e.value)


def test_truncated_jpeg(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    bad = tmp_path / "trunc.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_to_rgb_array_checks_and_flips():
    bgr = np.zeros((3, 4, 3), np.uint8)
    bgr[..., 0] = 9  # blue
    assert to_rgb_array(bgr, "bgr")[0, 0].tolist() == [0, 0, 9]
    assert to_rgb_array(bgr, "rgb")[0, 0].tolist() == [9, 0, 0]
    with pytest.raises(ValueError, match=r"expected a 3-channel image, got shape \(3, 4\)"):
        to_rgb_array(np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="3-channel"):
        to_rgb_array(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        to_rgb_array(np.zeros((3, 4, 3), np.float32))
    with pytest.raises(ValueError, match="color"):
        to_rgb_array(bgr, "hsv")


def test_resize_max_side():
    img = np.zeros((300, 400, 3), np.uint8)
    small, s = resize_max_side(img, 100)
    assert small.shape == (75, 100, 3) and s == pytest.approx(0.25)
    same, s = resize_max_side(img, 1000)
    assert same is img and s == 1.0


def test_collect_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.png", "sub/c.JPG", "clip.mp4", "notes.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    found = collect_inputs(str(tmp_path))
    names = [(p.replace(str(tmp_path) + "/", ""), k) for p, k in found]
    assert names == [("a.png", "image"), ("b.jpg", "image"), ("clip.mp4", "video"), ("sub/c.JPG", "image")]
    assert [k for _, k in collect_inputs(str(tmp_path / "**" / "*.jpg"))] == ["image"]
    assert collect_inputs(str(tmp_path / "notes.txt")) == [(str(tmp_path / "notes.txt"), "image")]
    with pytest.raises(InputSpecError, match="no such file"):
        collect_inputs(str(tmp_path / "missing"))
    with pytest.raises(InputSpecError, match="matched no"):
        collect_inputs(str(tmp_path / "*.gif"))
