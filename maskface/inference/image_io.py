"""Reading inputs robustly: images in any common mode, arrays from callers, and input lists.

Every image that enters MaskFace goes through :func:`load_image` (files) or
:func:`to_rgb_array` (arrays) and comes out as ``H x W x 3`` uint8 RGB:

* EXIF orientation is applied (``ImageOps.exif_transpose``), so boxes are in the pixels of the
  image as it is displayed;
* grayscale, palette, RGBA/LA (composited over white), 16-bit and 32-bit integer/float
  images and CMYK JPEGs are converted to 8-bit RGB;
* zero-byte, truncated, corrupt or unsupported files raise :class:`ImageLoadError` whose
  message names the file and what is wrong (missing, permission denied, symbolic-link loop...);
* an image with more pixels than ``max_pixels`` (:data:`DEFAULT_MAX_PIXELS` unless told) raises
  :class:`ImageTooLarge` *before* any pixel is decoded: the size is read from the file header
  (Pillow's lazy open, or this module's TIFF reader for the files only OpenCV decodes), so a
  small file that decodes to gigabytes (a "decompression bomb") costs nothing.
"""

from __future__ import annotations

import glob
import os
import struct
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "DEFAULT_MAX_PIXELS",
    "ImageLoadError",
    "ImageTooLarge",
    "image_header_size",
    "check_pixel_count",
    "InputSpecError",
    "load_image",
    "to_rgb_array",
    "rgb_to_bgr",
    "resize_max_side",
    "collect_inputs",
    "is_image_file",
    "is_video_file",
]

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})


class ImageLoadError(ValueError):
    """An image file cannot be used; the message says which file and why."""


# 100 megapixels: a 12000 x 8000 photo still loads, a decompression bomb does not. Decoding needs
# about 3 bytes per pixel (8 for 16-bit files, converted through float64), i.e. 0.3-0.8 GB here.
DEFAULT_MAX_PIXELS = 100_000_000


class ImageTooLarge(ImageLoadError):
    """An image has more pixels than allowed; raised from its header, before decoding.

    Attributes: ``pixels`` (width x height), ``max_pixels`` (the limit it broke).
    """

    def __init__(self, message: str, pixels: int, max_pixels: int):
        super().__init__(message)
        self.pixels, self.max_pixels = pixels, max_pixels


class InputSpecError(ValueError):
    """An ``--input`` matched nothing usable."""


