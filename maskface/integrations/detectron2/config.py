"""Detectron2 config keys of MaskFace's Detectron2 modules, and loading a Detectron2 config.

Detectron2 configs only accept keys its defaults know; call :func:`add_maskface_config` on
``detectron2.config.get_cfg()`` before merging a file that uses the MaskFace modules (as
Detectron2's projects do with their ``add_*_config``). New keys:

``MODEL.MOBILENET_SSH.NORM``     normalisation of the ``build_mobilenet_ssh_backbone`` pyramid:
                                 ``FrozenBN`` (default; the face-trained statistics), ``BN`` or ``GN``.
``MODEL.MOBILENET_SSH.STRIDE4``  that pyramid also gives ``p2``, MaskFace's stride-4 level
                                 (``MODEL.STRIDE4_ANCHORS``); default False.
``MODEL.MASKFACE.MIN_SIZE_TEST``  ``MaskFaceRCNN``: shorter side of test images, px (MaskFace's
                                 ``MODEL.MIN_SIZE``); the model resizes, so ``INPUT.MIN_SIZE_TEST: 0``.
``MODEL.MASKFACE.MAX_SIZE_TEST``  ``MaskFaceRCNN``: longer-side cap, px (MaskFace's ``MODEL.MAX_SIZE``).
"""

from __future__ import annotations

from typing import Optional, Sequence

from maskface.integrations.detectron2 import require_detectron2

require_detectron2()

from detectron2.config import CfgNode as CN  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402

__all__ = ["add_maskface_config", "get_detectron2_cfg"]


def add_maskface_config(cfg) -> None:
    """Add MaskFace's keys (module docstring) to a Detectron2 config, in place; idempotent."""
    if "MOBILENET_SSH" not in cfg.MODEL:
        cfg.MODEL.MOBILENET_SSH = CN()
        cfg.MODEL.MOBILENET_SSH.NORM = "FrozenBN"
    if "STRIDE4" not in cfg.MODEL.MOBILENET_SSH:
        cfg.MODEL.MOBILENET_SSH.STRIDE4 = False
    if "MASKFACE" not in cfg.MODEL:
        cfg.MODEL.MASKFACE = CN()
        cfg.MODEL.MASKFACE.MIN_SIZE_TEST = 800
        cfg.MODEL.MASKFACE.MAX_SIZE_TEST = 1333


def get_detectron2_cfg(config=None, opts: Optional[Sequence[str]] = None, freeze: bool = False):
    """Detectron2's defaults + MaskFace's keys, merged with ``config`` (a YAML path, or a Detectron2
    ``CfgNode`` / dict) and ``opts`` (``["KEY", "VALUE", ...]``). Importing this also registers
    MaskFace's Detectron2 modules (:mod:`.modeling`)."""
    import os

    from maskface.integrations.detectron2 import modeling  # noqa: F401  (registry entries)

    cfg = get_cfg()
    add_maskface_config(cfg)
    if isinstance(config, (str, os.PathLike)):
        if not os.path.isfile(config):
            raise FileNotFoundError(f"Detectron2 config not found: {config}")
        cfg.merge_from_file(str(config))
    elif config is not None:
        cfg.merge_from_other_cfg(config if isinstance(config, CN) else CN(config))
    if opts:
        cfg.merge_from_list(list(opts))
    if freeze:
        cfg.freeze()
    return cfg
