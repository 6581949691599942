"""Record -> (image tensor, target dict): read, augment, decode masks.

``DatasetMapper(...)(record, rng)`` returns

* ``image``: 3 x H x W float32 RGB in 0..1 (after resize / flip / colour jitter in training);
* ``target``:

  ====================  ====================================================================
  ``boxes``             (N, 4) float32 xyxy px of the returned image
  ``labels``            (N,) int64, all 1 (face)
  ``masks``             (N, H, W) uint8; all zeros for box-only faces
  ``has_mask``          (N,) bool: False for box-only faces (no mask loss)
  ``crowd_boxes``       (K, 4) float32: ``iscrowd`` regions, not targets (ignored regions)
  ``image_id``          int64 scalar tensor
  ``orig_size``         int64 (2,) tensor: (height, width) of the file on disk
  ``attributes``        dict of (N,) tensors: ``age`` float32 years, ``age_known`` bool,
                        ``gender`` int64 (0 female, 1 male), ``gender_known`` bool,
                        ``emotion`` int64 index into ``EMOTIONS``, ``emotion_known`` bool
  ====================  ====================================================================

Training-time augmentation (``is_train=True``), in this order: an optional random square crop or
face close-up (:mod:`maskface.data.face_augment`; faces cut by the crop become ignore regions),
scale jitter (shorter side drawn from ``min_sizes``, longer side capped at ``max_size``), optional
copy-paste of masked faces at many scales, horizontal flip, colour jitter; boxes smaller than 1 px
after the transforms are dropped with their masks and attributes. Pasted faces have masks and no
attributes. At test time the image keeps its size: the model resizes it and maps its outputs
back to these pixels.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from maskface.data import face_augment as A
from maskface.data import transforms as T
from maskface.data.attributes import EMOTIONS, GENDERS

logger = logging.getLogger(__name__)


def read_image_rgb(path: str) -> np.ndarray:
    """H x W x 3 uint8 RGB (grey and 4-channel files converted; EXIF orientation applied)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image file {path!r} (missing, unreadable or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def attributes_to_tensors(anns: Sequence[dict]) -> Dict[str, torch.Tensor]:
    """Per-face attribute tensors with "known" flags (unknown values are 0 and flagged False)."""
    n = len(anns)
    age, gender, emotion = np.zeros(n, np.float32), np.zeros(n, np.int64), np.zeros(n, np.int64)
    age_k, gender_k, emotion_k = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    for i, a in enumerate(anns):
        attrs = a.get("attributes") or {}
        if attrs.get("age") is not None:
            age[i], age_k[i] = float(attrs["age"]), True
        if attrs.get("gender") in GENDERS:
            gender[i], gender_k[i] = GENDERS.index(attrs["gender"]), True
        if attrs.get("emotion") in EMOTIONS:
            emotion[i], emotion_k[i] = EMOTIONS.index(attrs["emotion"]), True
    return {
        "age": torch.from_numpy(age),
        "age_known": torch.from_numpy(age_k),
        "gender": torch.from_numpy(gender),
        "gender_known": torch.from_numpy(gender_k),
        "emotion": torch.from_numpy(emotion),
        "emotion_known": torch.from_numpy(emotion_k),
    }


class DatasetMapper:
    """Turns one record of :func:`maskface.data.coco_faces.load_coco_faces` into model inputs.

    Args:
        is_train: apply augmentation (else return the image at its own size).
        min_sizes: shorter-side sizes for scale jitter (one drawn per image); training only.
        max_size: longer-side cap for scale jitter.
        hflip_prob: probability of a horizontal flip.
        color_jitter: brightness/contrast/saturation strength (0 = off).
        with_masks: decode masks (False gives ``masks`` of shape (N, 0, 0) -- for box-only uses).
        crop_prob: probability of a random square crop holding at least one face centre (its
            side a fraction ``crop_scales`` of the shorter image side); 0 = off.
        closeup_prob: share of those crops that are close-ups: a square 1.0-1.4 x one face's size.
        paste_pool: masked faces for copy-paste (:class:`~maskface.data.face_augment.FacePastePool`),
            pasted with probability ``paste_prob``: ``paste_count`` faces (inclusive range) whose
            larger side is drawn log-uniformly from ``paste_sizes`` px.
    """

    def __init__(
        self,
        is_train: bool = True,
        *,
        min_sizes: Sequence[int] = (800,),
        max_size: int = 1333,
        hflip_prob: float = 0.5,
        color_jitter: float = 0.0,
        with_masks: bool = True,
        crop_prob: float = 0.0,
        crop_scales: Sequence[float] = (0.3, 1.0),
        closeup_prob: float = 0.0,
        paste_pool: Optional[A.FacePastePool] = None,
        paste_prob: float = 0.0,
        paste_count: Sequence[int] = (1, 12),
        paste_sizes: Sequence[float] = (8.0, 160.0),
    ):
        for name, p in (("crop_prob", crop_prob), ("closeup_prob", closeup_prob), ("paste_prob", paste_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if len(crop_scales) != 2 or not 0 < crop_scales[0] <= crop_scales[1] <= 1:
            raise ValueError(f"crop_scales must be [lo, hi] with 0 < lo <= hi <= 1, got {list(crop_scales)}")
        if paste_prob > 0 and not paste_pool:
            raise ValueError("paste_prob > 0 needs a non-empty paste_pool (DATASETS.PASTE: datasets with face masks)")
        self.is_train = is_train
        self.min_sizes = [int(s) for s in min_sizes]
        self.max_size = int(max_size)
        self.hflip_prob = float(hflip_prob)
        self.color_jitter = float(color_jitter)
        self.with_masks = with_masks
        self.crop_prob, self.crop_scales, self.closeup_prob = float(crop_prob), tuple(crop_scales), float(closeup_prob)
        self.paste_pool, self.paste_prob = paste_pool, float(paste_prob)
        self.paste_count, self.paste_sizes = tuple(int(c) for c in paste_count), tuple(float(s) for s in paste_sizes)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, paste_records: Optional[Sequence[dict]] = None) -> "DatasetMapper":
        """``paste_records``: records of ``DATASETS.PASTE`` (loaded by the caller), the
        copy-paste source faces."""
        i = cfg.INPUT
        pool = A.FacePastePool(paste_records) if (is_train and paste_records) else None
        return cls(
            is_train,
            min_sizes=i.MIN_SIZE_TRAIN,
            max_size=i.MAX_SIZE_TRAIN,
            hflip_prob=i.HFLIP_PROB,
            color_jitter=i.COLOR_JITTER,
            crop_prob=i.CROP_PROB,
            crop_scales=i.CROP_SCALES,
            closeup_prob=i.CLOSEUP_PROB,
            paste_pool=pool,
            paste_prob=i.PASTE_PROB if pool else 0.0,
            paste_count=i.PASTE_COUNT,
            paste_sizes=i.PASTE_SIZES,
        )

    def __call__(self, record: dict, rng: Optional[np.random.Generator] = None) -> Tuple[torch.Tensor, dict]:
        if rng is None:  # follow the global NumPy seed (seed_all) when no per-sample seed is given
            rng = np.random.default_rng(int(np.random.randint(2**31)))
        image = read_image_rgb(record["file_name"])
        h0, w0 = image.shape[:2]
        rh, rw = int(record.get("height", h0)), int(record.get("width", w0))
        if (h0, w0) != (rh, rw):
            raise ValueError(
                f"{record['file_name']}: image is {w0}x{h0} px but its annotation record says {rw}x{rh} "
                "(wrong file, or EXIF-rotated after annotation?)"
            )
        anns = record.get("annotations", [])
        faces = [a for a in anns if not a.get("iscrowd", 0)]
        crowds = [a for a in anns if a.get("iscrowd", 0)]
        boxes = T.xywh_to_xyxy([a["bbox"] for a in faces])
        crowd_boxes = T.xywh_to_xyxy([a["bbox"] for a in crowds])

        window = None
        if self.is_train and self.crop_prob > 0 and rng.random() < self.crop_prob:
            window = A.choose_square_crop(
                boxes, h0, w0, rng, scales=self.crop_scales, closeup_prob=self.closeup_prob
            )
        if window is not None:
            kept, boxes, crowd_boxes = A.crop_targets(boxes, crowd_boxes, window)
            faces = [a for a, k in zip(faces, kept) if k]
            x0, y0, side = window
            image = image[y0 : y0 + side, x0 : x0 + side]
        ch, cw = image.shape[:2]  # size before the scale jitter (the crop's, or the image's)
        h, w = ch, cw
        if self.is_train:
            h, w = T.choose_train_size(ch, cw, self.min_sizes, self.max_size, rng)
            image = T.resize_image(image, h, w)
            boxes = T.scale_boxes(boxes, w / cw, h / ch)
            crowd_boxes = T.scale_boxes(crowd_boxes, w / cw, h / ch)
        has_mask = np.array([a.get("segmentation") is not None for a in faces], dtype=bool)
        if self.with_masks:
            masks = np.zeros((len(faces), h, w), np.uint8)
            for i, a in enumerate(faces):
                if not has_mask[i]:
                    continue
                if window is None:
                    masks[i] = T.segmentation_to_mask(a["segmentation"], h0, w0, h, w)
                else:  # decode at full size, cut the window, then resize
                    full = T.segmentation_to_mask(a["segmentation"], h0, w0)[y0 : y0 + side, x0 : x0 + side]
                    masks[i] = cv2.resize(full, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            masks = np.zeros((len(faces), 0, 0), np.uint8)
        if self.is_train and self.paste_prob > 0 and rng.random() < self.paste_prob:
            occupied = np.concatenate([boxes.reshape(-1, 4), crowd_boxes.reshape(-1, 4)])
            image, p_boxes, p_masks = A.paste_faces(
                image, occupied, self.paste_pool, rng, count=self.paste_count, sizes=self.paste_sizes
            )
            boxes = np.concatenate([boxes.reshape(-1, 4), p_boxes]).astype(np.float32)
            has_mask = np.concatenate([has_mask, np.ones(len(p_boxes), bool)])
            faces = faces + [{} for _ in range(len(p_boxes))]  # pasted faces: no attributes
            if self.with_masks:
                masks = np.concatenate([masks, p_masks])
            else:
                masks = np.zeros((len(faces), 0, 0), np.uint8)
        if self.is_train:
            if rng.random() < self.hflip_prob:
                image = T.hflip_image(image)
                boxes = T.hflip_boxes(boxes, w)
                crowd_boxes = T.hflip_boxes(crowd_boxes, w)
                if self.with_masks:
                    masks = T.hflip_masks(masks)
            image = T.color_jitter(image, self.color_jitter, rng)

        boxes = T.clip_boxes(boxes, h, w)
        keep = T.nondegenerate(boxes)
        faces = [a for a, k in zip(faces, keep) if k]
        target = {
            "boxes": torch.from_numpy(boxes[keep]),
            "labels": torch.ones(int(keep.sum()), dtype=torch.int64),
            "masks": torch.from_numpy(masks[keep]),
            "has_mask": torch.from_numpy(has_mask[keep]),
            "crowd_boxes": torch.from_numpy(T.clip_boxes(crowd_boxes, h, w)),
            "image_id": torch.tensor(int(record.get("image_id", -1)), dtype=torch.int64),
            "orig_size": torch.tensor([h0, w0], dtype=torch.int64),
            "attributes": attributes_to_tensors(faces),
        }
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
        return tensor, target
