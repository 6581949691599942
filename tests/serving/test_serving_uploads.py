"""Content sniffing of uploads: the first bytes decide, never the file name."""

import pytest

from maskface.serving.uploads import UnsupportedMediaType, UploadError, sniff


@pytest.mark.parametrize("head,kind,fmt", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image", "jpeg"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image", "png"),
    (b"BM" + b"\x00" * 30, "image", "bmp"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image", "webp"),
    (b"II*\x00\x08\x00\x00\x00", "image", "tiff"),
    (b"MM\x00*\x00\x00\x00\x08", "image", "tiff"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video", "mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video", "mov"),
    (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "video", "mov"),
    (b"RIFF\x24\x00\x00\x00AVI LIST", "video", "avi"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", "video", "mkv"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video", "webm"),
])
def test_sniff_known_formats(head, kind, fmt):
    media = sniff(head)
    assert (media.kind, media.format) == (kind, fmt)
    assert media.suffix.startswith(".")


@pytest.mark.parametrize("head", [
    b"hello, this is text",
    b"GIF89a\x01\x00\x01\x00",  # GIF is not on the list
    b"%PDF-1.7\n",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but audio
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",  # HEIF still in an ISO-BMFF box
    b"PK\x03\x04",
])
def test_sniff_rejects_other_content(head):
    with pytest.raises(UnsupportedMediaType) as e:
        sniff(head)
    assert e.value.status == 415


def test_sniff_empty_is_400():
    with pytest.raises(UploadError) as e:
        sniff(b"")
    assert e.value.status == 400 and e.value.error == "empty file"
