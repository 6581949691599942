"""Reading inputs robustly: images in any common mode, arrays from callers, and input lists.

Every image that enters MaskFace goes through :func:`load_image` (files) or
:func:`to_rgb_array` (arrays) and comes out as ``H x W x 3`` uint8 RGB:

* EXIF orientation is applied (``ImageOps.exif_transpose``), so boxes are in the pixels of the
  image as it is displayed;
* grayscale, palette, RGBA/LA (composited over white), 16-bit and 32-bit integer/float
  images and CMYK JPEGs are converted to 8-bit RGB;
* zero-byte, truncated, corrupt or unsupported files raise :class:`ImageLoadError` whose
  message names the file and what is wrong.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "ImageLoadError",
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


def load_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 RGB with EXIF orientation applied.

    Raises:
        ImageLoadError: missing, empty, truncated, corrupt or unsupported file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = str(path)
    if not os.path.exists(path):
        raise ImageLoadError(f"{path}: file not found")
    if os.path.isdir(path):
        raise ImageLoadError(f"{path}: is a folder, not an image")
    size = os.path.getsize(path)
    if size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # also forces the decode
            img.load()
            arr = _pil_to_rgb(img)
    except UnidentifiedImageError:
        arr = _cv2_fallback(path, "not a recognised image format (corrupt or not an image)")
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: image too large to decode safely ({e})") from None
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
    """Expand an ``--input`` into ``[(path, kind)]`` with kind ``"image"`` or ``"video"``.

    ``spec`` may be one file (any extension: an unknown one is tried as an image, so the user
    gets a clear per-file error), a folder (searched recursively for image and video files,
    sorted), a glob pattern (``"shots/**/*.jpg"``), or a list of these.

    Raises:
        InputSpecError: nothing exists / matched.
    """
    if isinstance(spec, (list, tuple)):
        out: List[Tuple[str, str]] = []
        for s in spec:
            out.extend(collect_inputs(s))
        seen, uniq = set(), []
        for p, k in out:
            if p not in seen:
                seen.add(p)
                uniq.append((p, k))
        return uniq
    spec = str(spec)
    if os.path.isdir(spec):
        found = []
        for root, dirs, files in os.walk(spec):
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
        if not found:
            raise InputSpecError(f"{spec}: folder contains no image or video files "
                                 f"(looked for {', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
        return found
    if os.path.isfile(spec):
        return [(spec, "video" if is_video_file(spec) else "image")]
    if glob.has_magic(spec):
        matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        found = [(p, "video" if is_video_file(p) else "image") for p in matches
                 if is_image_file(p) or is_video_file(p)]
        if not found:
            raise InputSpecError(f"{spec}: pattern matched no image or video files")
        return found
    raise InputSpecError(f"{spec}: no such file or folder")
