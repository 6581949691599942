"""Writers of inference results: ``results.json``, ``results.jsonl`` (streamed), ``results.csv``
and COCO results (``coco_results.json`` + ``coco_images.json``).

All whole-file outputs are written atomically (temp file + rename): an interrupted run never
leaves a half-written file. ``results.jsonl`` is an append log, one JSON object per line,
flushed after every line, so an interrupted run keeps everything it finished; readers skip a
cut last line. Its lines are of three kinds (told apart by their keys):

* an image / frame record, exactly an entry of ``results.json``'s ``"images"`` (key ``"faces"``);
* an error record ``{"file": ..., "error": ...}`` (key ``"error"``);
* a completion marker ``{"file": video, "complete": true, "frames": n}`` written when a
  video has been read to its end (``--skip-existing`` only skips videos that have one).

See ``maskface/inference/SCHEMA.md`` for the ``results.json`` schema.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from maskface.data.attributes import EMOTIONS
from maskface.inference.results import Face, ImageResult
from maskface.utils.io import atomic_write, save_json

__all__ = [
    "CSV_COLUMNS",
    "JsonlWriter",
    "read_jsonl",
    "write_results_json",
    "write_results_csv",
    "write_coco_results",
    "csv_rows",
]

PathLike = Union[str, "os.PathLike[str]"]
RecordLike = Union[ImageResult, Dict[str, Any]]

CSV_COLUMNS = (
    ["file", "frame", "face_index", "x1", "y1", "x2", "y2", "score", "age", "age_std", "age_group",
     "age_group_top", "gender", "gender_prob", "emotion"]
    + [f"p_{e}" for e in EMOTIONS]
    + ["track_id", "mask_area"]
)


def _as_dict(rec: RecordLike) -> Dict[str, Any]:
    return rec.to_dict() if isinstance(rec, ImageResult) else rec


# JSON lines --------------------------------------------------------------------------------------


class JsonlWriter:
    """Append-only JSON-lines log, flushed (and fsync'ed every ``sync_every`` lines).

    Opening an existing file in append mode first cuts a partial last line left by a crash.
    """

    def __init__(self, path: PathLike, append: bool = True, sync_every: int = 1):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if append and os.path.exists(self.path):
            _truncate_partial_line(self.path)
        self._f = open(self.path, "a" if append else "w", encoding="utf-8")
        self._n = 0
        self.sync_every = max(1, sync_every)

    def write(self, obj: RecordLike) -> None:
        self._f.write(json.dumps(_as_dict(obj), ensure_ascii=False, separators=(",", ":")) + "\n")
        self._f.flush()
        self._n += 1
        if self._n % self.sync_every == 0:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _truncate_partial_line(path: str) -> None:
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Walk back to the last newline and cut there.
        pos = size - 1
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            k = buf.rfind(b"\n")
            if k >= 0:
                f.truncate(start + k + 1)
                return
            pos = start
        f.truncate(0)


def read_jsonl(path: PathLike) -> Iterator[Dict[str, Any]]:
    """The objects of a JSON-lines file, skipping blank and cut/corrupt lines."""
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


# results.json ---------------------------------------------------------------------------------------


def write_results_json(
    path: PathLike,
    images: Iterable[RecordLike],
    errors: Sequence[Dict[str, str]] = (),
    model: Any = None,
    extra: Optional[Dict[str, Any]] = None,
) -> int:
    """Write ``{"model", "images", "errors"}`` atomically, streaming the image records
    (so a long video's frames need not all be held in memory). Returns the image count."""
    n = 0
    with atomic_write(path, "w") as f:
        f.write('{"model": ' + json.dumps(model, ensure_ascii=False))
        for k, v in (extra or {}).items():
            f.write(f", {json.dumps(k)}: " + json.dumps(v, ensure_ascii=False))
        f.write(', "images": [')
        for rec in images:
            f.write(("\n  " if n == 0 else ",\n  ") + json.dumps(_as_dict(rec), ensure_ascii=False,
                                                              separators=(",", ":")))
            n += 1
        f.write("\n], \"errors\": " + json.dumps(list(errors), ensure_ascii=False, indent=1) + "}\n")
    return n


# CSV --------------------------------------------------------------------------------------------


def _round(v, nd=4):
    return "" if v is None else round(float(v), nd)


def csv_rows(rec: RecordLike) -> Iterator[Dict[str, Any]]:
    """One CSV row per face of an image record."""
    d = _as_dict(rec)
    for i, fd in enumerate(d.get("faces", [])):
        face = fd if isinstance(fd, Face) else Face.from_dict(fd, decode_mask=False)
        x1, y1, x2, y2 = face.box
        row = {
            "file": d["file"], "frame": "" if d.get("frame") is None else d["frame"], "face_index": i,
            "x1": round(x1, 2), "y1": round(y1, 2), "x2": round(x2, 2), "y2": round(y2, 2),
            "score": _round(face.score), "age": _round(face.age, 2), "age_std": _round(face.age_std, 2),
            "age_group": face.age_group or "", "age_group_top": face.age_group_top or "",
            "gender": face.gender or "",
            "gender_prob": _round(face.gender_prob), "emotion": face.emotion or "",
            "track_id": "" if face.track_id is None else face.track_id,
            "mask_area": "" if face.mask_area is None else face.mask_area,
        }
        for e in EMOTIONS:
            row[f"p_{e}"] = _round((face.emotion_probs or {}).get(e)) if face.emotion_probs else ""
        yield row


def write_results_csv(path: PathLike, images: Iterable[RecordLike]) -> int:
    """Write ``results.csv`` (columns :data:`CSV_COLUMNS`) atomically; returns the row count."""
    n = 0
    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for rec in images:
            for row in csv_rows(rec):
                w.writerow(row)
                n += 1
    return n


# COCO results ------------------------------------------------------------------------------------


def write_coco_results(
    results_path: PathLike,
    images_path: PathLike,
    images: Iterable[RecordLike],
    image_ids: Optional[Dict[str, int]] = None,
) -> int:
    """Write COCO detection/segmentation results with attributes, plus the image list.

    ``results_path`` gets ``[{"image_id", "category_id": 1, "bbox": [x, y, w, h], "score",
    "segmentation": RLE, "attributes": {age, age_std, age_group, age_group_top, gender, gender_prob, emotion,
    emotion_probs, track_id}}]``; ``images_path`` gets a COCO skeleton
    ``{"images": [{"id", "file_name", "width", "height", "frame"}], "categories": [{"id": 1,
    "name": "face"}], "annotations": []}`` so ``COCO(images_path).loadRes(results_path)`` works
    and results can be matched to ground truth by ``file_name`` (and ``frame``).

    ``image_ids`` maps ``file`` (or ``"file#frame"``) to ids of an existing ground-truth file;
    otherwise ids are 1, 2, ... in input order. Returns the number of results.
    """
    anns: List[Dict[str, Any]] = []
    imgs: List[Dict[str, Any]] = []
    next_id = 1
    taken = set(int(v) for v in (image_ids or {}).values())
    for rec in images:
        d = _as_dict(rec)
        key = d["file"] if d.get("frame") is None else f"{d['file']}#{d['frame']}"
        if image_ids is not None and key in image_ids:
            iid = int(image_ids[key])
        elif image_ids is not None and d["file"] in image_ids and d.get("frame") is None:
            iid = int(image_ids[d["file"]])
        else:
            while next_id in taken:
                next_id += 1
            iid = next_id
            next_id += 1
        imgs.append({"id": iid, "file_name": d["file"], "width": d["width"], "height": d["height"],
                     "frame": d.get("frame")})
        for fd in d.get("faces", []):
            x1, y1, x2, y2 = fd["box"]
            ann = {"image_id": iid, "category_id": 1, "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                   "score": fd["score"],
                   "attributes": {k: fd.get(k) for k in ("age", "age_std", "age_group", "age_group_top", "gender",
                                                         "gender_prob", "emotion", "emotion_probs", "track_id")}}
            if fd.get("mask") is not None:
                ann["segmentation"] = fd["mask"]
            anns.append(ann)
    save_json(anns, results_path)
    save_json({"images": imgs, "categories": [{"id": 1, "name": "face"}], "annotations": []}, images_path)
    return len(anns)
