"""Attribute training data: face crops from COCO face records, a compact crop cache, and
augmentation on batched tensors (CPU or GPU).

Samples
    One sample per non-crowd face with at least one known attribute (age, gender, emotion).
    Labels: ``age`` float32 years (NaN = unknown), ``gender`` int64 index into GENDERS and
    ``emotion`` int64 index into EMOTIONS (-1 = unknown), ``emotion_votes`` float32 ``(7,)`` the
    share of annotators' votes per emotion (FER+; all zero = no votes), ``gender_soft`` float32 a
    teacher's probability of "female" (NaN = none), ``source`` the index of the dataset the face
    came from (for balanced sampling). A face with only a teacher label is a sample too.

Crops
    Made by :func:`maskface.modeling.attributes.crops.extract_face_crops`, the function inference
    uses, with the model's crop parameters (size ``S``, margin, mask dilation / feathering); faces
    without a mask get its inscribed-ellipse prior mask.

Crop cache (:func:`build_crop_cache`, :func:`load_crop_cache`)
    Every face is cropped once and stored as JPEG bytes with its labels in ONE ``torch.save`` file
    (written atomically). The JPEG headers (quantisation and Huffman tables: ~0.3 KB grey, ~0.6 KB
    colour, identical for all crops of a kind) are stored once; each crop keeps only its scan.
    The stored crop is ``S + 2 * pad`` px: the model's crop window, grown around its centre so that
    the pixel scale is unchanged, leaving ``pad`` px on each side as room for shift / scale jitter. The centre ``S x S`` of a stored crop is the model's crop
    (:func:`center_crops`). Grey crops (FER2013) are stored as 1-channel JPEGs. Loading decodes
    everything into one uint8 tensor ``(N, 3, S + 2 * pad, S + 2 * pad)`` that can live on the GPU.

Augmentation (:func:`augment_crops`)
    On a batch of cached crops, on their device: random horizontal flip, scale and shift jitter of
    the crop window (one ``grid_sample``; outside the stored crop is fill grey, as outside the image
    at inference), optional in-plane rotation, contrast and saturation jitter around the fill grey
    (so the masked background stays exactly the fill value, as at inference), random greyscale and
    optional random erasing (a rectangle set to the fill grey: a simulated occlusion).
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import WeightedRandomSampler

from maskface.data.attributes import EMOTIONS, GENDERS, emotion_vote_distribution
from maskface.modeling.attributes.crops import DEFAULT_FILL, extract_face_crops
from maskface.utils.io import atomic_write
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

CACHE_FORMAT = "maskface-crop-cache"
# 3: the mask no longer reaches past the image edge (older caches show black there, not fill grey).
CACHE_VERSION = 3
# Crop parameters a cache must share with the model/config that reads it.
_CROP_KEYS = ("size", "pad", "margin", "dilate", "feather", "fill", "ellipse_union")
#: Values of crop keys added after caches were first written (older caches lack them).
_CROP_KEY_DEFAULTS = {"ellipse_union": False}
_LUMA = (0.299, 0.587, 0.114)


class CropCacheError(ValueError):
    """A crop cache is unreadable or was built with other crop parameters or datasets."""


# --- labels ------------------------------------------------------------------------------------
def encode_attributes(attributes: Optional[dict]) -> Tuple[float, int, int]:
    """``{"age": 31.0, "gender": "male", ...}`` -> ``(age or NaN, gender index or -1, emotion index or -1)``."""
    attrs = attributes or {}
    age = attrs.get("age")
    gender = attrs.get("gender")
    emotion = attrs.get("emotion")
    return (
        float(age) if age is not None else math.nan,
        GENDERS.index(gender) if gender in GENDERS else -1,
        EMOTIONS.index(emotion) if emotion in EMOTIONS else -1,
    )


def encode_emotion_votes(attributes: Optional[dict]) -> List[float]:
    """The vote share per emotion in EMOTIONS order (:func:`emotion_vote_distribution`), or seven
    zeros when the face has no votes for any of them."""
    dist = emotion_vote_distribution((attributes or {}).get("emotion_votes"))
    return [dist[name] for name in EMOTIONS] if dist else [0.0] * len(EMOTIONS)


def encode_gender_soft(attributes: Optional[dict]) -> float:
    """A teacher's probability that the face is female (``gender_soft``), or NaN when it has none."""
    soft = (attributes or {}).get("gender_soft")
    return float(soft) if soft is not None else math.nan


