"""Upload checks by CONTENT, not by file name: magic bytes say what a file claims to be, then a
real decode (image) or an open-and-read (video) proves it.

The extension of the uploaded name is never trusted: a text file renamed ``photo.jpg`` is
rejected (:class:`UnsupportedMediaType`, HTTP 415) and a JPEG named ``photo.txt`` is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = [
    "IMAGE_FORMATS",
    "VIDEO_FORMATS",
    "MediaType",
    "UploadError",
    "UnsupportedMediaType",
    "sniff",
]

IMAGE_FORMATS = ("jpeg", "png", "bmp", "webp", "tiff")
VIDEO_FORMATS = ("mp4", "mov", "avi", "mkv", "webm")

# QuickTime files may start with one of these atoms instead of "ftyp" (pre-2001 .mov files).
_QT_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
# ISO-BMFF brands of QuickTime; every other ftyp brand (isom, mp41, mp42, avc1, M4V, dash...) is MP4.
_QT_BRANDS = (b"qt  ",)


class UploadError(ValueError):
    """An upload the server refuses; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, error: str, detail: str = ""):
        super().__init__(f"{error}: {detail}" if detail else error)
        self.error = error
        self.detail = detail


class UnsupportedMediaType(UploadError):
    status = 415


@dataclass(frozen=True)
class MediaType:
    kind: str  # "image" | "video"
    format: str  # one of IMAGE_FORMATS / VIDEO_FORMATS
    suffix: str  # the extension the temp file gets, so decoders that look at names are happy


def _sniff_format(head: bytes) -> Optional[MediaType]:
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType("image", "jpeg", ".jpg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType("image", "png", ".png")
    if head.startswith(b"BM") and len(head) >= 26:
        return MediaType("image", "bmp", ".bmp")
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return MediaType("image", "tiff", ".tif")
    if head.startswith(b"RIFF") and len(head) >= 12:
        if head[8:12] == b"WEBP":
            return MediaType("image", "webp", ".webp")
        if head[8:12] == b"AVI ":
            return MediaType("video", "avi", ".avi")
        return None
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _QT_BRANDS:
            return MediaType("video", "mov", ".mov")
        if brand.startswith((b"hei", b"mif1", b"msf1", b"avif", b"avis")):
            return None  # HEIF/AVIF stills share the container but are not supported
        return MediaType("video", "mp4", ".mp4")
    if len(head) >= 8 and head[4:8] in _QT_ATOMS:
        return MediaType("video", "mov", ".mov")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or WebM, DocType tells which
        return MediaType("video", "webm", ".webm") if b"webm" in head[:64] else MediaType("video", "mkv", ".mkv")
    return None


def sniff(head: bytes) -> MediaType:
    """Identify an upload from its first bytes (64 are enough).

    Raises:
        UploadError: ``head`` is empty (400).
        UnsupportedMediaType: not one of the supported image/video containers (415).
    """
    if not head:
        raise UploadError("empty file", "the uploaded file has 0 bytes")
    media = _sniff_format(head)
    if media is None:
        raise UnsupportedMediaType(
            "unsupported file type",
            "the file's content is not a supported image (" + ", ".join(f.upper() for f in IMAGE_FORMATS)
            + ") or video (" + ", ".join(f.upper() for f in VIDEO_FORMATS) + "); the file name is not trusted",
        )
    return media
