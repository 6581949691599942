"""RPN and RoI heads for faces: torchvision's, plus two training-time rules.

1. **Box-only faces** (e.g. WIDER FACE: no segmentation) train the RPN and the box head but give
   no mask loss. torchvision's :class:`RoIHeads` computes the mask loss for every positive
   proposal; :class:`FaceRoIHeads` reads a per-instance ``targets[i]["has_mask"]`` (bool, N) and
   keeps only positives matched to an instance with a mask. With none left, ``loss_mask`` is 0
   but still connected to the mask-head parameters (so DDP sees a gradient for every parameter).
2. **Crowd regions** (``iscrowd=1``) are not targets. They arrive as ``targets[i]["crowd_boxes"]``
   (K, 4); anchors (RPN) and proposals (RoI heads) that would be negatives but lie mostly inside
   a crowd region (intersection / own area >= ``crowd_ioa_thresh``) are ignored instead of being
   trained as background.

Both keys are optional: plain torchvision targets behave as in torchvision.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss, maskrcnn_inference
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import LevelMapper, _setup_scales
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align


def box_ioa(boxes: Tensor, regions: Tensor) -> Tensor:
    """Intersection over the area of each of ``boxes`` (N, 4) with each of ``regions`` (K, 4)."""
    lt = torch.max(boxes[:, None, :2], regions[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area = box_ops.box_area(boxes).clamp(min=1e-6)
    return inter / area[:, None]


def _crowd_ignore(boxes: Tensor, target: Dict[str, Tensor], thresh: float) -> Optional[Tensor]:
    """Bool (N,) mask of ``boxes`` lying inside a crowd region of ``target``, or None."""
    crowd = target.get("crowd_boxes")
    if crowd is None or crowd.numel() == 0 or boxes.numel() == 0:
        return None
    return box_ioa(boxes, crowd.to(boxes.dtype)).max(dim=1).values >= thresh


class FineLevelMapper(LevelMapper):
    """torchvision's FPN level rule over the coarser maps, plus one finer map for small boxes:
    boxes under ``fine_below`` px (sqrt of the area) get index 0 (the finest map), the others
    torchvision's index among the coarser maps, plus 1. ``k_min`` / ``k_max`` are the coarser
    maps' levels (e.g. 3 and 5 for strides 8 to 32)."""

    def __init__(self, k_min: int, k_max: int, fine_below: float, **kwargs):
        super().__init__(k_min, k_max, **kwargs)
        self.fine_below = float(fine_below)

    def __call__(self, boxlists: List[Tensor]) -> Tensor:
        coarse = super().__call__(boxlists) + 1
        s = torch.sqrt(torch.cat([box_ops.box_area(b) for b in boxlists]))
        return torch.where(s < self.fine_below, torch.zeros_like(coarse), coarse)


class OrderedRoIAlign(MultiScaleRoIAlign):
    """torchvision's :class:`MultiScaleRoIAlign` reading the maps in the order of ``featmap_names``
    (finest first, as its level rule assumes) instead of the feature dict's order: the
    MobileNet-SSH backbone appends its stride-4 map after the three RetinaFace levels, whose RPN
    heads keep their indices.

    ``fine_below`` (px, > 0): the first map is only for boxes under this size
    (:class:`FineLevelMapper`); the others keep the level rule they had without it, so adding a
    finer map changes nothing for larger faces. 0: torchvision's rule over all maps.
    """

    def __init__(self, featmap_names: List[str], output_size: int, sampling_ratio: int, fine_below: float = 0.0):
        super().__init__(featmap_names, output_size, sampling_ratio)
        self.fine_below = float(fine_below)

    def forward(self, x: Dict[str, Tensor], boxes: List[Tensor], image_shapes: List[Tuple[int, int]]) -> Tensor:
        x = {k: x[k] for k in self.featmap_names}
        if self.fine_below > 0 and (self.scales is None or self.map_levels is None):
            self.scales, mapper = _setup_scales(list(x.values()), image_shapes, self.canonical_scale, self.canonical_level)
            self.map_levels = FineLevelMapper(int(mapper.k_min) + 1, int(mapper.k_max), self.fine_below,
                                              canonical_scale=self.canonical_scale, canonical_level=self.canonical_level)
        return super().forward(x, boxes, image_shapes)


