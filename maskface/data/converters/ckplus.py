"""CK+ (Extended Cohn-Kanade, Lucey et al. 2010) -> COCO faces with emotion labels.

CK+ films posed expressions of 123 adults in a lab: each sequence runs from a neutral face to
the peak of one expression. Two layouts are read (:func:`convert_ckplus` picks by the folders):

* **image folders**, the form most public copies take (``CK+48``: 981 face crops of 48 x 48 px,
  the last three frames of each of the 327 labelled sequences; also larger crops):
  ``<root>/<emotion>/S<subject>_<sequence>_<frame>.png``. The folder name is the emotion
  (``anger``, ``contempt``, ``disgust``, ``fear``, ``happy``, ``sadness``, ``surprise``, and
  ``neutral`` where a copy has it); the whole image is the face box.
* **the original release**: ``<root>/cohn-kanade-images/S005/001/S005_001_00000011.png`` (640 x
  490 frames), ``<root>/Emotion/S005/001/S005_001_00000011_emotion.txt`` (one number, the code of
  :data:`CKPLUS_CODES`, for the sequence's last, peak frame; 327 sequences have one) and
  ``<root>/Landmarks/S005/001/S005_001_00000011_landmarks.txt`` (68 ``x y`` points per frame).
  The last ``peak_frames`` frames of each labelled sequence get its emotion and, with
  ``neutral_first``, its first frame is a neutral face. The face box is the landmarks' box with
  its top raised by :data:`FOREHEAD` of its height (the 68 points stop at the brows, face boxes
  elsewhere in MaskFace include the forehead); a frame without landmarks is reported and skipped.

**Classes.** MaskFace predicts seven emotions (:data:`maskface.data.attributes.EMOTIONS`); CK+
has contempt besides them and, in the folder copies, often no neutral. Contempt has no MaskFace
class: by default its faces are dropped (counted in ``info["skipped"]``); ``contempt="disgust"``
folds them into disgust, its nearest class, instead. The mapping used is stored in
``info["emotion_map"]``.

**Persons.** Every image records its subject (``S010``) as ``identity``, so ``split`` keeps each
person on one side, and its sequence as ``sequence``: frames of one sequence are near-duplicates.
A file name without the ``S<subject>_<sequence>_<frame>`` pattern is reported and skipped.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from maskface.data.attributes import normalize_emotion
from maskface.data.converters.common import CocoFacesBuilder, PathLike, list_images
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

#: Emotion codes of the original release's ``*_emotion.txt`` files -> CK+ class names.
CKPLUS_CODES = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness",
                7: "surprise"}
CONTEMPT_POLICIES = ("drop", "disgust")
#: The landmarks' box is raised by this fraction of its height to take in the forehead.
FOREHEAD = 0.25
_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)$")


def ckplus_emotion(name: str, contempt: str = "drop") -> Optional[str]:
    """A CK+ class name (or any spelling :func:`normalize_emotion` knows) -> MaskFace emotion;
    ``None`` for contempt under ``contempt="drop"`` and for unknown names."""
    if contempt not in CONTEMPT_POLICIES:
        raise ValueError(f"contempt must be one of {CONTEMPT_POLICIES}, got {contempt!r}")
    if name.strip().lower() == "contempt":
        return None if contempt == "drop" else contempt
    return normalize_emotion(name)


def _emotion_map(contempt: str) -> Dict[str, Optional[str]]:
    return {name: ckplus_emotion(name, contempt) for name in CKPLUS_CODES.values()}


def _subject_sequence(path: Path) -> Optional[Tuple[str, str]]:
    m = _NAME.match(path.stem)
    return (m.group(1), f"{m.group(1)}_{m.group(2)}") if m else None


def read_emotion_code(path: PathLike) -> str:
    """The CK+ class name in an original-release ``*_emotion.txt`` file (one number such as
    ``3.0000000e+00``); ``ValueError`` naming the file when it holds anything else."""
    text = Path(path).read_text(encoding="utf-8", errors="replace").split()
    try:
        value = float(text[0]) if len(text) == 1 else float("nan")
    except ValueError:
        value = float("nan")
    if not value.is_integer() or int(value) not in CKPLUS_CODES:
        raise ValueError(f"{path}:1: expected one emotion code 0..{len(CKPLUS_CODES) - 1}, got {' '.join(text)!r}")
    return CKPLUS_CODES[int(value)]


def read_landmarks(path: PathLike) -> np.ndarray:
    """The 68 ``(x, y)`` points (px) of an original-release ``*_landmarks.txt`` file as a
    ``(68, 2)`` float array; ``ValueError`` naming the file and line of a malformed row."""
    points = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            x, y = (float(v) for v in parts)
        except ValueError:
            raise ValueError(f"{path}:{line_no}: expected two numbers 'x y', got {line.strip()!r}") from None
        points.append((x, y))
    if len(points) != 68:
        raise ValueError(f"{path}: expected 68 landmark rows, got {len(points)}")
    return np.asarray(points, dtype=np.float64)


def landmark_box(points: np.ndarray, width: int, height: int) -> List[float]:
    """``[x, y, w, h]`` (px) of the landmarks, raised by :data:`FOREHEAD`, clipped to the image."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    y0 -= FOREHEAD * (y1 - y0)
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(float(width), x1), min(float(height), y1)
    return [x0, y0, x1 - x0, y1 - y0]


