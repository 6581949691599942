"""A Detectron2 Mask R-CNN behind MaskFace's detector contract, for
``FacePredictor(detector_backend="detectron2", detector_config=..., detector_weights=...)``.

:class:`Detectron2Detector` takes what :class:`~maskface.inference.predictor.FacePredictor` gives
a detector (a list of ``(3, H, W)`` float RGB tensors in 0..1) and preprocesses each image exactly
as Detectron2's ``DefaultPredictor`` does (back to uint8, ``INPUT.FORMAT`` channel order,
``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``; a ``MaskFaceRCNN`` resizes inside the model),
so its faces are the ones ``DefaultPredictor`` finds. Boxes come back in the given image's pixels
and masks as box-sized probabilities, which FacePredictor pastes, crops and hands to the attribute
net like its own.

Class 0 of the Detectron2 model is the face class (``MODEL.ROI_HEADS.NUM_CLASSES: 1`` in the face
configs); detections of other classes are dropped.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from maskface.integrations.detectron2 import require_detectron2

require_detectron2()

import detectron2.data.transforms as T  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from maskface.integrations.detectron2.config import get_detectron2_cfg  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["Detectron2Detector"]


class Detectron2Detector(nn.Module):
    """MaskFace's detector contract (``model(images)`` -> ``boxes``, ``scores``, ``labels``,
    ``masks``) on a Detectron2 ``GeneralizedRCNN`` with a mask head.

    Args:
        cfg: the Detectron2 config of ``model`` (``INPUT.*`` and thresholds are read from it).
        model: the built, loaded Detectron2 model (moved to eval mode here).

    Attributes:
        score_thresh: the box head's test score threshold (``ROI_HEADS.SCORE_THRESH_TEST``), settable.
        min_size, max_size: the test resize (``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``, or
            ``MODEL.MASKFACE.*`` for a ``MaskFaceRCNN``), settable.
    """

    def __init__(self, cfg, model: nn.Module):
        super().__init__()
        if not cfg.MODEL.MASK_ON or not getattr(model.roi_heads, "mask_on", False):
            raise ValueError("the Detectron2 model has no mask head (MODEL.MASK_ON False): MaskFace's attribute net "
                             "reads masked face crops; use a Mask R-CNN config")
        self.cfg = cfg.clone()
        self.model = model.eval()
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")
        #: MaskFaceRCNN: the model resizes (MODEL.MASKFACE.*), Detectron2's ResizeShortestEdge is off
        self.in_model_resize = hasattr(model, "maskface_min_size")
        self._min_size = int(cfg.INPUT.MIN_SIZE_TEST)
        self._max_size = int(cfg.INPUT.MAX_SIZE_TEST)

    @classmethod
    def from_files(cls, config, weights: Optional[str] = None, device="cpu",
                   opts: Optional[Sequence[str]] = None) -> "Detectron2Detector":
        """Build from a Detectron2 config (YAML path or ``CfgNode``) and checkpoint (default the
        config's ``MODEL.WEIGHTS``), on ``device``; ``opts`` are Detectron2 ``KEY VALUE`` overrides."""
        import os

        cfg = get_detectron2_cfg(config, opts)
        cfg.MODEL.DEVICE = str(device)
        if weights is not None:
            cfg.MODEL.WEIGHTS = str(weights)
        if not cfg.MODEL.WEIGHTS:
            raise ValueError(f"{config}: no Detectron2 weights: pass weights=PATH or set MODEL.WEIGHTS")
        if "://" not in cfg.MODEL.WEIGHTS and not os.path.isfile(cfg.MODEL.WEIGHTS):
            raise FileNotFoundError(f"Detectron2 weights not found: {cfg.MODEL.WEIGHTS}")
        model = build_model(cfg)
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        logger.info("Detectron2 detector %s with weights %s", config if isinstance(config, str) else "(config)",
                    cfg.MODEL.WEIGHTS)
        return cls(cfg, model)

    @property
    def min_size(self) -> int:
        return self.model.maskface_min_size if self.in_model_resize else self._min_size

    @min_size.setter
    def min_size(self, value: int) -> None:
        if self.in_model_resize:
            self.model.maskface_min_size = int(value)
        else:
            self._min_size = int(value)

    @property
    def max_size(self) -> int:
        return self.model.maskface_max_size if self.in_model_resize else self._max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        if self.in_model_resize:
            self.model.maskface_max_size = int(value)
        else:
            self._max_size = int(value)

    @property
    def score_thresh(self) -> float:
        return float(self.model.roi_heads.box_predictor.test_score_thresh)

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.model.roi_heads.box_predictor.test_score_thresh = float(value)

    def maskface_config(self) -> Dict[str, Dict]:
        """The MaskFace config keys FacePredictor reads (thresholds and test sizes), as a dict."""
        c = self.cfg
        return {"MODEL": {"SCORE_THRESH": float(c.MODEL.ROI_HEADS.SCORE_THRESH_TEST),
                          "NMS_THRESH": float(c.MODEL.ROI_HEADS.NMS_THRESH_TEST),
                          "DETECTIONS_PER_IMAGE": int(c.TEST.DETECTIONS_PER_IMAGE),
                          "MIN_SIZE": int(self.min_size), "MAX_SIZE": int(self.max_size),
                          "DEVICE": str(c.MODEL.DEVICE), "WEIGHTS": str(c.MODEL.WEIGHTS)}}

    def _prepare(self, image: torch.Tensor) -> Dict:
        """``(3, H, W)`` RGB 0..1 -> the Detectron2 input dict DefaultPredictor builds."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
        rgb = (image.detach().float() * 255.0).round().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        arr = rgb if self.input_format == "RGB" else rgb[:, :, ::-1]
        h, w = arr.shape[:2]
        if not self.in_model_resize:
            aug = T.ResizeShortestEdge([self._min_size, self._min_size], self._max_size)
            arr = aug.get_transform(arr).apply_image(np.ascontiguousarray(arr))
        tensor = torch.as_tensor(np.ascontiguousarray(arr).astype("float32").transpose(2, 0, 1))
        return {"image": tensor, "height": h, "width": w}

    @torch.no_grad()
    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
        """One dict per image: ``boxes`` ``(N, 4)`` xyxy px of that image, ``scores`` ``(N,)``,
        ``labels`` ``(N,)`` (1 = face, MaskFace's convention), ``masks`` ``(N, M, M)`` face
        probabilities over each box (``M`` = 28)."""
        if not images:
            return []
        instances = self.model.inference([self._prepare(img) for img in images], do_postprocess=False)
        out = []
        for inst, img in zip(instances, images):
            sx, sy = img.shape[-1] / inst.image_size[1], img.shape[-2] / inst.image_size[0]  # model input -> image
            keep = inst.pred_classes == 0
            boxes = inst.pred_boxes.tensor[keep] * torch.tensor([sx, sy, sx, sy], device=inst.pred_boxes.tensor.device)
            h, w = img.shape[-2:]
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # as detector_postprocess
            boxes, scores, masks = boxes[nonempty], inst.scores[keep][nonempty], inst.pred_masks[keep][nonempty][:, 0]
            out.append({"boxes": boxes.to(img.device), "scores": scores.to(img.device),
                        "labels": torch.ones(len(scores), dtype=torch.int64, device=img.device),
                        "masks": masks.to(img.device)})
        return out
