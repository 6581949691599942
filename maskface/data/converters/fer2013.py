"""FER2013 -> COCO faces with emotion labels (the whole 48 x 48 image is the face box, no mask).

Two releases are read:

* image folders ``<root>/<split>/<emotion>/*.jpg`` (or ``<root>/<emotion>/*.jpg`` for a single
  split): the folder name is the emotion (spellings normalised by
  :func:`maskface.data.attributes.normalize_emotion`); a folder with another name is reported
  and its images skipped;
* the original ``fer2013.csv`` with columns ``emotion,pixels,Usage``: ``emotion`` is an index into
  :data:`CSV_EMOTIONS` (angry, disgust, fear, happy, sad, surprise, neutral: NOT alphabetical),
  ``pixels`` 2304 grey values, ``Usage`` one of Training / PublicTest / PrivateTest. Each row is
  written as ``<image_dir>/<Usage>/fer2013_<row>.png`` (``row``: 0-based data row), atomically;
  existing files are left as they are, so an interrupted run resumes.

Each image records its split (folder name or ``Usage``) as ``split``. FER2013 has no identity
labels, so splits are random.

FER+ (Barsoum et al. 2016, labels MIT) re-labelled FER2013 with ten crowd votes per face. Its
votes are attached to the faces they belong to as ``attributes["emotion_votes"]`` (the FER2013
label stays the face's ``emotion``), for the image-folder release: a CSV with columns ``jpg``
(path under the split folder, e.g. ``angry/Training_10118481.jpg``) and the vote columns
(:data:`FERPLUS_VOTE_COLUMNS`), as in ``ferplus_votes.csv``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import cv2
import numpy as np

from maskface.data.attributes import normalize_emotion
from maskface.data.converters.common import CocoFacesBuilder, PathLike, list_images
from maskface.utils.io import atomic_write
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

CSV_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: FER+ vote columns -> MaskFace vote names (:data:`maskface.data.attributes.VOTE_NAMES`).
FERPLUS_VOTE_COLUMNS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                        "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt",
                        "unknown": "unknown", "NF": "not_face"}
USAGES = ("Training", "PublicTest", "PrivateTest")
FER_SIZE = 48  # px, width and height of a FER2013 face


def _split_folders(root: Path, splits: Optional[Iterable[str]]) -> Dict[str, Path]:
    """``{split name: folder of emotion folders}``; a root of emotion folders is one split."""
    children = sorted(p for p in root.iterdir() if p.is_dir())
    if not children:
        raise FileNotFoundError(f"{root}: no sub-folders (expected <split>/<emotion>/ or <emotion>/ folders)")
    if any(normalize_emotion(p.name) for p in children):
        found = {root.name: root}
    else:
        found = {p.name: p for p in children}
    if splits:
        missing = sorted(set(splits) - set(found))
        if missing:
            raise FileNotFoundError(f"{root}: split folder(s) {missing} not found; found {sorted(found)}")
        found = {name: found[name] for name in splits}
    return found


def read_ferplus_votes(csv_file: PathLike, key: str = "jpg") -> Dict[str, Dict[str, int]]:
    """FER+ votes per image: ``{key value: {vote name: count}}`` (names of
    :data:`FERPLUS_VOTE_COLUMNS`' values; all ten present).

    Args:
        csv_file: CSV with a ``key`` column and the ten FER+ vote columns (header names as in FER+:
            neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF).
        key: the column that names the image (``jpg`` for the image-folder release).

    Raises ``ValueError`` naming the file and line of a malformed row (missing or non-integer
    vote, duplicate image) or a missing column.
    """
    votes: Dict[str, Dict[str, int]] = {}
    with open(csv_file, "r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = ({key} | set(FERPLUS_VOTE_COLUMNS)) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_file}:1: missing column(s) {sorted(missing)}; expected {key} and the FER+ vote "
                             f"columns {list(FERPLUS_VOTE_COLUMNS)}")
        for row in reader:
            where = f"{csv_file}:{reader.line_num}"
            name = (row[key] or "").strip()
            if not name:
                raise ValueError(f"{where}: empty {key!r}")
            if name in votes:
                raise ValueError(f"{where}: {name!r} appears twice")
            counts = {}
            for column, vote_name in FERPLUS_VOTE_COLUMNS.items():
                value = (row[column] or "").strip()
                if not value.isdigit():
                    raise ValueError(f"{where}: vote {column!r} must be a whole number >= 0, got {value!r}")
                counts[vote_name] = int(value)
            votes[name] = counts
    return votes


def convert_fer2013_folders(
    root: PathLike,
    splits: Optional[Iterable[str]] = None,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
    ferplus_votes: Optional[PathLike] = None,
) -> dict:
    """Convert the image-folder release.

    Args:
        root: ``<root>/<split>/<emotion>/`` or a single split ``<root>/<emotion>/``; also the
            output's image root.
        splits: split folder names to convert (default: all).
        strict: raise at the first unknown emotion folder or unreadable image.
        limit: convert only the first ``limit`` images (sorted by path).
        progress: show a progress bar.
        ferplus_votes: FER+ votes CSV keyed by ``jpg`` = ``<emotion folder>/<file name>``
            (:func:`read_ferplus_votes`); matching faces get ``emotion_votes``. Faces without a
            row keep only their label (counted in ``info["notes"]``).
    """
    root = Path(root)
    builder = CocoFacesBuilder("fer2013", root, strict, description="FER2013 (image folders)")
    votes = read_ferplus_votes(ferplus_votes) if ferplus_votes else None
    items = []
    for split, folder in _split_folders(root, splits).items():
        for emotion_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            emotion = normalize_emotion(emotion_dir.name)
            images = list_images(emotion_dir)
            if emotion is None:
                detail = f"unknown emotion folder {emotion_dir.name!r} ({len(images)} images)"
                builder.skip("unknown emotion folder", str(emotion_dir), detail, count=len(images))
                continue
            items.extend((path, split, emotion) for path in images)
    for path, split, emotion in progress_bar(items[:limit], desc="fer2013", unit="img", disable=not progress):
        size = builder.image_size(path)
        if size is None:
            continue
        width, height = size
        image_id = builder.add_image(path, width, height, split=split)
        attributes = {"emotion": emotion}
        if votes is not None:
            face_votes = votes.get(f"{path.parent.name}/{path.name}")
            if face_votes is None:
                builder.note("no FER+ votes (label only)", str(path))
            else:
                attributes["emotion_votes"] = face_votes
        builder.add_face(image_id, [0, 0, width, height], attributes=attributes)
    inputs = [root] + ([ferplus_votes] if ferplus_votes else [])
    return builder.to_coco(inputs=inputs)


def convert_fer2013_csv(
    csv_file: PathLike,
    image_dir: PathLike,
    usage: Optional[Iterable[str]] = None,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Convert the original ``fer2013.csv``, writing its images as PNG files under ``image_dir``.

    Args:
        csv_file: the CSV (header ``emotion,pixels,Usage``; ``Usage`` may be absent).
        image_dir: where the PNGs go (created); the output's image root.
        usage: keep only rows whose ``Usage`` is in this list (default: all).
        strict: raise at the first malformed row instead of skipping it.
        limit: convert only the first ``limit`` kept rows.
        progress: show a progress bar.
    """
    csv_file, image_dir = Path(csv_file), Path(image_dir)
    usage = set(usage) if usage else None
    if usage and not usage <= set(USAGES):
        raise ValueError(f"usage must be among {USAGES}, got {sorted(usage)}")
    builder = CocoFacesBuilder("fer2013", image_dir, strict, description="FER2013 (original CSV)")
    written = 0
    with open(csv_file, "r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_file}:1: missing column(s) {sorted(missing)}; expected emotion,pixels,Usage")
        for row_index, row in enumerate(progress_bar(reader, desc="fer2013-csv", unit="row", disable=not progress)):
            if limit is not None and len(builder.images) >= limit:
                break
            split = (row.get("Usage") or "").strip() or None
            if usage and split not in usage:
                continue
            where = f"{csv_file}:{reader.line_num}"
            image = _parse_row(row, where, builder)
            if image is None:
                continue
            path = image_dir / (split or "all") / f"fer2013_{row_index:05d}.png"
            if not path.exists():
                _write_png(image, path)
                written += 1
            image_id = builder.add_image(path, FER_SIZE, FER_SIZE, split=split)
            emotion = CSV_EMOTIONS[int(row["emotion"])]
            builder.add_face(image_id, [0, 0, FER_SIZE, FER_SIZE], attributes={"emotion": emotion})
    logger.info("wrote %d new PNG files under %s", written, image_dir)
    return builder.to_coco(inputs=[csv_file], usage=sorted(usage) if usage else list(USAGES))


def _parse_row(row: Dict[str, str], where: str, builder: CocoFacesBuilder) -> Optional[np.ndarray]:
    """The row's ``48 x 48`` uint8 image, or ``None`` (reported) when the row is malformed."""
    label = (row.get("emotion") or "").strip()
    if not label.isdigit() or int(label) >= len(CSV_EMOTIONS):
        builder.skip("malformed row", where, f"emotion must be an integer 0..{len(CSV_EMOTIONS) - 1}, got {label!r}")
        return None
    values: List[str] = (row.get("pixels") or "").split()
    if len(values) != FER_SIZE * FER_SIZE:
        builder.skip("malformed row", where, f"expected {FER_SIZE * FER_SIZE} pixel values, got {len(values)}")
        return None
    try:
        pixels = np.array([int(v) for v in values])
    except ValueError:
        builder.skip("malformed row", where, "pixel values must be integers 0..255")
        return None
    if pixels.min() < 0 or pixels.max() > 255:
        builder.skip("malformed row", where, "pixel values must be integers 0..255")
        return None
    return pixels.astype(np.uint8).reshape(FER_SIZE, FER_SIZE)


def _write_png(image: np.ndarray, path: Path) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode {path}")
    with atomic_write(path, "wb") as f:
        f.write(data.tobytes())