def attribute_faces(record: dict) -> List[dict]:
    """The annotations of a record that are attribute samples: not crowd, >= 1 known attribute
    (a teacher's ``gender_soft`` counts)."""
    out = []
    for ann in record["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        age, gender, emotion = encode_attributes(ann.get("attributes"))
        soft = encode_gender_soft(ann.get("attributes"))
        if not math.isnan(age) or gender >= 0 or emotion >= 0 or not math.isnan(soft):
            out.append(ann)
    return out


def crop_record_faces(
    record: dict,
    size: int,
    margin: float,
    dilate: int = 1,
    feather: float = 1.0,
    fill: Sequence[float] = DEFAULT_FILL,
    ellipse_union: bool = False,
) -> Tuple[torch.Tensor, List[dict]]:
    """Read a record's image and crop its attribute faces (:func:`attribute_faces`) in one call.

    Returns ``(crops, annotations)``: uint8 ``(F, 3, size, size)`` RGB crops with values in
    [0, 255] (not normalised) and the ``F`` annotations they belong to.
    """
    from maskface.data.mapper import read_image_rgb  # needs pycocotools (absent on some GPU images)
    from maskface.data.transforms import segmentation_to_mask

    anns = attribute_faces(record)
    if not anns:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8), []
    image = read_image_rgb(record["file_name"])
    h, w = image.shape[:2]
    if (h, w) != (record["height"], record["width"]):
        raise ValueError(
            f"{record['file_name']}: image is {w}x{h} but the COCO file says {record['width']}x{record['height']}"
        )
    boxes = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)], dtype=np.float32)
    masks = [None if a.get("segmentation") is None else segmentation_to_mask(a["segmentation"], h, w) for a in anns]
    crops = extract_face_crops(image, boxes, masks, size=size, margin=margin, fill=fill, dilate=dilate,
                               feather=feather, normalize=False, ellipse_union=ellipse_union)
    return crops.round_().clamp_(0, 255).to(torch.uint8), anns