class FaceRPN(RegionProposalNetwork):
    """torchvision's RPN; anchors inside crowd regions are not trained as background.

    ``score_thresh_test``: at inference, proposals whose objectness probability is below it are
    dropped (after NMS, always keeping the best ``MIN_PROPOSALS_TEST``), so a picture with few
    faces sends few RoIs through the box head instead of ``post_nms_top_n``. 0 = off.
    """

    MIN_PROPOSALS_TEST = 16

    def __init__(self, *args, crowd_ioa_thresh: float = 0.5, score_thresh_test: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.crowd_ioa_thresh = crowd_ioa_thresh
        if not 0.0 <= float(score_thresh_test) < 1.0:
            raise ValueError(f"RPN score_thresh_test must be in [0, 1), got {score_thresh_test}")
        self.score_thresh_test = float(score_thresh_test)

    def filter_proposals(self, proposals, objectness, image_shapes, num_anchors_per_level):
        boxes, scores = super().filter_proposals(proposals, objectness, image_shapes, num_anchors_per_level)
        if self.training or self.score_thresh_test <= 0.0:
            return boxes, scores
        kept_boxes, kept_scores = [], []
        for b, s in zip(boxes, scores):  # score order (NMS sorts); a mask, so it traces for ONNX
            keep = (s >= self.score_thresh_test) | (torch.arange(s.shape[0], device=s.device) < self.MIN_PROPOSALS_TEST)
            kept_boxes.append(b[keep])
            kept_scores.append(s[keep])
        return kept_boxes, kept_scores

    def assign_targets_to_anchors(
        self, anchors: List[Tensor], targets: List[Dict[str, Tensor]]
    ) -> Tuple[List[Tensor], List[Tensor]]:
        labels, matched_gt_boxes = super().assign_targets_to_anchors(anchors, targets)
        for lab, anc, tgt in zip(labels, anchors, targets):
            ignore = _crowd_ignore(anc, tgt, self.crowd_ioa_thresh)
            if ignore is not None:
                lab[ignore & (lab == 0)] = -1.0
        return labels, matched_gt_boxes


def face_mask_loss(
    mask_logits: Tensor,
    proposals: List[Tensor],
    gt_masks: List[Tensor],
    gt_labels: List[Tensor],
    matched_idxs: List[Tensor],
) -> Tensor:
    """Binary cross-entropy of the class-specific mask logits against the GT masks cropped to the
    proposals (as torchvision's ``maskrcnn_loss``), converting only the GT masks actually used to
    float: an image with hundreds of box-only faces carries hundreds of all-zero masks."""
    size = mask_logits.shape[-1]
    targets, labels = [], []
    for masks, props, idxs, gl in zip(gt_masks, proposals, matched_idxs, gt_labels):
        if idxs.numel() == 0:
            continue
        used, local = torch.unique(idxs, return_inverse=True)
        rois = torch.cat([local[:, None].to(props), props], dim=1)
        sub = masks[used][:, None].to(props)
        targets.append(roi_align(sub, rois, (size, size), 1.0)[:, 0])
        labels.append(gl[idxs])
    if not targets:
        return mask_logits.sum() * 0
    mask_targets = torch.cat(targets)
    labels_t = torch.cat(labels)
    logits = mask_logits[torch.arange(labels_t.shape[0], device=labels_t.device), labels_t]
    return F.binary_cross_entropy_with_logits(logits, mask_targets)


class FaceRoIHeads(RoIHeads):
    """torchvision's box + mask RoI heads with per-instance ``has_mask`` and crowd-ignore rules.

    Takes torchvision's :class:`RoIHeads` arguments (no keypoint branch) plus
    ``crowd_ioa_thresh``.
    """

    def __init__(self, *args, crowd_ioa_thresh: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.crowd_ioa_thresh = crowd_ioa_thresh

    def select_training_samples(
        self, proposals: List[Tensor], targets: Optional[List[Dict[str, Tensor]]]
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        self.check_targets(targets)
        assert targets is not None
        dtype, device = proposals[0].dtype, proposals[0].device
        gt_boxes = [t["boxes"].to(dtype) for t in targets]
        gt_labels = [t["labels"] for t in targets]
        proposals = self.add_gt_proposals(proposals, gt_boxes)
        matched_idxs, labels = self.assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        for i, tgt in enumerate(targets):
            ignore = _crowd_ignore(proposals[i], tgt, self.crowd_ioa_thresh)
            if ignore is not None:
                labels[i][ignore & (labels[i] == 0)] = -1  # -1: neither positive nor negative
        sampled_inds = self.subsample(labels)
        matched_gt_boxes = []
        for i in range(len(proposals)):
            keep = sampled_inds[i]
            proposals[i], labels[i], matched_idxs[i] = proposals[i][keep], labels[i][keep], matched_idxs[i][keep]
            boxes_i = gt_boxes[i] if gt_boxes[i].numel() else torch.zeros((1, 4), dtype=dtype, device=device)
            matched_gt_boxes.append(boxes_i[matched_idxs[i]])
        regression_targets = self.box_coder.encode(matched_gt_boxes, proposals)
        return proposals, matched_idxs, labels, regression_targets

    def forward(
        self,
        features: Dict[str, Tensor],
        proposals: List[Tensor],
        image_shapes: List[Tuple[int, int]],
        targets: Optional[List[Dict[str, Tensor]]] = None,
    ) -> Tuple[List[Dict[str, Tensor]], Dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)

        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)

        result: List[Dict[str, Tensor]] = []
        losses: Dict[str, Tensor] = {}
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        else:
            boxes, scores, det_labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
            result = [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, det_labels)]

        if not self.has_mask():
            return result, losses

        if self.training:
            mask_proposals, mask_matched = [], []
            for props, lab, idxs, tgt in zip(proposals, labels, matched_idxs, targets):
                pos = torch.where(lab > 0)[0]
                has_mask = tgt.get("has_mask")
                if has_mask is not None:
                    pos = pos[has_mask.to(device=pos.device, dtype=torch.bool)[idxs[pos]]]
                mask_proposals.append(props[pos])
                mask_matched.append(idxs[pos])
            mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes)))
            losses["loss_mask"] = face_mask_loss(
                mask_logits,
                mask_proposals,
                [t["masks"] for t in targets],
                [t["labels"] for t in targets],
                mask_matched,
            )
        else:
            mask_proposals = [r["boxes"] for r in result]
            mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes)))
            for prob, r in zip(maskrcnn_inference(mask_logits, [r["labels"] for r in result]), result):
                r["masks"] = prob
        return result, losses