def is_image_file(path: Union[str, Path]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def is_video_file(path: Union[str, Path]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


# decoding ---------------------------------------------------------------------------------------


def _pil_to_rgb(img) -> np.ndarray:
    """Any PIL mode -> HxWx3 uint8 RGB."""
    from PIL import Image

    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0  # 0..65535 -> 0..255
        elif mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        elif arr.size and np.nanmax(arr) > 255:
            arr = arr * (255.0 / (65535.0 if np.nanmax(arr) <= 65535 else float(np.nanmax(arr))))
        gray = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode != "RGB":
        img = img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    return np.asarray(img)


# header-only sizes ---------------------------------------------------------------------------------


def _tiff_size(f) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of the first page of a classic or Big TIFF, from its first IFD only."""
    f.seek(0)
    head = f.read(16)
    if head[:2] not in (b"II", b"MM") or len(head) < 8:
        return None
    e = "<" if head[:2] == b"II" else ">"
    (magic,) = struct.unpack(e + "H", head[2:4])
    if magic == 42:  # classic: 2-byte entry count, 12-byte entries, 4-byte value field
        (ifd,) = struct.unpack(e + "I", head[4:8])
        count_fmt, entry_size, value_at = "H", 12, 8
    elif magic == 43 and len(head) >= 16:  # BigTIFF: 8-byte count, 20-byte entries, 8-byte value field
        (ifd,) = struct.unpack(e + "Q", head[8:16])
        count_fmt, entry_size, value_at = "Q", 20, 12
    else:
        return None
    f.seek(ifd)
    raw = f.read(struct.calcsize(count_fmt))
    if len(raw) != struct.calcsize(count_fmt):
        return None
    (n,) = struct.unpack(e + count_fmt, raw)
    entries = f.read(min(n, 4096) * entry_size)
    dims = {}
    for k in range(len(entries) // entry_size):
        entry = entries[k * entry_size:(k + 1) * entry_size]
        tag, kind = struct.unpack(e + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3), LONG (4) or LONG8 (16)
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt:
                dims[tag] = struct.unpack(e + fmt, entry[value_at:value_at + struct.calcsize(fmt)])[0]
    return (int(dims[256]), int(dims[257])) if len(dims) == 2 else None


def image_header_size(path: Union[str, Path]) -> Optional[Tuple[int, int]]:
    """``(width, height)`` in px of an image file read from its header alone (no pixel is
    decoded), or ``None`` when no reader recognises the header.

    Pillow's lazy open covers every format Pillow knows; TIFF variants it cannot identify (the
    ones OpenCV then decodes, e.g. 32-bit float RGB) are read by a small IFD parser here.

    Raises:
        ImageTooLarge: Pillow refuses the header itself (over twice ``PIL.Image.MAX_IMAGE_PIXELS``,
            about 179 megapixels), giving only the pixel count.
    """
    import re

    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides
        try:
            with Image.open(path) as img:
                return tuple(img.size)
        except Image.DecompressionBombError as e:  # past Pillow's own hard cap (~179 MP)
            m = re.search(r"\((\d+) pixels\)", str(e))
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            raise ImageTooLarge(f"{path}: image too large to decode safely ({e})",
                                int(m.group(1)) if m else limit + 1, limit) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
            pass
    try:
        with open(path, "rb") as f:
            return _tiff_size(f)
    except (OSError, struct.error):
        return None


def check_pixel_count(path: Union[str, Path], max_pixels: Optional[int]) -> Optional[Tuple[int, int]]:
    """Refuse ``path`` when its header announces more than ``max_pixels`` pixels.

    Returns the header's ``(width, height)`` (``None`` when no reader recognises it).

    Raises:
        ImageTooLarge: more than ``max_pixels`` pixels (``None`` or 0 = no cap).
    """
    try:
        size = image_header_size(path)
    except ImageTooLarge as e:  # Pillow's own hard cap: only the pixel count is known
        limit = min(max_pixels or e.max_pixels, e.max_pixels)
        raise ImageTooLarge(f"{path}: image too large: {e.pixels / 1e6:.3g} megapixels; the limit is "
                            f"{limit / 1e6:.3g} megapixels", e.pixels, limit) from None
    if size is not None and max_pixels and size[0] * size[1] > max_pixels:
        w, h = size
        raise ImageTooLarge(f"{path}: image too large: {w} x {h} px = {w * h / 1e6:.3g} megapixels; the limit is "
                            f"{max_pixels / 1e6:.3g} megapixels", w * h, max_pixels)
    return size


def load_image(path: Union[str, Path], max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 RGB with EXIF orientation applied.

    Args:
        max_pixels: refuse images with more pixels (width x height) than this, from the header,
            before decoding (``None`` = no cap, for trusted files only).

    Raises:
        ImageTooLarge: over ``max_pixels``.
        ImageLoadError: missing, unreadable (permission, symbolic-link loop), empty, truncated,
            corrupt or unsupported file; with a cap, also a file only OpenCV might decode whose
            header no reader recognises (its size cannot be checked, so it is not decoded).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    from maskface.utils.io import file_problem

    path = str(path)
    problem = file_problem(path)
    if problem is not None:
        raise ImageLoadError(f"{path}: {problem}")
    header = check_pixel_count(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked above
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img)  # also forces the decode
                img.load()
                arr = _pil_to_rgb(img)
    except UnidentifiedImageError:
        if header is None and max_pixels:
            raise ImageLoadError(f"{path}: not a recognised image format (corrupt or not an image; its size "
                                 "cannot be read from the header, so it is not decoded)") from None
        arr = _cv2_fallback(path, "not a recognised image format (corrupt or not an image)")
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: image too large to decode safely ({e})") from None
    except MemoryError:
        raise ImageLoadError(f"{path}: out of memory while decoding (image too large?)") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated data, broken headers
        # No OpenCV fallback here: it would "decode" a truncated JPEG as a half-grey picture.
        raise ImageLoadError(f"{path}: corrupt or truncated image ({e})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"{path}: decoded to an unusable array of shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return arr if arr.flags.writeable else arr.copy()  # PIL hands out read-only buffers


def _cv2_fallback(path: str, pil_problem: str) -> np.ndarray:
    """OpenCV reads a few files PIL rejects; if it fails too, report PIL's reason."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)  # applies EXIF orientation
    except Exception:  # noqa: BLE001 - any decoder failure is the same user-facing problem
        bgr = None
    if bgr is None or bgr.size == 0:
        raise ImageLoadError(f"{path}: {pil_problem}")
    return bgr[:, :, ::-1].copy()


def to_rgb_array(image, color: str = "bgr", name: str = "image") -> np.ndarray:
    """Check a caller's array and return it as contiguous ``H x W x 3`` uint8 RGB.

    Args:
        image: ``H x W x 3`` uint8 numpy array (a PIL image is accepted too and treated as RGB).
        color: ``"bgr"`` (what OpenCV reads, the default) or ``"rgb"``.
    """
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            return _pil_to_rgb(image)
    except ImportError:  # pragma: no cover
        pass
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor
        raise TypeError(f"{name}: expected a numpy HxWx3 uint8 array or a path, got a torch tensor; "
                        "use tensor.permute(1, 2, 0).mul(255).byte().cpu().numpy() and color='rgb'")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy HxWx3 uint8 array or a file path, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        hint = " (grayscale: stack it with np.dstack([img] * 3))" if image.ndim == 2 else (
            " (drop alpha with img[..., :3])" if image.ndim == 3 and image.shape[2] == 4 else "")
        raise ValueError(f"{name}: expected a 3-channel image, got shape {tuple(image.shape)}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: empty image of shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (0..255), got {image.dtype}; "
                         "convert with (img * 255).clip(0, 255).astype(np.uint8) for 0..1 floats")
    if color == "bgr":
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, :, ::-1])