# --- crop cache --------------------------------------------------------------------------------
@dataclass
class CropCache:
    """Decoded crop cache: every tensor has ``N`` rows (one per face).

    Attributes:
        images: uint8 ``(N, 3, S + 2 * pad, S + 2 * pad)`` RGB crops, values 0..255.
        age: float32 years, NaN = unknown.
        gender: int64 index into GENDERS, -1 = unknown.
        emotion: int64 index into EMOTIONS, -1 = unknown.
        source: int64 index into ``sources``.
        sources: dataset names, in DATASETS order.
        meta: crop parameters (``size``, ``pad``, ``margin``, ``dilate``, ``feather``, ``fill``) and
            ``quality`` (JPEG).
        emotion_votes: float32 ``(N, 7)`` vote shares per emotion, rows of zeros = no votes
            (``None``: no face has votes, e.g. a cache written before votes were stored).
        gender_soft: float32 ``(N,)`` a teacher's probability of "female", NaN = none (``None``:
            no face has one).
    """

    images: torch.Tensor
    age: torch.Tensor
    gender: torch.Tensor
    emotion: torch.Tensor
    source: torch.Tensor
    sources: List[str]
    meta: Dict[str, object] = field(default_factory=dict)
    emotion_votes: Optional[torch.Tensor] = None
    gender_soft: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> "CropCache":
        """A copy with every tensor on ``device`` (e.g. the whole training set on the GPU)."""
        images, age, gender, emotion, source = (
            t.to(device) for t in (self.images, self.age, self.gender, self.emotion, self.source)
        )
        votes, soft = (None if t is None else t.to(device) for t in (self.emotion_votes, self.gender_soft))
        return CropCache(images, age, gender, emotion, source, list(self.sources), dict(self.meta), votes, soft)

    def targets(self, index: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Labels of the faces ``index`` as the net's ``losses`` expects them."""
        out = {"age": self.age[index], "gender": self.gender[index], "emotion": self.emotion[index]}
        if self.emotion_votes is not None:
            out["emotion_votes"] = self.emotion_votes[index]
        if self.gender_soft is not None:
            out["gender_soft"] = self.gender_soft[index]
        return out


def cache_meta(size: int, margin: float, pad: int = 0, dilate: int = 1, feather: float = 1.0,
               fill: Sequence[float] = DEFAULT_FILL, ellipse_union: bool = False) -> Dict[str, object]:
    """The crop parameters a cache records and is checked against (see :func:`check_crop_cache`)."""
    return {"size": int(size), "pad": int(pad), "margin": float(margin), "dilate": int(dilate),
            "feather": float(feather), "fill": [float(v) for v in fill], "ellipse_union": bool(ellipse_union)}


def _stored_geometry(size: int, margin: float, pad: int) -> Tuple[int, float]:
    """Stored crop side and the margin that gives the model's window ``pad`` px extra per side."""
    stored = size + 2 * pad
    return stored, ((1.0 + 2.0 * margin) * stored / size - 1.0) / 2.0


def _split_jpeg(buf: bytes) -> Tuple[bytes, bytes]:
    """JPEG bytes -> (header: SOI + segments before the first start-of-scan, the rest)."""
    pos = 2  # after SOI
    while pos + 4 <= len(buf):
        if buf[pos] != 0xFF:
            break
        if buf[pos + 1] == 0xDA:  # SOS: the scan (its own header + entropy-coded data) starts here
            return buf[:pos], buf[pos:]
        pos += 2 + int.from_bytes(buf[pos + 2 : pos + 4], "big")
    raise ValueError("malformed JPEG: no start-of-scan marker")


def _encode_record(record: dict, meta: dict,
                   quality: int) -> List[Tuple[bytes, Tuple[float, int, int], int, List[float], float]]:
    stored, stored_margin = _stored_geometry(meta["size"], meta["margin"], meta["pad"])
    crops, anns = crop_record_faces(record, stored, stored_margin, meta["dilate"], meta["feather"], meta["fill"],
                                    meta.get("ellipse_union", False))
    out = []
    for crop, ann in zip(crops, anns):
        hwc = np.ascontiguousarray(crop.permute(1, 2, 0).numpy())
        grey = bool((hwc[..., 0] == hwc[..., 1]).all() and (hwc[..., 1] == hwc[..., 2]).all())
        arr = np.ascontiguousarray(hwc[..., 0]) if grey else cv2.cvtColor(hwc, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"{record['file_name']}: JPEG encoding of face {ann.get('id')} failed")
        attrs = ann.get("attributes")
        out.append((buf.tobytes(), encode_attributes(attrs), ann.get("id", -1), encode_emotion_votes(attrs),
                    encode_gender_soft(attrs)))
    return out


def build_crop_cache(
    records: Sequence[dict],
    size: int,
    margin: float,
    out_path: str | os.PathLike,
    pad: int = 0,
    quality: int = 90,
    dilate: int = 1,
    feather: float = 1.0,
    fill: Sequence[float] = DEFAULT_FILL,
    sources: Optional[Sequence[str]] = None,
    num_workers: int = 2,
    ellipse_union: bool = False,
) -> Dict[str, object]:
    """Crop every attribute face of ``records`` once and store the JPEG crops + labels in one file.

    Args:
        records: per-image records of :func:`maskface.data.coco_faces.load_coco_faces`; each
            record's ``"source"`` names its dataset.
        size, margin, dilate, feather, fill, ellipse_union: the model's crop parameters
            (``extract_face_crops``).
        out_path: the cache file (``torch.save`` format), written atomically.
        pad: px stored around the model's ``size x size`` window on each side (jitter room).
        quality: JPEG quality (1..100).
        sources: dataset names in the order their indices should have (default: order of first
            appearance); every record's source must be among them.
        num_workers: threads reading and cropping images.

    Returns:
        ``{"path", "faces", "bytes", "sources", "faces_per_source"}``.
    """
    meta = cache_meta(size, margin, pad, dilate, feather, fill, ellipse_union)
    meta["quality"] = int(quality)
    names = list(sources) if sources is not None else list(dict.fromkeys(r["source"] for r in records))
    unknown = sorted({r["source"] for r in records} - set(names))
    if unknown:
        raise ValueError(f"records come from sources {unknown} not in sources={list(dict.fromkeys(names))}")
    headers: Dict[bytes, int] = {}  # JPEG header (everything before the scan) -> index
    jpeg: List[bytes] = []
    header_index, labels, source, image_ids, ann_ids, votes, soft = [], [], [], [], [], [], []
    with ThreadPoolExecutor(max(1, int(num_workers))) as pool:
        results = pool.map(lambda r: _encode_record(r, meta, quality), records)
        for rec, faces in progress_bar(zip(records, results), total=len(records), desc="crop cache", unit="img"):
            for buf, lab, ann_id, vote, gender_soft in faces:
                header, scan = _split_jpeg(buf)
                jpeg.append(scan)
                header_index.append(headers.setdefault(header, len(headers)))
                labels.append(lab)
                source.append(names.index(rec["source"]))
                image_ids.append(int(rec["image_id"]))
                ann_ids.append(int(ann_id))
                votes.append(vote)
                soft.append(gender_soft)
    if not jpeg:
        raise ValueError("no face with a known attribute in the given records: nothing to cache")
    offsets = np.zeros(len(jpeg) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in jpeg])
    data = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "meta": meta,
        "sources": names,
        "jpeg": torch.from_numpy(np.frombuffer(b"".join(jpeg), dtype=np.uint8).copy()),
        "offsets": torch.from_numpy(offsets),
        "headers": [torch.from_numpy(np.frombuffer(h, dtype=np.uint8).copy()) for h in headers],
        "header_index": torch.tensor(header_index, dtype=torch.int64),
        "age": torch.tensor([lab[0] for lab in labels], dtype=torch.float32),
        "gender": torch.tensor([lab[1] for lab in labels], dtype=torch.int64),
        "emotion": torch.tensor([lab[2] for lab in labels], dtype=torch.int64),
        "source": torch.tensor(source, dtype=torch.int64),
        "image_id": torch.tensor(image_ids, dtype=torch.int64),
        "ann_id": torch.tensor(ann_ids, dtype=torch.int64),
    }
    if any(any(v) for v in votes):  # stored only when some face has votes
        data["emotion_votes"] = torch.tensor(votes, dtype=torch.float32)
    if not all(math.isnan(s) for s in soft):  # stored only when some face has a teacher label
        data["gender_soft"] = torch.tensor(soft, dtype=torch.float32)
    with atomic_write(out_path, "wb") as f:
        torch.save(data, f)
    nbytes = os.path.getsize(out_path)
    per_source = {n: int((data["source"] == i).sum()) for i, n in enumerate(names)}
    logger.info("Crop cache %s: %d faces %s, %.1f MB (%.2f KB/face)", out_path, len(jpeg), per_source,
                nbytes / 1e6, nbytes / 1e3 / len(jpeg))
    return {"path": str(out_path), "faces": len(jpeg), "bytes": nbytes, "sources": names,
            "faces_per_source": per_source}


