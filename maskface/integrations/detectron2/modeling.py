"""MaskFace's modules that Detectron2 lacks, registered in Detectron2's registries on import.

================================  =====================  ===========================================
registry                          name                   what
================================  =====================  ===========================================
``BACKBONE_REGISTRY``             ``build_mobilenet_     RetinaFace's face-trained MobileNetV1-0.25 +
                                  ssh_backbone``         FPN + SSH (:mod:`maskface.modeling.
                                                         mobilenet_ssh`): ``p3``, ``p4``, ``p5``
                                                         (strides 8, 16, 32), 64 channels; with
                                                         ``MODEL.MOBILENET_SSH.STRIDE4`` also ``p2``
``RPN_HEAD_REGISTRY``             ``PerLevelRPNHead``    a 1x1 objectness and a 1x1 box conv per level
                                                         (Detectron2's ``StandardRPNHead`` shares one
                                                         head across levels)
``ANCHOR_GENERATOR_REGISTRY``     ``MaskFaceAnchor       torchvision's anchors: cell anchors rounded to
                                  Generator``            whole pixels, ratio-major, strides from the
                                                         padded image size (P6 of a 480 px-high input
                                                         has stride 60 in torchvision, 64 in
                                                         ``DefaultAnchorGenerator``)
``ROI_HEADS_REGISTRY``            ``FaceROIHeads``       ``StandardROIHeads`` whose mask loss skips
                                                         faces without a mask (``gt_has_mask`` from
                                                         :class:`~.data.FaceDatasetMapper`); with the
                                                         SSH ``p2`` map, only faces under 56 px are
                                                         pooled from it (:class:`FineROIPooler`)
``META_ARCH_REGISTRY``            ``MaskFaceRCNN``       ``GeneralizedRCNN`` that resizes test images
                                                         itself, exactly as MaskFace's FacePredictor
                                                         does (``MODEL.MASKFACE.*_SIZE_TEST``;
                                                         ``INPUT.MIN_SIZE_TEST: 0``)
================================  =====================  ===========================================

Why ``MaskFaceRCNN``: Detectron2's ``DefaultPredictor`` and test loader resize the uint8 image with
PIL (antialiased when shrinking, output size rounded half up) before the model; MaskFace resizes the
float image with ``torch.nn.functional.interpolate`` (size rounded down), after shrinking images
larger than ``MAX_SIZE`` with OpenCV's area filter. The model is the same either way; the inputs
differ by a fraction of a grey level, which moves faces of 10-20 px by up to ~2-3 px. With
``MaskFaceRCNN`` (what ``tools/convert_weights.py --to detectron2`` writes by default) Detectron2's
own resize is switched off and the model applies MaskFace's, so ``DefaultPredictor`` returns
MaskFace's faces up to float rounding.

ResNet-FPN backbones need nothing new: Detectron2's ``build_resnet_fpn_backbone`` with
``RESNETS.STRIDE_IN_1X1: False`` and ``NORM: GN`` (or ``FrozenBN``) is MaskFace's torchvision
ResNet-FPN, GroupNorm included.
"""

from __future__ import annotations

import logging
from typing import Dict, List

import numpy as np
import torch
from torch import nn

from maskface.integrations.detectron2 import require_detectron2

require_detectron2()

from detectron2.config import configurable  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, ROI_HEADS_REGISTRY, Backbone  # noqa: E402
from detectron2.modeling.anchor_generator import (  # noqa: E402
    ANCHOR_GENERATOR_REGISTRY,
    BufferList,
    DefaultAnchorGenerator,
)
from detectron2.modeling.meta_arch import GeneralizedRCNN  # noqa: E402
from detectron2.modeling.proposal_generator.rpn import RPN_HEAD_REGISTRY  # noqa: E402
from detectron2.structures import ImageList  # noqa: E402
from detectron2.modeling.poolers import ROIPooler, assign_boxes_to_levels, convert_boxes_to_pooler_format  # noqa: E402
from detectron2.modeling.roi_heads import StandardROIHeads  # noqa: E402
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals  # noqa: E402