def resize_max_side(image: np.ndarray, max_size: int | None) -> Tuple[np.ndarray, float]:
    """Shrink ``image`` so its longest side is at most ``max_size`` (never enlarges).

    Returns ``(image, scale)`` with ``scale = new / original`` (1.0 when unchanged).
    """
    if not max_size or max(image.shape[:2]) <= max_size:
        return image, 1.0
    import cv2

    h, w = image.shape[:2]
    scale = float(max_size) / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA), scale


# input lists ------------------------------------------------------------------------------------


def collect_inputs(spec: Union[str, Path, Sequence[Union[str, Path]]]) -> List[Tuple[str, str]]:
    """Expand an ``--input`` into ``[(path, kind)]`` with kind ``"image"``, ``"video"``,
    ``"stream"`` (a URL, see :func:`maskface.inference.streams.is_stream_url`) or
    ``"unreadable"`` (a sub-folder that cannot be listed, e.g. no permission: the runner reports
    it as a failed input rather than skipping it silently).

    ``spec`` may be one file (any extension: an unknown one is tried as an image, so the user
    gets a clear per-file error), a folder (searched recursively for image and video files,
    sorted), a glob pattern (``"shots/**/*.jpg"``), or a list of these. A file reached twice
    (the same file spelled two ways, or through a symbolic link) is listed once.

    Raises:
        InputSpecError: nothing exists / matched, or the folder itself cannot be read.
    """
    if isinstance(spec, (list, tuple)):
        out: List[Tuple[str, str]] = []
        for s in spec:
            out.extend(collect_inputs(s))
        seen, uniq = set(), []
        for p, k in out:
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                uniq.append((p, k))
        return uniq
    spec = str(spec)
    from maskface.inference.streams import is_stream_url

    if is_stream_url(spec):  # rtsp://, http://...mjpg, https://...m3u8: read live by the runner
        return [(spec, "stream")]
    if os.path.isdir(spec):
        found = []
        unreadable: List[Tuple[str, str]] = []

        def on_error(e: OSError) -> None:
            if os.path.realpath(e.filename or spec) == os.path.realpath(spec):
                raise InputSpecError(f"{spec}: cannot read folder ({e.strerror or e})")
            unreadable.append((str(e.filename), "unreadable"))

        for root, dirs, files in os.walk(spec, onerror=on_error):
            dirs.sort()
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for f in sorted(files):
                if f.startswith("."):
                    continue
                p = os.path.join(root, f)
                if is_image_file(p):
                    found.append((p, "image"))
                elif is_video_file(p):
                    found.append((p, "video"))
        if not found and not unreadable:
            raise InputSpecError(f"{spec}: folder contains no image or video files "
                                 f"(looked for {', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
        return found + unreadable
    if os.path.isfile(spec) or os.path.lexists(spec):  # lexists: a broken or looping link gets a per-file error
        return [(spec, "video" if is_video_file(spec) else "image")]
    if glob.has_magic(spec):
        matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        found = [(p, "video" if is_video_file(p) else "image") for p in matches
                 if is_image_file(p) or is_video_file(p)]
        if not found:
            raise InputSpecError(f"{spec}: pattern matched no image or video files")
        return found
    raise InputSpecError(f"{spec}: no such file or folder")