def convert_ckplus(
    root: PathLike,
    contempt: str = "drop",
    peak_frames: int = 1,
    neutral_first: bool = False,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Convert CK+ in either layout of the module docstring.

    Args:
        root: the folder of emotion folders, or the release folder holding ``cohn-kanade-images/``
            and ``Emotion/`` (then also ``Landmarks/``); also the output's image root.
        contempt: ``"drop"`` (default) or ``"disgust"``: what becomes of contempt faces.
        peak_frames: original release: how many last frames of a labelled sequence get its
            emotion (>= 1; 3 matches the CK+48 copies).
        neutral_first: original release: also label each labelled sequence's first frame neutral.
        strict: raise at the first malformed record instead of skipping it.
        limit: convert only the first ``limit`` images (sorted by path).
        progress: show a progress bar.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected CK+ emotion folders or cohn-kanade-images/)")
    ckplus_emotion("neutral", contempt)  # checks the policy
    if peak_frames < 1:
        raise ValueError(f"peak_frames must be >= 1, got {peak_frames}")
    release = (root / "cohn-kanade-images").is_dir()
    builder = CocoFacesBuilder("ckplus", root, strict,
                               description="CK+ (original release)" if release else "CK+ (emotion folders)")
    if release:
        items = _release_items(root, builder, contempt, peak_frames, neutral_first)
    else:
        items = _folder_items(root, builder, contempt)
    for path, emotion, landmarks in progress_bar(items[:limit], desc="ckplus", unit="img", disable=not progress):
        ids = _subject_sequence(path)
        if ids is None:
            builder.skip("file name without subject", str(path),
                         "expected a CK+ name S<subject>_<sequence>_<frame> (e.g. S010_004_00000017.png)")
            continue
        size = builder.image_size(path)
        if size is None:
            continue
        width, height = size
        if landmarks is None:
            box = [0, 0, width, height]
        else:
            try:
                box = landmark_box(read_landmarks(landmarks), width, height)
            except (OSError, ValueError) as e:
                builder.skip("no landmarks for the face box", str(path), str(e))
                continue
        image_id = builder.add_image(path, width, height, identity=ids[0], sequence=ids[1])
        builder.add_face(image_id, box, attributes={"emotion": emotion})
    extra = {"peak_frames": peak_frames, "neutral_first": neutral_first} if release else {}
    return builder.to_coco(inputs=[root], emotion_map=_emotion_map(contempt),
                           layout="release" if release else "folders", **extra)


def _folder_items(root: Path, builder: CocoFacesBuilder, contempt: str) -> List[Tuple[Path, str, None]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"{root}: no emotion folders (expected <root>/<emotion>/S010_004_00000017.png, "
                                "or the original release's cohn-kanade-images/ and Emotion/)")
    items = []
    for folder in folders:
        images = list_images(folder)
        emotion = ckplus_emotion(folder.name, contempt)
        if emotion is None and folder.name.strip().lower() == "contempt":
            builder.skip("contempt (no MaskFace class)", str(folder),
                         f"{len(images)} contempt images dropped (contempt='disgust' keeps them as disgust)",
                         count=len(images))
            continue
        if emotion is None:
            builder.skip("unknown emotion folder", str(folder),
                         f"unknown emotion folder {folder.name!r} ({len(images)} images)", count=len(images))
            continue
        items.extend((path, emotion, None) for path in images)
    return items


def _release_items(root: Path, builder: CocoFacesBuilder, contempt: str, peak_frames: int,
                   neutral_first: bool) -> List[Tuple[Path, str, Optional[Path]]]:
    emotion_dir, landmark_dir = root / "Emotion", root / "Landmarks"
    if not emotion_dir.is_dir():
        raise FileNotFoundError(f"{emotion_dir}: no such folder (the release's emotion labels)")
    items = []
    for label_file in sorted(emotion_dir.rglob("*_emotion.txt")):
        try:
            name = read_emotion_code(label_file)
        except (OSError, ValueError) as e:
            builder.skip("malformed emotion file", str(label_file), str(e).split(": ", 1)[-1])
            continue
        sequence = label_file.parent.relative_to(emotion_dir)
        frames = list_images(root / "cohn-kanade-images" / sequence)
        if not frames:
            builder.skip("sequence without frames", str(label_file),
                         f"no frames under {root / 'cohn-kanade-images' / sequence}")
            continue
        emotion = ckplus_emotion(name, contempt)
        if emotion is None:
            builder.skip("contempt (no MaskFace class)", str(label_file),
                         "contempt sequence dropped (contempt='disgust' keeps it as disgust)",
                         count=min(peak_frames, len(frames)))
            continue
        chosen = [(f, emotion) for f in frames[-peak_frames:]]
        if neutral_first and len(frames) > peak_frames:
            chosen.insert(0, (frames[0], "neutral"))
        for frame, label in chosen:
            items.append((frame, label, landmark_dir / sequence / f"{frame.stem}_landmarks.txt"))
    return items
