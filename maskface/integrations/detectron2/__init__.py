"""MaskFace inside Detectron2, and Detectron2 detectors inside MaskFace.

Detectron2 is not on PyPI: install it from source following its guide
(https://detectron2.readthedocs.io/en/latest/tutorials/install.html). Importing this package does
not import Detectron2; the functions below do, when called, and raise :class:`ImportError` naming
the guide when it is missing. The weight and config conversion of :mod:`.convert` needs no
Detectron2 at all for the MaskFace -> Detectron2 direction.

=====================================  ==========================================================
:func:`register_face_datasets`         MaskFace COCO face files -> ``DatasetCatalog`` /
                                       ``MetadataCatalog`` (masks, box-only faces, per-instance
                                       ``attributes``)
:class:`FaceDatasetMapper`             Detectron2's ``DatasetMapper`` plus box-only faces
                                       (``gt_has_mask``)
:func:`add_maskface_config`            the config keys of the modules below
``build_mobilenet_ssh_backbone``       RetinaFace's MobileNetV1-0.25 + FPN + SSH pyramid
                                       (``BACKBONE_REGISTRY``)
``PerLevelRPNHead``                    one RPN objectness / box conv pair per level
                                       (``RPN_HEAD_REGISTRY``)
``MaskFaceAnchorGenerator``            torchvision's anchors, so converted models compute what
                                       MaskFace computes (``ANCHOR_GENERATOR_REGISTRY``)
``FaceROIHeads``                       ``StandardROIHeads`` without mask loss for box-only faces
                                       (``ROI_HEADS_REGISTRY``)
``MaskFaceRCNN``                       ``GeneralizedRCNN`` with MaskFace's test resize inside the
                                       model (``META_ARCH_REGISTRY``)
:func:`maskface_to_detectron2`,        checkpoints + configs both ways (``tools/convert_weights.py``)
:func:`detectron2_to_maskface`
:class:`Detectron2Detector`            a Detectron2 model behind MaskFace's detector contract
                                       (``FacePredictor(detector_backend="detectron2")``)
:func:`compare_predictors`             Detectron2's ``DefaultPredictor`` vs MaskFace on images
:class:`FaceTrainer`                   Detectron2's ``DefaultTrainer`` on MaskFace datasets
                                       (``tools/train_detectron2.py``)
=====================================  ==========================================================

The registry entries exist once :mod:`maskface.integrations.detectron2.modeling` is imported,
which every function here that builds a model does (and ``import maskface.integrations.detectron2
.modeling`` does in your own Detectron2 script).
"""

from __future__ import annotations

import importlib

INSTALL_GUIDE = "https://detectron2.readthedocs.io/en/latest/tutorials/install.html"

#: public name -> submodule that defines it (imported on first access)
_LAZY = {
    "register_face_datasets": "data",
    "face_dataset_dicts": "data",
    "FaceDatasetMapper": "data",
    "add_maskface_config": "config",
    "get_detectron2_cfg": "config",
    "maskface_to_detectron2": "convert",
    "detectron2_to_maskface": "convert",
    "maskface_to_detectron2_state": "convert",
    "detectron2_to_maskface_state": "convert",
    "maskface_to_detectron2_config": "convert",
    "load_maskface_checkpoint": "convert",
    "save_detectron2_checkpoint": "convert",
    "load_detectron2_checkpoint": "convert",
    "ConversionError": "convert",
    "FaceTrainer": "engine",
    "register_config_datasets": "engine",
    "Detectron2Detector": "detector",
    "compare_predictors": "check",
}

__all__ = ["INSTALL_GUIDE", "require_detectron2", *_LAZY]


def require_detectron2():
    """Import and return the ``detectron2`` package; :class:`ImportError` naming the guide if it is missing."""
    from maskface.utils.optional import import_optional

    return import_optional("detectron2", "MaskFace's Detectron2 integration",
                           f"(not on PyPI; after torch) its installation guide, {INSTALL_GUIDE}")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