def load_crop_cache(path: str | os.PathLike) -> CropCache:
    """Read a cache file and decode all its crops into one uint8 tensor (see :class:`CropCache`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"crop cache not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign files
        raise CropCacheError(f"{path}: cannot read crop cache ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise CropCacheError(f"{path}: not a MaskFace crop cache")
    if data.get("version") != CACHE_VERSION:
        raise CropCacheError(f"{path}: crop cache version {data.get('version')}, expected {CACHE_VERSION}; rebuild it")
    meta = data["meta"]
    side = meta["size"] + 2 * meta["pad"]
    n = int(data["offsets"].numel() - 1)
    raw = data["jpeg"].numpy()
    offsets = data["offsets"].tolist()
    headers = [h.numpy() for h in data["headers"]]
    header_index = data["header_index"].tolist()
    images = np.empty((n, side, side, 3), dtype=np.uint8)
    for i in range(n):
        buf = np.concatenate([headers[header_index[i]], raw[offsets[i] : offsets[i + 1]]])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None or img.shape != (side, side, 3):
            raise CropCacheError(f"{path}: crop {i} is corrupt")
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=images[i])
    logger.info("Loaded crop cache %s: %d faces of %dx%d px from %s", path, n, side, side, data["sources"])
    return CropCache(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        age=data["age"],
        gender=data["gender"],
        emotion=data["emotion"],
        source=data["source"],
        sources=list(data["sources"]),
        meta=dict(meta),
        emotion_votes=data.get("emotion_votes"),
        gender_soft=data.get("gender_soft"),
    )


def check_crop_cache(cache: CropCache, expected_meta: Dict[str, object], sources: Sequence[str] = (),
                     where: str = "crop cache") -> None:
    """Raise :class:`CropCacheError` when ``cache`` was built with other crop parameters, or (when
    ``sources`` is given) from other datasets, than the ones expected."""
    diffs = []
    for k in _CROP_KEYS:
        a, b = cache.meta.get(k, _CROP_KEY_DEFAULTS.get(k)), expected_meta.get(k, _CROP_KEY_DEFAULTS.get(k))
        same = np.allclose(a, b) if a is not None else False
        if not same:
            diffs.append(f"{k}: cache {a!r} vs config {b!r}")
    if sources and list(sources) != list(cache.sources):
        diffs.append(f"datasets: cache {cache.sources} vs config {list(sources)}")
    if diffs:
        raise CropCacheError(f"{where} was built with other settings ({'; '.join(diffs)}); "
                             "delete it to rebuild, or point to another cache")


def dataset_name(name_or_path: str) -> str:
    """Short name of a DATASETS entry: the registered name, or the JSON file's stem."""
    return Path(name_or_path).stem if name_or_path.endswith(".json") else name_or_path