from maskface.modeling.backbone import get_norm_layer  # noqa: E402
from maskface.modeling.mobilenet_ssh import (  # noqa: E402
    CHANNELS,
    FINE_BELOW,
    SSH,
    MobileNetV1,
    RetinaFPN,
    Stride4Branch,
    ssh_pyramid,
)

logger = logging.getLogger(__name__)

__all__ = ["MobileNetSSH", "build_mobilenet_ssh_backbone", "PerLevelRPNHead", "MaskFaceAnchorGenerator", "FineROIPooler",
           "FaceROIHeads", "MaskFaceRCNN"]

SSH_FEATURES = ("p3", "p4", "p5")
SSH_STRIDES = (8, 16, 32)


class MobileNetSSH(Backbone):
    """MobileNetV1-0.25 -> FPN -> SSH as a Detectron2 backbone: ``{"p3", "p4", "p5"}`` maps of 64
    channels at strides 8, 16, 32 for an ``(N, 3, H, W)`` input (normalised by the meta
    architecture: RetinaFace's mean, std 1, 0..255 units, RGB with ``INPUT.FORMAT: RGB``).

    Its modules are MaskFace's (``body``, ``fpn``, ``ssh1..3``, ``stride4``, same state-dict names
    as :class:`maskface.modeling.mobilenet_ssh.MobileNetSSHBackbone`), so a converted checkpoint
    computes exactly what MaskFace does.

    Args:
        norm: ``FrozenBN``, ``BN`` or ``GN`` (MaskFace's ``get_norm_layer`` names).
        freeze_at: parts frozen from the bottom: 0 none, 1 ``stage1``, 2 also ``stage2``,
            3 also ``stage3``, 4 everything (``MODEL.BACKBONE.FREEZE_AT``); the stride-4 branch
            always trains (MaskFace's rule).
        stride4: also ``"p2"``, the stride-4 map (``MODEL.MOBILENET_SSH.STRIDE4``).
    """

    def __init__(self, norm: str = "FrozenBN", freeze_at: int = 0, stride4: bool = False):
        super().__init__()
        if not 0 <= freeze_at <= 4:
            raise ValueError(f"MODEL.BACKBONE.FREEZE_AT must be in [0, 4] for the MobileNet-SSH backbone, got {freeze_at}")
        layer = get_norm_layer(norm)
        self.body = MobileNetV1(layer)
        self.fpn = RetinaFPN((64, 128, 256), CHANNELS, layer)
        self.ssh1, self.ssh2, self.ssh3 = SSH(CHANNELS, layer), SSH(CHANNELS, layer), SSH(CHANNELS, layer)
        parts = [self.body.stage1, self.body.stage2, self.body.stage3, nn.ModuleList([self.fpn, self.ssh1, self.ssh2, self.ssh3])]
        for part in parts[:freeze_at]:
            for p in part.parameters():
                p.requires_grad_(False)
        self.stride4 = Stride4Branch() if stride4 else None
        self._out_features = list(SSH_FEATURES) + (["p2"] if stride4 else [])
        self._out_feature_channels = {f: CHANNELS for f in self._out_features}
        self._out_feature_strides = dict(zip(SSH_FEATURES, SSH_STRIDES), **({"p2": 4} if stride4 else {}))

    @property
    def size_divisibility(self) -> int:
        return 32  # as MaskFace pads (GeneralizedRCNNTransform size_divisible=32)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return dict(zip(self._out_features, ssh_pyramid(self, x)))

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {f: ShapeSpec(channels=CHANNELS, stride=self._out_feature_strides[f]) for f in self._out_features}


