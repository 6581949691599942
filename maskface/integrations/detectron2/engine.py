"""Detectron2's ``DefaultTrainer`` on MaskFace face datasets (what ``tools/train_detectron2.py`` runs).

:class:`FaceTrainer` is Detectron2's trainer with :class:`~.data.FaceDatasetMapper` (box-only faces)
and COCO evaluation that leaves mask AP out on datasets holding box-only faces.
:func:`register_config_datasets` registers every ``DATASETS.TRAIN`` / ``DATASETS.TEST`` entry that is
a COCO face JSON path, so a config (or a command-line override) can name the files directly.
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional

from maskface.integrations.detectron2 import require_detectron2

require_detectron2()

from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader  # noqa: E402
from detectron2.engine import DefaultTrainer  # noqa: E402
from detectron2.evaluation import COCOEvaluator  # noqa: E402

from maskface.integrations.detectron2 import modeling  # noqa: E402,F401  (registry entries)
from maskface.integrations.detectron2.data import FaceDatasetMapper, register_face_datasets  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["FaceTrainer", "register_config_datasets"]


def register_config_datasets(cfg, image_root: Optional[str] = None) -> List[str]:
    """Register the ``DATASETS.TRAIN`` / ``TEST`` entries ending in ``.json`` that are not registered
    yet (under the path as written); returns their names. Other names must be registered already."""
    names = [str(n) for n in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)]
    new = [n for n in dict.fromkeys(names) if n.endswith(".json") and n not in DatasetCatalog.list()]
    if new:
        register_face_datasets(new, image_root=image_root)
    unknown = [n for n in names if n not in DatasetCatalog.list()]
    if unknown:
        raise KeyError(f"datasets {unknown} are neither registered nor COCO face .json paths; register them with "
                       "maskface.integrations.detectron2.register_face_datasets or name the files")
    return new


class FaceTrainer(DefaultTrainer):
    """``DefaultTrainer`` with :class:`FaceDatasetMapper` and face COCO evaluation."""

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=FaceDatasetMapper(cfg, is_train=True))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        DatasetCatalog.get(dataset_name)  # sets has_box_only_faces for MaskFace datasets
        tasks = ("bbox",) if MetadataCatalog.get(dataset_name).get("has_box_only_faces", False) else ("bbox", "segm")
        if "segm" not in tasks:
            logger.info("%s holds box-only faces: COCO box AP only", dataset_name)
        return COCOEvaluator(dataset_name, tasks=tasks, output_dir=output_folder)