def load_or_build_crop_cache(
    path: str | os.PathLike,
    datasets: Sequence[str],
    meta: Dict[str, object],
    image_root: str = "",
    quality: int = 90,
    num_workers: int = 2,
) -> CropCache:
    """Load the cache at ``path``, or build it first from ``datasets`` when it does not exist.

    A cache that exists is used without reading the datasets (it is self-sufficient: a GPU machine
    needs only the cache file), after checking its crop parameters against ``meta`` and its
    dataset names against ``datasets`` (by :func:`dataset_name`, so paths may differ).
    """
    from maskface.data.coco_faces import get_dataset

    names = [dataset_name(d) for d in datasets]
    if not Path(path).is_file():
        if not datasets:
            raise FileNotFoundError(f"crop cache {path} does not exist and no datasets are configured to build it")
        records = []
        for entry, name in zip(datasets, names):
            records += [dict(r, source=name) for r in get_dataset(entry, image_root or None)]
        logger.info("Building crop cache %s from %s", path, names)
        build_crop_cache(records, meta["size"], meta["margin"], path, pad=meta["pad"], quality=quality,
                         dilate=meta["dilate"], feather=meta["feather"], fill=meta["fill"], sources=names,
                         num_workers=num_workers, ellipse_union=meta.get("ellipse_union", False))
    cache = load_crop_cache(path)
    check_crop_cache(cache, meta, names, where=str(path))
    return cache


