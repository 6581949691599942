"""Operations on COCO face files: load with an absolute image root, merge, split, statistics.

Image roots: :func:`load_coco` rewrites the top-level ``"image_root"`` as an absolute path
(resolved like :func:`maskface.data.coco_faces.load_coco_faces`: the key, absolute or relative to
the JSON's folder, else the JSON's folder), so a dict can be written anywhere and still resolve.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from maskface.data.attributes import EMOTIONS, GENDERS
from maskface.data.converters.common import CONVERTER_VERSION, FACE_CATEGORY_ID, PathLike
from maskface.utils.io import load_json

logger = logging.getLogger(__name__)

ATTRIBUTES = ("age", "gender", "emotion")
SIZE_BINS = (16, 32, 64, 128, 256)  # px, edges of the face-size histogram on sqrt(box area)
FACES_PER_IMAGE_BINS = (0, 1, 2, 3, 6, 11, 51)  # lower edges: 0, 1, 2, 3-5, 6-10, 11-50, >50
AGE_BINS = (13, 20, 30, 40, 50, 60)  # years, edges of the age histogram


def load_coco(json_file: PathLike, image_root: Optional[PathLike] = None) -> dict:
    """Read a COCO face file and set its ``"image_root"`` to an absolute path.

    ``image_root`` overrides the file's own root. Raises ``ValueError`` (naming the file) when it
    is not a COCO face file.
    """
    json_file = Path(json_file)
    data = load_json(json_file)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or "annotations" not in data:
        raise ValueError(f"{json_file}: expected a COCO object with 'images' and 'annotations' lists")
    names = {c.get("id"): c.get("name") for c in data.get("categories", [])}
    if names and names.get(FACE_CATEGORY_ID) != "face":
        raise ValueError(f"{json_file}: category {FACE_CATEGORY_ID} must be 'face', got {names}")
    if image_root:  # as given: absolute, or relative to the working directory
        data["image_root"] = os.path.abspath(image_root)
    else:
        root = Path(data.get("image_root") or ".")
        data["image_root"] = os.path.abspath(root if root.is_absolute() else json_file.parent / root)
    return data


def image_path(data: dict, image: dict) -> Path:
    """Absolute path of an image of a dict loaded by :func:`load_coco`."""
    return Path(data["image_root"]) / image["file_name"]


def merge_coco(datasets: Sequence[dict], names: Optional[Sequence[str]] = None) -> dict:
    """Merge COCO face dicts (loaded by :func:`load_coco`) into one.

    Image and face ids are renumbered from 1. The merged ``image_root`` is the deepest folder
    common to all input roots and each ``file_name`` is re-written relative to it (absolute when
    an image lies outside it), so every image still resolves. Each image keeps its ``source``
    (default: the input's ``info.source``, else its name in ``names``).
    """
    names = list(names or [f"input{i}" for i in range(len(datasets))])
    paths = [[image_path(d, im) for im in d["images"]] for d in datasets]
    root = Path(os.path.commonpath([d["image_root"] for d in datasets])) if datasets else Path("/")
    images, annotations, merged_from = [], [], []
    for data, name, image_paths in zip(datasets, names, paths):
        source = data.get("info", {}).get("source") or name
        new_ids = {}
        for image, path in zip(data["images"], image_paths):
            new_ids[image["id"]] = len(images) + 1
            try:
                file_name = path.relative_to(root).as_posix()
            except ValueError:
                file_name = str(path)
            image = {**image, "id": new_ids[image["id"]], "file_name": file_name}
            images.append({**image, "source": image.get("source", source)})
        faces = 0
        for ann in data["annotations"]:
            if ann.get("category_id", FACE_CATEGORY_ID) == FACE_CATEGORY_ID and ann["image_id"] in new_ids:
                annotations.append({**ann, "id": len(annotations) + 1, "image_id": new_ids[ann["image_id"]]})
                faces += 1
        merged_from.append({"name": name, "source": source, "images": len(data["images"]), "faces": faces})
    info = {
        "description": "merged COCO face files",
        "source": "merge",
        "converter_version": CONVERTER_VERSION,
        "date_created": datetime.datetime.now().isoformat(timespec="seconds"),
        "merged_from": merged_from,
    }
    return {
        "info": info,
        "image_root": str(root),
        "images": images,
        "annotations": annotations,
        "categories": [{"id": FACE_CATEGORY_ID, "name": "face", "supercategory": "person"}],
    }


def split_coco(data: dict, val_fraction: float, seed: int = 0,
               keep_val: Optional[Sequence[str]] = None) -> Tuple[dict, dict]:
    """Seeded train / val split of a COCO face dict, grouped by image ``identity``.

    Images with the same ``identity`` land on the same side; an image without one is its own
    group. Groups are shuffled with ``random.Random(seed)`` and moved to val until it holds at
    least ``round(val_fraction * images)`` images. Ids are kept; the conversion report
    (``info.skipped`` / ``info.notes``) stays with the unsplit file. Returns ``(train, val)``.

    ``keep_val``: image paths (as :func:`image_path` resolves them) of an earlier validation part.
    Then val is those images, less every identity group that also has an image outside them (such
    a group goes wholly to train), and ``val_fraction`` / ``seed`` are not used. This keeps a
    validation set honest for models trained on the earlier train part, when identities (or
    near-duplicates) are added to a file that was split before.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    groups: Dict[str, List[int]] = defaultdict(list)
    for image in data["images"]:
        identity = image.get("identity")
        groups[f"identity:{identity}" if identity is not None else f"image:{image['id']}"].append(image["id"])
    keys = sorted(groups)
    val_ids = set()
    if keep_val is not None:
        wanted = {str(p) for p in keep_val}
        in_old_val = {im["id"]: str(image_path(data, im)) in wanted for im in data["images"]}
        for key in keys:
            if all(in_old_val[i] for i in groups[key]):
                val_ids.update(groups[key])
    else:
        random.Random(seed).shuffle(keys)
        target = round(val_fraction * len(data["images"]))
        for key in keys:
            if len(val_ids) >= target:
                break
            val_ids.update(groups[key])
    grouped = any(key.startswith("identity:") for key in keys)
    parts = []
    for name, keep in (("train", lambda i: i not in val_ids), ("val", lambda i: i in val_ids)):
        # The conversion report (skipped / notes) describes the whole file, not this part.
        info = {k: v for k, v in data.get("info", {}).items() if k not in ("skipped", "notes")}
        info["split"] = {
            "part": name,
            **({"kept_val_of_earlier_split": True} if keep_val is not None
               else {"val_fraction": val_fraction, "seed": seed}),
            "grouped_by_identity": grouped,
            "images_before_split": len(data["images"]),
        }
        part = {k: v for k, v in data.items() if k not in ("images", "annotations", "info")}
        part["info"] = info
        part["images"] = [im for im in data["images"] if keep(im["id"])]
        part["annotations"] = [a for a in data["annotations"] if keep(a["image_id"])]
        parts.append(part)
    return parts[0], parts[1]


def _histogram(values: Sequence[float], edges: Sequence[float], unit: str = "") -> Dict[str, int]:
    """Counts per bin ``<e0``, ``e0-e1``, ..., ``>=eN`` (lower edge inclusive)."""
    labels = [f"<{edges[0]}{unit}"] + [f"{a}-{b}{unit}" for a, b in zip(edges, edges[1:])] + [f">={edges[-1]}{unit}"]
    counts = Counter()
    for v in values:
        counts[labels[sum(v >= e for e in edges)]] += 1
    return {label: counts[label] for label in labels}


def compute_stats(data: dict) -> dict:
    """Statistics of a COCO face dict (JSON-serialisable).

    Keys: ``images``, ``faces``, ``crowd_faces``, ``images_without_faces``, ``faces_per_image``
    (histogram), ``face_size`` (histogram of sqrt(box w * h) in px, non-crowd faces),
    ``masks`` (faces with a mask: polygon / RLE / total and fraction), ``attributes`` (per
    attribute: count, fraction of faces, value distribution; age: min / mean / max and
    histogram), ``skipped`` and ``notes`` (from ``info``).
    """
    faces = [a for a in data["annotations"] if a.get("category_id", FACE_CATEGORY_ID) == FACE_CATEGORY_ID]
    per_image = Counter(a["image_id"] for a in faces)
    counts = [per_image.get(im["id"], 0) for im in data["images"]]
    per_image_labels = ["0", "1", "2", "3-5", "6-10", "11-50", ">50"]
    per_image_hist = Counter(per_image_labels[sum(c >= e for e in FACES_PER_IMAGE_BINS) - 1] for c in counts)
    sizes = [math.sqrt(max(a["bbox"][2], 0) * max(a["bbox"][3], 0)) for a in faces if not a.get("iscrowd")]
    segs = [a.get("segmentation") for a in faces if a.get("segmentation") not in (None, [])]
    n = len(faces)
    attributes = {}
    for name in ATTRIBUTES:
        values = [a["attributes"][name] for a in faces if (a.get("attributes") or {}).get(name) is not None]
        entry: dict = {"count": len(values), "fraction": len(values) / n if n else 0.0}
        if name == "age" and values:
            entry.update(min=min(values), mean=round(sum(values) / len(values), 2), max=max(values))
            entry["histogram"] = _histogram(values, AGE_BINS, " y")
        elif values:
            vocabulary = GENDERS if name == "gender" else EMOTIONS
            entry["values"] = {v: values.count(v) for v in vocabulary}
        attributes[name] = entry
    info = data.get("info", {})
    return {
        "images": len(data["images"]),
        "faces": n,
        "crowd_faces": sum(1 for a in faces if a.get("iscrowd")),
        "images_without_faces": counts.count(0),
        "faces_per_image": {label: per_image_hist[label] for label in per_image_labels},
        "face_size": _histogram(sizes, SIZE_BINS, " px"),
        "masks": {
            "polygon": sum(1 for s in segs if isinstance(s, list)),
            "rle": sum(1 for s in segs if isinstance(s, dict)),
            "total": len(segs),
            "fraction": len(segs) / n if n else 0.0,
        },
        "attributes": attributes,
        "skipped": dict(info.get("skipped", {})),
        "notes": dict(info.get("notes", {})),
    }


def format_stats(stats: dict, title: str = "") -> str:
    """A plain-text table of :func:`compute_stats` output."""

    def pct(k: int, total: int) -> str:
        return f"{k} ({100.0 * k / total:.1f}%)" if total else str(k)

    rows: List[Tuple[str, str]] = []
    rows += [("images", str(stats["images"])), ("  without faces", str(stats["images_without_faces"]))]
    rows += [("faces", str(stats["faces"])), ("  iscrowd", str(stats["crowd_faces"]))]
    m = stats["masks"]
    rows.append(("  with mask", f"{pct(m['total'], stats['faces'])}: {m['polygon']} polygon, {m['rle']} RLE"))
    for name, entry in stats["attributes"].items():
        detail = pct(entry["count"], stats["faces"])
        if "values" in entry:
            detail += "  " + ", ".join(f"{k} {v}" for k, v in entry["values"].items())
        if "mean" in entry:
            detail += f"  min {entry['min']:g}, mean {entry['mean']:g}, max {entry['max']:g}"
        rows.append((f"  with {name}", detail))
    rows.append(("faces per image", ", ".join(f"{k}: {v}" for k, v in stats["faces_per_image"].items())))
    rows.append(("face size (sqrt box area)", ", ".join(f"{k}: {v}" for k, v in stats["face_size"].items())))
    if "histogram" in stats["attributes"]["age"]:
        rows.append(("age", ", ".join(f"{k}: {v}" for k, v in stats["attributes"]["age"]["histogram"].items())))
    for key, label in (("skipped", "skipped records"), ("notes", "notes (records kept)")):
        rows.append((label, str(sum(stats[key].values()))))
        rows += [(f"  {reason}", str(count)) for reason, count in stats[key].items()]
    width = max(len(k) for k, _ in rows)
    lines = [title] if title else []
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


def resize_coco(data: dict, factor: float, image_dir: PathLike, progress: bool = True) -> dict:
    """A copy of a COCO face dict with every image scaled by ``factor``, written under ``image_dir``.

    For judging a detector on pictures at another size than the files hold (WIDER FACE copies
    downscaled to 640 px, read back at a photo's ~1024 px): images are resampled (area
    interpolation when shrinking, bicubic when enlarging; JPEG quality 95, other formats as they
    are), boxes scaled, masks redrawn at the new size (polygons rasterised there, RLE resampled;
    ``area`` follows), every
    other field kept. Existing output images of the right size are reused, so a cut run resumes.

    Args:
        data: a dict from :func:`load_coco`.
        factor: scale, > 0 (e.g. 1.6 turns 640 x 480 into 1024 x 768).
        image_dir: output image folder; file names keep their relative paths under it.

    Returns:
        The new dict, ``image_root`` = ``image_dir`` (absolute), ``info.resized_by`` = ``factor``.
    """
    import cv2

    from maskface.data.converters.common import image_size, mask_to_rle
    from maskface.data.transforms import segmentation_to_mask
    from maskface.utils.io import atomic_write
    from maskface.utils.progress import progress_bar

    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    out_root = Path(image_dir).resolve()
    by_image: Dict[int, List[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    images, annotations = [], []
    for image in progress_bar(data["images"], desc="resize", unit="img", disable=not progress):
        src = image_path(data, image)
        w, h = int(image["width"]), int(image["height"])
        nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
        dst = out_root / image["file_name"]
        try:  # an earlier run's output of the right size is kept (header read only)
            done = image_size(dst) == (nw, nh)
        except OSError:
            done = False
        if not done:
            pixels = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
            if pixels is None:
                raise ValueError(f"{src}: cannot read the image (image id {image['id']})")
            if pixels.shape[:2] != (h, w):
                raise ValueError(f"{src}: the file is {pixels.shape[1]}x{pixels.shape[0]} px, the record says {w}x{h}")
            interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
            big = cv2.resize(pixels, (nw, nh), interpolation=interp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            params = [cv2.IMWRITE_JPEG_QUALITY, 95] if dst.suffix.lower() in (".jpg", ".jpeg") else []
            ok, buf = cv2.imencode(dst.suffix, big, params)
            if not ok:
                raise ValueError(f"{dst}: OpenCV cannot encode {dst.suffix} images")
            with atomic_write(dst, "wb") as f:
                f.write(buf.tobytes())
        images.append({**image, "width": nw, "height": nh})
        sx, sy = nw / w, nh / h
        for ann in by_image.get(image["id"], []):
            x, y, bw, bh = ann["bbox"]
            new = {**ann, "bbox": [x * sx, y * sy, bw * sx, bh * sy], "area": float(ann.get("area", bw * bh)) * sx * sy}
            seg = ann.get("segmentation")
            if seg:
                mask = segmentation_to_mask(seg, h, w, nh, nw).astype(bool)
                new["segmentation"] = mask_to_rle(mask)
                new["area"] = float(mask.sum())
            annotations.append(new)
    info = {**data.get("info", {}), "resized_by": float(factor)}
    return {**data, "info": info, "image_root": str(out_root), "images": images, "annotations": annotations}
