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


# --- issue 18: unreadable files named for what they are; pixel cap from the header ---------------


def test_permission_and_symlink_loop_are_named(tmp_path, monkeypatch):
    """Not "corrupt or truncated image" / "file not found" (the old messages)."""
    import builtins
    import os

    good = tmp_path / "locked.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    real_open = builtins.open

    def no_read(path, *a, **kw):  # root reads any file, so deny it by hand
        if str(path) == str(good):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", no_read)
    with pytest.raises(ImageLoadError, match="locked.png: permission denied"):
        load_image(good)
    monkeypatch.undo()
    os.symlink("b.jpg", tmp_path / "a.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    with pytest.raises(ImageLoadError, match="a.jpg: symbolic link loop"):
        load_image(tmp_path / "a.jpg")
    # given directly, a looping link is still an input, so the run reports it per file
    assert collect_inputs(str(tmp_path / "a.jpg")) == [(str(tmp_path / "a.jpg"), "image")]


@pytest.fixture
def no_decoding(monkeypatch):
    """Make every decoder (Pillow's and OpenCV's) fail the test if it is reached."""
    import cv2
    from PIL import ImageFile

    def decoded(*a, **kw):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    monkeypatch.setattr(cv2, "imdecode", decoded)
    monkeypatch.setattr(cv2, "imread", decoded)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "bmp", "tiff", "webp", "gif", "ppm"])
def test_200_megapixel_header_refused_before_decoding(tmp_path, no_decoding, fmt):
    from maskface.inference.image_io import DEFAULT_MAX_PIXELS, ImageTooLarge
    from maskface.inference.testing import oversized_image_bytes

    path = tmp_path / f"bomb.{fmt}"
    path.write_bytes(oversized_image_bytes(fmt, 14142, 14143))  # 200 MP in a few hundred bytes
    with pytest.raises(ImageTooLarge, match=r"bomb\.\w+: image too large: 200 megapixels; the limit is 100"):
        load_image(path)
    assert DEFAULT_MAX_PIXELS == 100_000_000


@pytest.mark.parametrize("fmt", [".png", ".jpg", ".bmp", ".tif", ".webp"])
def test_pixel_cap_is_configurable(tmp_path, fmt):
    import cv2

    from maskface.inference.image_io import ImageTooLarge

    path = tmp_path / f"img{fmt}"
    cv2.imwrite(str(path), np.zeros((60, 50, 3), np.uint8))  # 3000 px
    with pytest.raises(ImageTooLarge, match=r"50 x 60 px = 0.003 megapixels; the limit is 0.002"):
        load_image(path, max_pixels=2000)
    assert load_image(path, max_pixels=3000).shape == (60, 50, 3)


def test_pixel_cap_covers_tiffs_only_opencv_reads(tmp_path, no_decoding):
    """Pillow cannot identify a 32-bit float RGB TIFF: the header is read by image_io's own parser."""
    import cv2
    from PIL import UnidentifiedImageError

    from maskface.inference.image_io import ImageTooLarge, image_header_size

    path = tmp_path / "float.tif"
    cv2.imwrite(str(path), np.zeros((30, 40, 3), np.float32))
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)
    assert image_header_size(path) == (40, 30)
    with pytest.raises(ImageTooLarge, match="40 x 30 px"):
        load_image(path, max_pixels=1000)


def test_unreadable_subfolder_is_listed(tmp_path, monkeypatch):
    import os

    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    (tmp_path / "ok" / "a.jpg").write_bytes(b"x")
    (tmp_path / "locked" / "b.jpg").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path="."):  # root lists any folder, so deny it by hand
        if os.fspath(path) == str(tmp_path / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = collect_inputs(str(tmp_path))
    assert found == [(str(tmp_path / "ok" / "a.jpg"), "image"), (str(tmp_path / "locked"), "unreadable")]
    with pytest.raises(InputSpecError, match="cannot read folder"):
        collect_inputs(str(tmp_path / "locked"))


def test_same_file_spelled_twice_is_one_input(tmp_path, monkeypatch):
    (tmp_path / "a.jpg").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert collect_inputs(["a.jpg", str(tmp_path / "a.jpg"), "./a.jpg"]) == [("a.jpg", "image")]