@BACKBONE_REGISTRY.register()
def build_mobilenet_ssh_backbone(cfg, input_shape: ShapeSpec) -> MobileNetSSH:
    """``MODEL.BACKBONE.NAME: build_mobilenet_ssh_backbone`` (``MODEL.MOBILENET_SSH.NORM``,
    ``MODEL.BACKBONE.FREEZE_AT``); 3-channel input only."""
    if input_shape.channels != 3:
        raise ValueError(f"the MobileNet-SSH backbone reads 3-channel images, got {input_shape.channels} channels")
    return MobileNetSSH(norm=cfg.MODEL.MOBILENET_SSH.NORM, freeze_at=int(cfg.MODEL.BACKBONE.FREEZE_AT),
                        stride4=bool(cfg.MODEL.MOBILENET_SSH.STRIDE4))


@RPN_HEAD_REGISTRY.register()
class PerLevelRPNHead(nn.Module):
    """RPN head with its own 1x1 objectness and 1x1 box convs per level, no shared 3x3 conv
    (RetinaFace's layout, :class:`maskface.modeling.mobilenet_ssh.PerLevelRPNHead`).

    ``forward(features)`` takes the L maps ``(N, C, Hi, Wi)`` and returns objectness logits
    ``(N, A, Hi, Wi)`` and deltas ``(N, A * box_dim, Hi, Wi)`` per level, as ``StandardRPNHead``.
    """

    @configurable
    def __init__(self, *, in_channels: int, num_anchors: int, num_levels: int, box_dim: int = 4):
        super().__init__()
        self.objectness_logits = nn.ModuleList(nn.Conv2d(in_channels, num_anchors, 1) for _ in range(num_levels))
        self.anchor_deltas = nn.ModuleList(nn.Conv2d(in_channels, num_anchors * box_dim, 1) for _ in range(num_levels))
        for conv in list(self.objectness_logits) + list(self.anchor_deltas):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        from detectron2.modeling.anchor_generator import build_anchor_generator

        channels = {s.channels for s in input_shape}
        if len(channels) != 1:
            raise ValueError(f"PerLevelRPNHead needs the same channels on every level, got {sorted(channels)}")
        anchors = build_anchor_generator(cfg, input_shape)
        if len(set(anchors.num_anchors)) != 1:
            raise ValueError(f"PerLevelRPNHead needs the same anchor count on every level, got {anchors.num_anchors}")
        return {"in_channels": channels.pop(), "num_anchors": anchors.num_anchors[0], "num_levels": len(input_shape),
                "box_dim": anchors.box_dim}

    def forward(self, features: List[torch.Tensor]):
        if len(features) != len(self.objectness_logits):
            raise ValueError(f"PerLevelRPNHead has {len(self.objectness_logits)} levels, got {len(features)} feature maps")
        return ([conv(x) for conv, x in zip(self.objectness_logits, features)],
                [conv(x) for conv, x in zip(self.anchor_deltas, features)])


@ANCHOR_GENERATOR_REGISTRY.register()
class MaskFaceAnchorGenerator(DefaultAnchorGenerator):
    """torchvision's ``AnchorGenerator`` (what MaskFace models are trained with) in Detectron2:

    * cell anchors ``round([-w/2, -h/2, w/2, h/2])`` with ``h/w`` = the aspect ratio, ordered
      ratio-major then size (Detectron2: unrounded, size-major);
    * strides ``padded image size // grid size`` per level, the image size read from the first
      level (``grid * stride``); equal to the nominal strides except on levels that do not divide
      the padded image (P6 of a 480 px-high input: 60 instead of 64);
    * centres at ``(j + OFFSET) * stride`` (``MODEL.ANCHOR_GENERATOR.OFFSET``: 0 for MaskFace's
      ResNet-FPN models, 0.5 for MobileNet-SSH).

    Same config keys as ``DefaultAnchorGenerator``.
    """

    def _calculate_anchors(self, sizes, aspect_ratios):
        return BufferList([self._torchvision_cell_anchors(s, a) for s, a in zip(sizes, aspect_ratios)])

    @staticmethod
    def _torchvision_cell_anchors(sizes, aspect_ratios) -> torch.Tensor:
        scales = torch.as_tensor(list(sizes), dtype=torch.float32)
        ratios = torch.as_tensor(list(aspect_ratios), dtype=torch.float32)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def _grid_anchors(self, grid_sizes: List[List[int]]):
        buffers: List[torch.Tensor] = [x[1] for x in self.cell_anchors.named_buffers()]
        image_h = int(grid_sizes[0][0]) * int(self.strides[0])
        image_w = int(grid_sizes[0][1]) * int(self.strides[0])
        anchors = []
        for (gh, gw), base in zip(grid_sizes, buffers):
            sh, sw = image_h // int(gh), image_w // int(gw)
            xs = torch.arange(int(gw), dtype=torch.float32, device=base.device) * sw + self.offset * sw
            ys = torch.arange(int(gh), dtype=torch.float32, device=base.device) * sh + self.offset * sh
            y, x = torch.meshgrid(ys, xs, indexing="ij")
            x, y = x.reshape(-1), y.reshape(-1)
            shifts = torch.stack((x, y, x, y), dim=1)
            anchors.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        return anchors


