"""MaskFace COCO face files as Detectron2 datasets.

:func:`register_face_datasets` puts MaskFace's files (``datasets/README.md``; loaded and validated
by :func:`maskface.data.coco_faces.load_coco_faces`) into Detectron2's ``DatasetCatalog`` and
``MetadataCatalog``. Each image becomes a Detectron2 dataset dict; each face an instance dict::

    {"bbox": [x, y, w, h] (px), "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0 ("face"),
     "iscrowd": 0 | 1, "segmentation": polygons | compressed RLE   (absent for box-only faces),
     "attributes": {"age": years, "gender": "female" | "male", "emotion": name}  (known ones only),
     "groups": {...} (when the file has them), "id": the COCO annotation id}

Box-only faces (WIDER FACE) have no ``segmentation`` key. Detectron2's own ``DatasetMapper`` needs
every instance of an image to have one; :class:`FaceDatasetMapper` (used by
``tools/train_detectron2.py``) gives a box-only face a placeholder mask and ``gt_has_mask = False``,
which ``FaceROIHeads`` keeps out of the mask loss. Crowd regions (``iscrowd: 1``) are dropped by
the mapper, as Detectron2 does for COCO.

Metadata: ``thing_classes = ["face"]``, ``thing_dataset_id_to_contiguous_id = {1: 0}``,
``evaluator_type = "coco"``, ``maskface_json`` / ``image_root`` (the source file and folder),
``has_box_only_faces`` (set when the dataset is first loaded; COCO mask AP needs every face masked).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Union

import numpy as np
import torch

from maskface.integrations.detectron2 import require_detectron2

require_detectron2()

from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog  # noqa: E402
from detectron2.data import detection_utils as utils  # noqa: E402
from detectron2.structures import BoxMode  # noqa: E402

from maskface.data.coco_faces import load_coco_faces  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["register_face_datasets", "face_dataset_dicts", "FaceDatasetMapper", "FACE_CLASSES"]

FACE_CLASSES = ["face"]


def _rle_compressed(seg: dict) -> dict:
    """COCO RLE with ``counts`` as a compressed string (Detectron2 decodes only that form)."""
    from pycocotools import mask as mask_util

    if isinstance(seg.get("counts"), list):  # uncompressed RLE
        h, w = seg["size"]
        seg = mask_util.frPyObjects(seg, h, w)
    counts = seg["counts"]
    return {"size": list(seg["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def face_dataset_dicts(json_file: Union[str, os.PathLike], image_root: Optional[str] = None, name: Optional[str] = None,
                       strict: bool = True) -> List[dict]:
    """Detectron2 dataset dicts of one MaskFace COCO face file (format in the module docstring).

    Args:
        json_file: the COCO face JSON.
        image_root: folder of relative ``file_name`` values (default: the file's ``image_root`` key,
            else the JSON's folder).
        name: dataset name, stored as each image's ``source``.
        strict: raise on the first malformed record (else log it and skip it).
    """
    records = load_coco_faces(json_file, image_root=image_root, strict=strict, dataset_name=name)
    out = []
    for rec in records:
        d = {k: v for k, v in rec.items() if k != "annotations"}
        anns = []
        for face in rec["annotations"]:
            inst = {"id": face["id"], "bbox": list(face["bbox"]), "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
                    "iscrowd": face["iscrowd"], "area": face["area"], "attributes": dict(face["attributes"])}
            seg = face["segmentation"]
            if seg is not None:
                inst["segmentation"] = _rle_compressed(seg) if isinstance(seg, dict) else seg
            if "groups" in face:
                inst["groups"] = dict(face["groups"])
            anns.append(inst)
        d["annotations"] = anns
        out.append(d)
    return out


def register_face_datasets(datasets: Union[Mapping[str, str], Iterable[str]], image_root: Optional[str] = None,
                           strict: bool = True, replace: bool = False) -> List[str]:
    """Register MaskFace COCO face files in Detectron2's ``DatasetCatalog`` / ``MetadataCatalog``.

    Args:
        datasets: ``{name: json_path}``, or JSON paths (each registered under the path as given,
            so a config can name the file itself: ``DATASETS.TRAIN: ("data/celebamask_hq_train.json",)``).
        image_root: folder of relative image paths for every file (default: each file's own rule).
        strict: a malformed record raises (default) instead of being skipped with a warning.
        replace: re-register names that exist (else a name registered earlier raises).

    Returns:
        The registered names. Files are read when Detectron2 first asks for the dataset.

    Raises:
        FileNotFoundError: a JSON file does not exist (checked now, not at training time).
        KeyError: a name is registered already and ``replace`` is False.
    """
    items = list(datasets.items()) if isinstance(datasets, Mapping) else [(str(p), str(p)) for p in datasets]
    names = []
    for name, json_file in items:
        json_file = str(json_file)
        if not os.path.isfile(json_file):
            raise FileNotFoundError(f"dataset {name!r}: COCO face file not found: {json_file}")
        if name in DatasetCatalog.list():
            if not replace:
                raise KeyError(f"Detectron2 dataset {name!r} is already registered (pass replace=True to re-register)")
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)

        def load(json_file=json_file, name=name):
            dicts = face_dataset_dicts(json_file, image_root=image_root, name=name, strict=strict)
            box_only = any("segmentation" not in a for d in dicts for a in d["annotations"] if not a["iscrowd"])
            MetadataCatalog.get(name).set(has_box_only_faces=box_only)
            return dicts

        DatasetCatalog.register(name, load)
        MetadataCatalog.get(name).set(thing_classes=list(FACE_CLASSES), thing_dataset_id_to_contiguous_id={1: 0},
                                      evaluator_type="coco", maskface_json=os.path.abspath(json_file),
                                      image_root=str(Path(image_root).resolve()) if image_root else "")
        names.append(name)
        logger.info("Registered Detectron2 dataset %r from %s", name, json_file)
    return names


def _box_polygon(bbox: List[float]) -> List[List[float]]:
    x, y, w, h = bbox
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


class FaceDatasetMapper(DatasetMapper):
    """Detectron2's ``DatasetMapper`` for face datasets with box-only faces.

    A face without ``segmentation`` gets its box as a placeholder polygon and ``gt_has_mask =
    False`` in the image's ``Instances`` (bool ``(N,)``; True for masked faces), so the mask loss
    of ``FaceROIHeads`` skips it while RPN and box head train on it. ``gt_masks`` are
    ``PolygonMasks`` when every mask of the image is a polygon, else ``BitMasks`` (RLE masks; whatever
    ``INPUT.MASK_FORMAT`` says). Build it like ``DatasetMapper``: ``FaceDatasetMapper(cfg, is_train=True)``.
    """

    def _transform_annotations(self, dataset_dict, transforms, image_shape):
        annos_in = [a for a in dataset_dict.pop("annotations") if a.get("iscrowd", 0) == 0]
        has_mask = []
        for anno in annos_in:
            masked = anno.get("segmentation") is not None
            has_mask.append(masked)
            if not self.use_instance_mask:
                anno.pop("segmentation", None)
            elif not masked:
                anno["segmentation"] = _box_polygon(BoxMode.convert(anno["bbox"], anno["bbox_mode"], BoxMode.XYWH_ABS))
            if not self.use_keypoint:
                anno.pop("keypoints", None)
        annos = [utils.transform_instance_annotations(obj, transforms, image_shape,
                                                      keypoint_hflip_indices=self.keypoint_hflip_indices)
                 for obj in annos_in]
        # polygons (and box placeholders) stay polygons: hundreds of box-only faces in a WIDER crowd would
        # otherwise become hundreds of full-image bitmaps; an RLE mask in the image needs bitmasks
        polygons_only = all(isinstance(a.get("segmentation", []), list) for a in annos)
        mask_format = "polygon" if polygons_only else "bitmask"
        instances = utils.annotations_to_instances(annos, image_shape, mask_format=mask_format)
        instances.gt_has_mask = torch.as_tensor(np.asarray(has_mask, dtype=bool).reshape(-1))
        if self.recompute_boxes and instances.has("gt_masks"):
            boxes = instances.gt_masks.get_bounding_boxes()
            keep_box = ~instances.gt_has_mask  # a placeholder mask says nothing new about the box
            boxes.tensor[keep_box] = instances.gt_boxes.tensor[keep_box]
            instances.gt_boxes = boxes
        dataset_dict["instances"] = utils.filter_empty_instances(instances)