# --- sampling ----------------------------------------------------------------------------------
def source_balanced_weights(source: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """float64 ``(N,)`` draw weight of each face (on ``source``'s device) such that source ``d``
    makes up ``weights[d] / sum(weights)`` of the draws, uniform over faces within a source.

    ``weights`` empty: every face equally likely (sources in proportion to their size).
    """
    counts = torch.bincount(source, minlength=len(weights) or 1).double()
    if not weights:
        return torch.ones(source.numel(), dtype=torch.double, device=source.device)
    if len(weights) != counts.numel():
        raise ValueError(f"DATASETS.TRAIN_WEIGHTS has {len(weights)} entries for {counts.numel()} datasets")
    if any(x < 0 for x in weights) or sum(weights) <= 0:
        raise ValueError(f"DATASETS.TRAIN_WEIGHTS must be >= 0 with a positive sum, got {list(weights)}")
    per_face = torch.tensor(weights, dtype=torch.double, device=source.device) / counts.clamp(min=1)
    return per_face[source]


def balanced_sampler(source: torch.Tensor, weights: Sequence[float], num_samples: int,
                     generator: Optional[torch.Generator] = None) -> WeightedRandomSampler:
    """Sampler drawing ``num_samples`` faces with replacement, source-balanced as
    :func:`source_balanced_weights` says."""
    return WeightedRandomSampler(source_balanced_weights(source.cpu(), weights), num_samples, replacement=True,
                                 generator=generator)


# --- augmentation on tensors -------------------------------------------------------------------
def center_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """The model's ``size x size`` window of stored crops ``(B, 3, S + 2p, S + 2p)``: a view, same dtype."""
    pad = (images.shape[-1] - size) // 2
    if pad < 0 or images.shape[-1] - size != 2 * pad:
        raise ValueError(f"cannot take a centred {size} px window from {images.shape[-1]} px crops")
    return images[:, :, pad : pad + size, pad : pad + size]


def _grey(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def augment_crops(
    images: torch.Tensor,
    size: int,
    generator: torch.Generator,
    hflip_prob: float = 0.5,
    jitter_scale: float = 0.08,
    jitter_shift: float = 0.04,
    color_jitter: float = 0.3,
    grayscale_prob: float = 0.2,
    fill: Sequence[float] = DEFAULT_FILL,
    rotate: float = 0.0,
    erase_prob: float = 0.0,
) -> torch.Tensor:
    """Random augmentation of a batch of stored crops, all on ``images.device``.

    Args:
        images: uint8 ``(B, 3, S + 2p, S + 2p)`` stored crops.
        size: ``S``, the model's crop size.
        generator: on ``images.device``; the only source of randomness (reproducible batches).
        hflip_prob: probability of a horizontal flip.
        jitter_scale: window side scaled by a uniform factor in ``[1 - s, 1 + s]``.
        jitter_shift: window centre shifted by up to ``jitter_shift * S`` px in x and y.
        color_jitter: contrast (around the fill grey) and saturation factors in ``[1 - c, 1 + c]``.
        grayscale_prob: probability of turning a crop grey.
        fill: background value outside the stored crop.
        rotate: in-plane rotation by a uniform angle in ``[-rotate, rotate]`` degrees.
        erase_prob: probability of setting one random rectangle of the crop to ``fill``
            (2-25 % of its area, aspect ratio 0.3-3.3; random erasing, Zhong et al. 2020).

    The random numbers for ``rotate`` and ``erase_prob`` are drawn only when they are non-zero, so
    a generator gives the same batches as before those options existed.

    Returns:
        float32 ``(B, 3, S, S)`` pixel values in [0, 255] (normalise with ``normalize_crops``).
    """
    b, _, side, _ = images.shape
    dev = images.device

    def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1)
        return torch.rand(shape, generator=generator, device=dev) * 2.0 - 1.0

    scale = 1.0 + uniform(b) * jitter_scale
    shift = uniform(b, 2) * jitter_shift * size  # px
    flip = torch.where(torch.rand(b, generator=generator, device=dev) < hflip_prob, -1.0, 1.0)
    a = scale * size / side
    theta = torch.zeros(b, 2, 3, device=dev)
    angle = uniform(b) * math.radians(rotate) if rotate > 0 else torch.zeros(b, device=dev)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # a * R(angle) @ diag(flip, 1): output (x, y) -> input, in normalised coordinates
    theta[:, 0, 0], theta[:, 0, 1] = a * cos * flip, -a * sin
    theta[:, 1, 0], theta[:, 1, 1] = a * sin * flip, a * cos
    theta[:, :, 2] = shift * 2.0 / side
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    fill_t = torch.tensor(list(fill), dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    x = F.grid_sample(images.float() - fill_t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if color_jitter > 0:
        contrast = 1.0 + uniform(b).view(-1, 1, 1, 1) * color_jitter
        x = x * contrast  # x is relative to the fill grey here: background stays at 0
        x = x + fill_t
        grey = _grey(x)
        saturation = 1.0 + uniform(b).view(-1, 1, 1, 1) * color_jitter
        x = grey + (x - grey) * saturation
    else:
        x = x + fill_t
    if grayscale_prob > 0:
        to_grey = (torch.rand(b, generator=generator, device=dev) < grayscale_prob).view(-1, 1, 1, 1)
        x = torch.where(to_grey, _grey(x).expand_as(x), x)
    if erase_prob > 0:
        x = torch.where(_erase_masks(b, size, erase_prob, generator, dev), fill_t, x)
    return x.clamp_(0.0, 255.0)


def _erase_masks(b: int, size: int, prob: float, generator: torch.Generator, dev: torch.device) -> torch.Tensor:
    """``(B, 1, S, S)`` bool: one random rectangle per crop (2-25 % of the area, aspect 0.3-3.3),
    all False for the crops not drawn (probability ``1 - prob``)."""
    area = (0.02 + 0.23 * torch.rand(b, generator=generator, device=dev)) * size * size
    ratio = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * torch.rand(b, generator=generator, device=dev))
    h = (area * ratio).sqrt().clamp(max=size)
    w = (area / ratio).sqrt().clamp(max=size)
    top = torch.rand(b, generator=generator, device=dev) * (size - h)
    left = torch.rand(b, generator=generator, device=dev) * (size - w)
    on = torch.rand(b, generator=generator, device=dev) < prob
    rows = torch.arange(size, device=dev, dtype=torch.float32).view(1, -1, 1)
    cols = torch.arange(size, device=dev, dtype=torch.float32).view(1, 1, -1)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1)))
    return (inside & on.view(-1, 1, 1)).unsqueeze(1)