class FineROIPooler(ROIPooler):
    """``ROIPooler`` whose first (finest) map only takes boxes under ``fine_below`` px (sqrt of the
    area); the others keep Detectron2's level rule over the coarser maps, as MaskFace's
    :class:`~maskface.modeling.roi_heads.FineLevelMapper` does for the SSH stride-4 map."""

    def __init__(self, *args, fine_below: float = FINE_BELOW, **kwargs):
        super().__init__(*args, **kwargs)
        if len(self.level_poolers) < 2:
            raise ValueError("FineROIPooler needs at least two maps (the fine one first)")
        self.fine_below = float(fine_below)

    def forward(self, x: List[torch.Tensor], box_lists):
        if len(box_lists) == 0 or len(x) != len(self.level_poolers):
            return super().forward(x, box_lists)
        boxes = convert_boxes_to_pooler_format(box_lists)
        coarse = assign_boxes_to_levels(box_lists, self.min_level + 1, self.max_level, self.canonical_box_size,
                                        self.canonical_level) + 1
        sizes = torch.sqrt(torch.cat([b.area() for b in box_lists]))
        levels = torch.where(sizes < self.fine_below, torch.zeros_like(coarse), coarse)
        out = x[0].new_zeros((boxes.shape[0], x[0].shape[1], *self.output_size))
        for level, pooler in enumerate(self.level_poolers):
            inds = torch.nonzero(levels == level, as_tuple=True)[0]
            out.index_put_((inds,), pooler(x[level], boxes[inds]))
        return out


@ROI_HEADS_REGISTRY.register()
class FaceROIHeads(StandardROIHeads):
    """``StandardROIHeads`` for face datasets that mix masked and box-only faces (e.g. WIDER FACE):
    a face whose ``gt_has_mask`` is False (set by :class:`~.data.FaceDatasetMapper`) trains the RPN
    and the box head but gives no mask loss, as in MaskFace. Without ``gt_has_mask`` it is
    ``StandardROIHeads``; inference is identical. With the MobileNet-SSH ``p2`` map first in
    ``ROI_HEADS.IN_FEATURES`` both poolers are :class:`FineROIPooler` (MaskFace's level rule)."""

    @classmethod
    def _fine_pooler(cls, cfg, input_shape, head_cfg, ret: dict, key: str) -> dict:
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        if cfg.MODEL.BACKBONE.NAME == "build_mobilenet_ssh_backbone" and in_features[0] == "p2":
            ret[key] = FineROIPooler(output_size=head_cfg.POOLER_RESOLUTION,
                                     scales=tuple(1.0 / input_shape[k].stride for k in in_features),
                                     sampling_ratio=head_cfg.POOLER_SAMPLING_RATIO, pooler_type=head_cfg.POOLER_TYPE)
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        return cls._fine_pooler(cfg, input_shape, cfg.MODEL.ROI_BOX_HEAD, super()._init_box_head(cfg, input_shape), "box_pooler")

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        ret = super()._init_mask_head(cfg, input_shape)
        return cls._fine_pooler(cfg, input_shape, cfg.MODEL.ROI_MASK_HEAD, ret, "mask_pooler") if ret else ret

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances):
        if self.training and self.mask_on:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            instances = [x[x.gt_has_mask] if x.has("gt_has_mask") else x for x in instances]
            features_used = [features[f] for f in self.mask_in_features]
            boxes = [x.proposal_boxes for x in instances]
            pooled = self.mask_pooler(features_used, boxes) if self.mask_pooler is not None else \
                {f: features[f] for f in self.mask_in_features}
            return self.mask_head(pooled, instances)
        return super()._forward_mask(features, instances)


