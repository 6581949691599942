"""WIDER FACE ``wider_face_*_bbx_gt.txt`` -> COCO faces (boxes only).

The official ground-truth format repeats, per image::

    0--Parade/0_Parade_marchingband_1_465.jpg      # file name, relative to WIDER_*/images
    2                                              # face count N
    x1 y1 w h blur expression illumination invalid occlusion pose   # N rows (px, then 6 flags)
    ...

An image with 0 faces still has one row of zeros (its count line may say 0 or 1); such an
all-zero row is not a face, so the image is kept as a negative. Rules:

* every face keeps its six flags as ``wider_flags``; ``invalid == 1`` faces become ``iscrowd: 1``;
* boxes reaching outside the image are clipped to it (counted in ``info["notes"]``);
* boxes of zero width or height are kept, as ``iscrowd: 1`` (counted in ``info["notes"]``), so the
  output holds exactly the faces the file lists; a negative width or height is a malformed row;
* a malformed line (including one that is not UTF-8 text) is reported as
  ``<gt file>:<line>: ...``; without ``strict`` the parser skips the bad face row, or for a bad
  count line re-synchronises at the next file-name line. An image whose every face row is
  malformed is dropped rather than kept as a face-less negative; one that kept some of its faces
  is flagged ``"malformed_faces": n`` (see :class:`CocoFacesBuilder`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from maskface.data.converters.common import (
    IMAGE_EXTENSIONS,
    CocoFacesBuilder,
    PathLike,
    clip_box,
    image_size,
)
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

WIDER_FLAGS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


@dataclass
class WiderRecord:
    """One image of a ground-truth file: its name, the line it starts at, its face rows as
    ``(line number, [x1, y1, w, h, *flags])`` and the number of malformed / missing face rows."""

    file_name: str
    line: int
    faces: List[Tuple[int, List[float]]] = field(default_factory=list)
    malformed: int = 0


def _is_file_name(line: str) -> bool:
    return line.strip().lower().endswith(IMAGE_EXTENSIONS)


def parse_wider_gt(gt_file: PathLike, builder: CocoFacesBuilder) -> Iterator[WiderRecord]:
    """Yield the records of a WIDER ground-truth file; malformed lines go to ``builder.skip``.

    All-zero rows (the 0-face marker) are dropped here, so ``record.faces`` holds real faces only.
    """
    gt_file = Path(gt_file)
    lines = _read_lines(gt_file, builder)
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        where = f"{gt_file}:{i + 1}"
        if not _is_file_name(lines[i]):
            builder.skip("malformed line", where, f"expected an image file name, got {lines[i][:60]!r}")
            i += 1
            continue
        record = WiderRecord(file_name=lines[i], line=i + 1)
        count_line = lines[i + 1] if i + 1 < len(lines) else ""
        if not count_line.isdigit():
            builder.skip(
                "malformed line",
                f"{gt_file}:{i + 2}",
                f"expected the face count of {record.file_name}, got {count_line!r}",
            )
            i += 1  # re-synchronise at the next file-name line; this image is skipped
            while i < len(lines) and not _is_file_name(lines[i]):
                i += 1
            continue
        count = int(count_line)
        i += 2
        for seen in range(max(count, 1)):
            if i >= len(lines) or _is_file_name(lines[i]):
                if count > 0:
                    builder.skip(
                        "missing face line",
                        f"{gt_file}:{i + 1}",
                        f"{record.file_name} announces {count} faces, found {len(record.faces)}",
                    )
                    record.malformed += count - seen
                break
            where = f"{gt_file}:{i + 1}"
            values = _parse_face_line(lines[i], where, builder)
            if values is None:
                record.malformed += 1
            elif not any(values):
                if count > 0:
                    builder.note("all-zero face row read as the 0-face marker", where, "not a face")
            elif count == 0:
                builder.skip("malformed line", where, "face count is 0 but the row is not all zeros")
                record.malformed += 1
            else:
                record.faces.append((i + 1, values))
            i += 1
        yield record


def _read_lines(gt_file: Path, builder: CocoFacesBuilder) -> List[str]:
    """The stripped lines of a gt file; a line that is not UTF-8 is reported with its number and
    kept with the bad bytes replaced (U+FFFD), so the rest of the file is still read."""
    with open(gt_file, "rb") as f:
        raw = f.read().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines = []
    for n, data in enumerate(raw, 1):
        try:
            lines.append(data.decode("utf-8").strip())
        except UnicodeDecodeError as e:
            builder.skip("malformed line", f"{gt_file}:{n}",
                         f"not UTF-8 text (byte 0x{data[e.start]:02x} at column {e.start + 1}): {data[:60]!r}")
            lines.append(data.decode("utf-8", errors="replace").strip())
    return lines


def _parse_face_line(line: str, where: str, builder: CocoFacesBuilder) -> Optional[List[float]]:
    parts = line.split()
    if len(parts) != 10:
        builder.skip("malformed line", where, f"expected 10 numbers per face line, got {len(parts)}")
        return None
    try:
        values = [float(v) for v in parts]
    except ValueError:
        builder.skip("malformed line", where, f"face line has a non-numeric value: {line!r}")
        return None
    if not all(math.isfinite(v) for v in values):
        builder.skip("malformed line", where, f"face line has a non-finite value: {line!r}")
        return None
    if values[2] < 0 or values[3] < 0:
        builder.skip("malformed line", where, f"box width and height must be >= 0, got w={parts[2]} h={parts[3]}")
        return None
    if any(v != int(v) or v < 0 for v in values[4:]):
        builder.skip("malformed line", where, f"flags must be non-negative integers, got {parts[4:]}")
        return None
    return values


def convert_wider(
    image_root: PathLike,
    gt_file: PathLike,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Convert a WIDER FACE split.

    Args:
        image_root: the split's image folder (``WIDER_val/images``); file names in the gt file
            are relative to it.
        gt_file: ``wider_face_split/wider_face_<split>_bbx_gt.txt``.
        strict: raise at the first malformed line instead of skipping it.
        limit: convert only the first ``limit`` images.
        progress: show a progress bar.

    Returns:
        COCO face dict; faces have ``bbox``, ``iscrowd`` and ``wider_flags``, no masks.
    """
    image_root = Path(image_root)
    builder = CocoFacesBuilder("wider_face", image_root, strict, description=f"WIDER FACE ({Path(gt_file).name})")
    records = list(parse_wider_gt(gt_file, builder))
    if limit is not None:
        records = records[:limit]
    for record in progress_bar(records, desc="wider", unit="img", disable=not progress):
        path = image_root / record.file_name
        try:
            width, height = image_size(path)
        except OSError as e:
            builder.skip("image unreadable", f"{gt_file}:{record.line}", f"cannot read {path}: {e}")
            continue
        image_id = builder.add_image(path, width, height)
        if record.malformed:
            builder.malformed_faces[image_id] += record.malformed  # already reported, line by line
        for line, values in record.faces:
            _add_face(builder, image_id, values, width, height, f"{gt_file}:{line}")
    return builder.to_coco(inputs=[image_root, gt_file])


def _add_face(builder: CocoFacesBuilder, image_id: int, values: List[float], width: int, height: int, where: str):
    flags = {name: int(v) for name, v in zip(WIDER_FLAGS, values[4:])}
    box = values[:4]
    clipped = clip_box(box, width, height)
    if [round(v, 2) for v in clipped] != [round(v, 2) for v in box]:
        builder.note("box clipped to image", where, f"box {box} clipped to {clipped}")
    iscrowd = flags["invalid"] == 1
    if clipped[2] <= 0 or clipped[3] <= 0:
        builder.note("zero-size box kept as iscrowd=1", where, f"box {box} has zero size")
        iscrowd = True
    builder.add_face(image_id, clipped, iscrowd=int(iscrowd), where=where, wider_flags=flags)