@META_ARCH_REGISTRY.register()
class MaskFaceRCNN(GeneralizedRCNN):
    """``GeneralizedRCNN`` with MaskFace's test-time resize inside the model (see the module docstring).

    At inference each ``(C, H, W)`` image (0..255, ``INPUT.FORMAT`` order, *not* resized by the data
    pipeline: ``INPUT.MIN_SIZE_TEST: 0``) is shrunk to ``MODEL.MASKFACE.MAX_SIZE_TEST`` on its longer
    side with OpenCV's area filter when larger (FacePredictor's ``resize_max_side``), then resized with
    ``torch`` bilinear so its shorter side is ``MODEL.MASKFACE.MIN_SIZE_TEST`` (longer side capped;
    :func:`maskface.modeling.face_rcnn.resize_for_detector`). Outputs are mapped back to the input's
    ``height`` / ``width`` (filled in from the image when an input dict has none). Training is
    ``GeneralizedRCNN``'s: the data mapper resizes (``INPUT.MIN_SIZE_TRAIN``).
    """

    @configurable
    def __init__(self, *, maskface_min_size: int, maskface_max_size: int, **kwargs):
        super().__init__(**kwargs)
        if maskface_min_size < 1 or maskface_max_size < 1:
            raise ValueError(f"MODEL.MASKFACE.MIN_SIZE_TEST / MAX_SIZE_TEST must be positive, got "
                             f"{maskface_min_size} / {maskface_max_size}")
        self.maskface_min_size = int(maskface_min_size)
        self.maskface_max_size = int(maskface_max_size)

    @classmethod
    def from_config(cls, cfg):
        if cfg.INPUT.MIN_SIZE_TEST != 0:
            raise ValueError(f"MaskFaceRCNN resizes test images itself (MODEL.MASKFACE.MIN_SIZE_TEST): set "
                             f"INPUT.MIN_SIZE_TEST 0, got {cfg.INPUT.MIN_SIZE_TEST} (it would resize twice)")
        ret = super().from_config(cfg)
        ret.update(maskface_min_size=cfg.MODEL.MASKFACE.MIN_SIZE_TEST, maskface_max_size=cfg.MODEL.MASKFACE.MAX_SIZE_TEST)
        return ret

    def _maskface_resize(self, image: torch.Tensor) -> torch.Tensor:
        from maskface.inference.image_io import resize_max_side
        from maskface.modeling.face_rcnn import resize_for_detector

        if max(image.shape[-2:]) > self.maskface_max_size:  # FacePredictor shrinks large images first (uint8, area)
            arr = image.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            small, _ = resize_max_side(np.ascontiguousarray(arr), self.maskface_max_size)
            image = torch.from_numpy(np.ascontiguousarray(small)).to(image.device).permute(2, 0, 1).float()
        min_size = min(self.maskface_min_size, self.maskface_max_size)
        return resize_for_detector(image / 255.0, min_size, self.maskface_max_size) * 255.0

    def preprocess_image(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        if self.training:
            return super().preprocess_image(batched_inputs)
        images = []
        for x in batched_inputs:
            image = self._move_to_current_device(x["image"]).float()
            x.setdefault("height", image.shape[-2])  # outputs in the pixels of the image given
            x.setdefault("width", image.shape[-1])
            images.append((self._maskface_resize(image) - self.pixel_mean) / self.pixel_std)
        return ImageList.from_tensors(images, self.backbone.size_divisibility,
                                      padding_constraints=self.backbone.padding_constraints)
