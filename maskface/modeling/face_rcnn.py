"""The face Mask R-CNN: torchvision's detection parts, two classes (background, face).

Interface the rest of MaskFace relies on (a future detectron2 backend must offer the same):

* ``model.eval(); model(images)`` with ``images`` a list of CHW float RGB tensors in 0..1, any
  size -> one dict per image: ``boxes`` (N, 4) xyxy in pixels of that input image, ``scores``
  (N,), ``labels`` (N,) int64 (1 = face), ``masks`` (N, 1, H, W) float probabilities.
* ``model.train(); model(images, targets)`` -> dict of losses named ``loss_*``. Targets are the
  mapper's (``maskface.data.mapper``): ``boxes``, ``labels``, ``masks``, optional ``has_mask``
  and ``crowd_boxes`` (see :mod:`maskface.modeling.roi_heads`).

Resizing: at inference the model resizes the shorter side to ``min_size`` (longer side capped at
``max_size``) and maps the outputs back. In training it does **not** resize: the data mapper
already drew the scale-jitter size and resized image, boxes and masks together (cheaper in the
loader workers, and the mapper then drops boxes that became degenerate).
Input normalisation (ImageNet mean/std) happens inside the model.

Two passes (``extra_pass_size``): at inference the model can also read each image at a second
size and merge both passes' faces with :func:`merge_passes` (the crowd setting: 3x enlarged for
small faces, 1x for the large ones that enlargement pushes past the largest anchors).

Build from a config with :func:`build_face_rcnn`, or directly with keyword arguments.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import maskrcnn_inference
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import nms

from maskface.modeling.backbone import SSH_BACKBONES, build_backbone, group_norm, imagenet_key_map, imagenet_weights_url
from maskface.modeling.mobilenet_ssh import (
    RETINAFACE_MEAN_RGB,
    CenteredAnchorGenerator,
    PerLevelRPNHead,
    check_known_file,
    is_retinaface_state,
    retinaface_to_maskface,
)
from maskface.modeling.read_plan import ReadPlan, input_scale, resize_image
from maskface.modeling.roi_heads import FaceRoIHeads, FaceRPN, OrderedRoIAlign

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 2  # background, face
FEATURE_NAMES = ["0", "1", "2", "3"]  # FPN levels P2..P5 pooled by RoIAlign (backbones may name others)


def _anchor_sizes(sizes: Sequence[Union[float, Sequence[float]]]) -> tuple:
    return tuple(tuple(int(v) for v in s) if isinstance(s, (list, tuple)) else (int(s),) for s in sizes)


def _check_pass_size(size) -> Optional[tuple]:
    if size is None or len(size) == 0:
        return None
    if len(size) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in size) or size[0] > size[1]:
        raise ValueError(f"extra_pass_size must be [shorter side, longer cap] px with 0 < shorter <= longer, "
                         f"got {list(size)}")
    return int(size[0]), int(size[1])


def _check_band(band) -> tuple:
    if len(band) != 2 or not 0 <= float(band[0]) <= float(band[1]):
        raise ValueError(f"merge_band must be [low, high] px with 0 <= low <= high, got {list(band)}")
    return float(band[0]), float(band[1])


def merge_passes(large: Dict[str, torch.Tensor], small: Dict[str, torch.Tensor], band: Sequence[float],
                 nms_thresh: float, max_detections: int) -> Dict[str, torch.Tensor]:
    """One image's faces from two inference passes, merged.

    Args:
        large, small: the detections of the pass that read the image larger / smaller, in the
            same (original image) pixels: ``boxes`` (N, 4) xyxy, ``scores`` (N,), and any other
            per-face tensors (``labels``, ``masks``, ...) with N first; both have the same keys.
        band: ``(low, high)`` px of face size ``sqrt(w * h)``: ``large`` keeps faces under
            ``high``, ``small`` keeps faces of at least ``low``; in between both compete.
        nms_thresh: box IoU above which the lower-scoring of two faces is dropped.
        max_detections: at most this many faces, highest scores first.

    Returns:
        A dict with the same keys, sorted by score (descending).
    """
    low, high = _check_band(band)

    def size(boxes):
        return ((boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)).sqrt()

    keep_large, keep_small = size(large["boxes"]) < high, size(small["boxes"]) >= low
    merged = {k: torch.cat([large[k][keep_large], small[k][keep_small]]) for k in large}
    keep = nms(merged["boxes"].float(), merged["scores"].float(), nms_thresh)[:max_detections]  # score order
    return {k: v[keep] for k, v in merged.items()}


class FaceRCNN(GeneralizedRCNN):
    """Mask R-CNN for faces.

    Args:
        backbone: a module returning an ordered dict of feature maps with an ``out_channels``
            attribute, e.g. from :func:`maskface.modeling.backbone.build_backbone`: five maps
            (``"0"``..``"3"``, ``"pool"``) for the FPN backbones, three for ``mobilenet_v1_ssh``.
            RoIAlign pools from ``backbone.roi_feature_names`` when it has one, else ``"0"``..``"3"``;
            a backbone's ``roi_fine_below`` (px) keeps its first map for faces under that size.
        anchor_sizes: one entry per feature map (a size, or a list of sizes), in pixels of the
            resized image. 16 px anchors on the stride-4 level reach ~10 px faces (the RPN
            always assigns each face its best anchor).
        anchor_ratios: height / width ratios shared by all levels.
        rpn_per_level: one objectness / box conv pair per level (RetinaFace's layout) instead of
            torchvision's shared 3x3 conv + heads.
        centered_anchors: anchor centres at ``(j + 0.5) * stride`` (RetinaFace) instead of
            ``j * stride``.
        rpn_iou_thresholds: (background below, face from) anchor IoU for the RPN's labels.
        min_size, max_size: inference resize (shorter side, longer-side cap).
        norm: ``"GN"`` puts GroupNorm in the mask head (others: no norm, torchvision layout).
        box_head_dim, mask_head_dim: widths of the two-FC box head and the 4-conv mask head.
        rpn_* / box_* / score_thresh / nms_thresh / detections_per_img: as in torchvision;
            ``rpn_score_thresh_test``: objectness below which proposals are dropped at inference
            (:class:`~maskface.modeling.roi_heads.FaceRPN`).
        mask_thresh: probability that makes a mask pixel foreground; not used by the model
            itself, carried for consumers (evaluation, predictor).
        extra_pass_size: ``(min_size, max_size)`` of a second inference pass whose faces are
            merged with the first's (:func:`merge_passes`); ``None`` = one pass. Inference only.
        resize: ``"shorter_side"`` (torchvision's inference resize) or ``"native"`` (pictures at
            their own size within ``min_size`` / ``max_size``); see :mod:`maskface.modeling.read_plan`.
        tile: with ``"native"``, pictures larger than ``max_size`` are read in tiles plus once
            shrunk (:class:`~maskface.modeling.read_plan.ReadPlan`). Inference only.
        merge_band: ``(low, high)`` face size in px of the original image where the two passes
            overlap (see :func:`merge_passes`).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_classes: int = NUM_CLASSES,
        anchor_sizes: Sequence = (16, 32, 64, 128, 256),
        anchor_ratios: Sequence[float] = (1.0, 1.3),
        rpn_per_level: bool = False,
        centered_anchors: bool = False,
        rpn_iou_thresholds: Sequence[float] = (0.3, 0.7),
        min_size: int = 800,
        max_size: int = 1333,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        norm: str = "GN",
        rpn_pre_nms_top_n_train: int = 2000,
        rpn_pre_nms_top_n_test: int = 1000,
        rpn_post_nms_top_n_train: int = 2000,
        rpn_post_nms_top_n_test: int = 1000,
        rpn_nms_thresh: float = 0.7,
        rpn_score_thresh_test: float = 0.0,
        rpn_batch_size_per_image: int = 256,
        box_batch_size_per_image: int = 512,
        box_positive_fraction: float = 0.25,
        box_head_dim: int = 1024,
        mask_head_dim: int = 256,
        score_thresh: float = 0.5,
        nms_thresh: float = 0.4,
        detections_per_img: int = 100,
        mask_thresh: float = 0.5,
        crowd_ioa_thresh: float = 0.5,
        extra_pass_size: Optional[Sequence[int]] = None,
        merge_band: Sequence[float] = (64.0, 128.0),
        resize: str = "shorter_side",
        tile: bool = False,
    ):
        out_ch = backbone.out_channels
        sizes = _anchor_sizes(anchor_sizes)
        generator_cls = CenteredAnchorGenerator if centered_anchors else AnchorGenerator
        anchor_gen = generator_cls(sizes, (tuple(float(r) for r in anchor_ratios),) * len(sizes))
        num_anchors = anchor_gen.num_anchors_per_location()
        if len(set(num_anchors)) != 1:
            raise ValueError(f"every FPN level needs the same number of anchors; got {num_anchors} from sizes {sizes}")
        bg_iou, fg_iou = (float(t) for t in rpn_iou_thresholds)
        if not 0 < bg_iou <= fg_iou < 1:
            raise ValueError(f"rpn_iou_thresholds must be (background, face) with 0 < bg <= fg < 1, got {tuple(rpn_iou_thresholds)}")
        head = PerLevelRPNHead(out_ch, num_anchors[0], len(sizes)) if rpn_per_level else RPNHead(out_ch, num_anchors[0])
        feature_names = list(getattr(backbone, "roi_feature_names", FEATURE_NAMES))
        fine_below = float(getattr(backbone, "roi_fine_below", 0.0))  # a finer map only for small faces
        rpn = FaceRPN(
            anchor_gen,
            head,
            fg_iou_thresh=fg_iou,
            bg_iou_thresh=bg_iou,
            batch_size_per_image=rpn_batch_size_per_image,
            positive_fraction=0.5,
            pre_nms_top_n={"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test},
            nms_thresh=rpn_nms_thresh,
            crowd_ioa_thresh=crowd_ioa_thresh,
            score_thresh_test=rpn_score_thresh_test,
        )
        roi_heads = FaceRoIHeads(
            OrderedRoIAlign(feature_names, output_size=7, sampling_ratio=2, fine_below=fine_below),
            TwoMLPHead(out_ch * 7 * 7, box_head_dim),
            FastRCNNPredictor(box_head_dim, num_classes),
            fg_iou_thresh=0.5,
            bg_iou_thresh=0.5,
            batch_size_per_image=box_batch_size_per_image,
            positive_fraction=box_positive_fraction,
            bbox_reg_weights=None,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            mask_roi_pool=OrderedRoIAlign(feature_names, output_size=14, sampling_ratio=2, fine_below=fine_below),
            mask_head=MaskRCNNHeads(out_ch, [mask_head_dim] * 4, 1, norm_layer=group_norm if norm == "GN" else None),
            mask_predictor=MaskRCNNPredictor(mask_head_dim, mask_head_dim, num_classes),
            crowd_ioa_thresh=crowd_ioa_thresh,
        )
        # _skip_resize: training images arrive already resized by the mapper (scale jitter).
        transform = GeneralizedRCNNTransform(
            min_size, max_size, list(image_mean), list(image_std), size_divisible=32, _skip_resize=True
        )
        super().__init__(backbone, rpn, roi_heads, transform)
        self.mask_thresh = float(mask_thresh)
        self.extra_pass_size = _check_pass_size(extra_pass_size)
        self.merge_band = _check_band(merge_band)
        self.resize_mode = str(resize)
        self.tile = bool(tile)
        self._channels_last = False  # set by optimize_for_inference: inputs then go in channels-last too
        self.read_plan()  # checks the combination now, not at the first picture

    def optimize_for_inference(self) -> "FaceRCNN":
        """Fold frozen batch norms into their convs (:func:`~maskface.modeling.fusion.fold_frozen_norms`)
        and keep weights and feature maps channels-last (oneDNN's fast layout for the depthwise and
        small convs of the MobileNet backbone), in place; inference only. Returns ``self``."""
        from maskface.modeling.fusion import prepare_for_inference

        prepare_for_inference(self)
        self._channels_last = True
        return self

    def read_plan(self) -> ReadPlan:
        """How this model reads pictures at inference (its current sizes and thresholds)."""
        heads = self.roi_heads
        return ReadPlan(min_size=int(self.transform.min_size[-1]), max_size=int(self.transform.max_size),
                        resize=self.resize_mode, tile=self.tile, extra_pass_size=self.extra_pass_size,
                        merge_band=self.merge_band, nms_thresh=float(heads.nms_thresh),
                        max_detections=int(heads.detections_per_img))

    def forward(self, images, targets=None):
        """torchvision's ``GeneralizedRCNN.forward``; at inference with a reading plan beyond one
        resize (``resize="native"``, tiles, ``extra_pass_size``) the pictures are read by
        :meth:`ReadPlan.detect` and masks pasted once, on the merged faces."""
        plan = None if self.training else self.read_plan()
        if plan is None or plan.is_plain:
            return super().forward(images, targets)
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        # Every pass / tile unpasted (box-sized masks), merged, then pasted once: pasting every
        # candidate at full size first would cost gigabytes on a crowd picture.
        out = plan.detect(self.detect_unpasted, images)
        for m, img in zip(out, images):
            m["labels"] = torch.ones(len(m["boxes"]), dtype=torch.int64, device=m["boxes"].device)
            m["masks"] = paste_masks_in_image(m["masks"][:, None], m["boxes"], tuple(img.shape[-2:]))
        return out

    def detect_unpasted(self, images: List[torch.Tensor], score_thresh=None) -> List[Dict[str, torch.Tensor]]:
        """Inference without the model's own resize and without mask pasting (eval mode).

        Args:
            images: ``(3, h, w)`` float RGB in 0..1, already at the detector's input scale
                (:func:`resize_for_detector`); normalisation and padding to a multiple of 32 happen
                here.
            score_thresh: detections scoring at most this are dropped before the mask head (a float,
                or a 0-d tensor when tracing for export); default the box head's ``score_thresh``.

        Returns:
            One dict per image: ``boxes`` ``(N, 4)`` xyxy in pixels of the given image, ``scores``
            ``(N,)``, ``masks`` ``(N, M, M)`` face probabilities in 0..1 on the box (``M`` = 28),
            to be pasted by :func:`maskface.inference.masks.paste_masks`. This is the graph exported
            to ONNX (:mod:`maskface.export`), so both runtimes share everything after it.
        """
        if self.training:
            raise RuntimeError("detect_unpasted is inference only: call model.eval() first")
        for i, img in enumerate(images):
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f"image {i}: expected a (3, H, W) tensor, got shape {tuple(img.shape)}")
        sizes = [(img.shape[-2], img.shape[-1]) for img in images]
        batched = self.transform.batch_images([self.transform.normalize(img) for img in images],
                                              size_divisible=self.transform.size_divisible)
        image_list = ImageList(batched, sizes)
        if self._channels_last:
            batched = batched.contiguous(memory_format=torch.channels_last)
        features = self.backbone(batched)
        if isinstance(features, torch.Tensor):
            features = {"0": features}
        proposals, _ = self.rpn(image_list, features)
        heads = self.roi_heads
        previous = heads.score_thresh
        if score_thresh is not None:
            heads.score_thresh = score_thresh
        try:
            box_features = heads.box_head(heads.box_roi_pool(features, proposals, image_list.image_sizes))
            class_logits, box_regression = heads.box_predictor(box_features)
            boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals,
                                                                 image_list.image_sizes)
        finally:
            heads.score_thresh = previous
        # One extra box per image through the mask head, dropped afterwards: an image without faces
        # then still gives the mask head a non-empty batch (GroupNorm's reshape of an empty batch
        # fails in ONNX Runtime), at the cost of one 14x14 RoI.
        extra = [torch.cat([b, b.new_tensor([[0.0, 0.0, 1.0, 1.0]])]) for b in boxes]
        mask_features = heads.mask_roi_pool(features, extra, image_list.image_sizes)
        mask_logits = heads.mask_predictor(heads.mask_head(mask_features))
        extra_labels = [torch.cat([lab, lab.new_ones(1)]) for lab in labels]
        probs = maskrcnn_inference(mask_logits, extra_labels)
        return [{"boxes": b, "scores": s, "masks": p[:-1, 0]} for b, s, p in zip(boxes, scores, probs)]

    @classmethod
    def from_config(cls, cfg) -> Dict:
        """Keyword arguments of :class:`FaceRCNN` (backbone included) from a config.

        The face-trained ``mobilenet_v1_ssh`` backbone brings RetinaFace's conventions with it:
        per-level RPN heads, cell-centred anchors and its pixel normalisation (mean subtracted
        from 0..255 values, no std).
        """
        m = cfg.MODEL
        retina = m.BACKBONE in SSH_BACKBONES
        stride4 = len(m.STRIDE4_ANCHORS) > 0
        if stride4 and not retina:
            raise ValueError(f"MODEL.STRIDE4_ANCHORS is for the mobilenet_v1_ssh backbone (the FPN backbones start "
                             f"at stride 4 already: use MODEL.ANCHOR_SIZES), got backbone {m.BACKBONE!r}")
        backbone = build_backbone(
            m.BACKBONE, norm=m.NORM, fpn_channels=m.FPN_CHANNELS, trainable_layers=m.TRAINABLE_LAYERS, stride4=stride4
        )
        norm_kwargs = (
            dict(image_mean=[v / 255.0 for v in RETINAFACE_MEAN_RGB], image_std=[1.0 / 255.0] * 3) if retina else {}
        )
        return dict(
            backbone=backbone,
            anchor_sizes=list(m.ANCHOR_SIZES) + ([list(m.STRIDE4_ANCHORS)] if stride4 else []),
            anchor_ratios=m.ANCHOR_RATIOS,
            rpn_per_level=retina,
            centered_anchors=retina,
            rpn_iou_thresholds=m.RPN_IOU_THRESHOLDS,
            **norm_kwargs,
            min_size=m.MIN_SIZE,
            max_size=m.MAX_SIZE,
            norm=m.NORM,
            rpn_pre_nms_top_n_train=m.RPN_PRE_NMS_TOP_N_TRAIN,
            rpn_pre_nms_top_n_test=m.RPN_PRE_NMS_TOP_N_TEST,
            rpn_post_nms_top_n_train=m.RPN_POST_NMS_TOP_N_TRAIN,
            rpn_post_nms_top_n_test=m.RPN_POST_NMS_TOP_N_TEST,
            rpn_score_thresh_test=m.RPN_SCORE_THRESH_TEST,
            box_batch_size_per_image=m.BOX_BATCH_SIZE_PER_IMAGE,
            box_head_dim=m.BOX_HEAD_DIM,
            mask_head_dim=m.MASK_HEAD_DIM,
            score_thresh=m.SCORE_THRESH,
            nms_thresh=m.NMS_THRESH,
            detections_per_img=m.DETECTIONS_PER_IMAGE,
            mask_thresh=m.MASK_THRESH,
            extra_pass_size=list(m.EXTRA_PASS_SIZE) or None,
            merge_band=list(m.MERGE_BAND),
            resize=m.RESIZE,
            tile=m.TILE,
        )


def resize_for_detector(image: torch.Tensor, min_size: int, max_size: int) -> torch.Tensor:
    """The detector's inference resize, outside the model: ``(3, H, W)`` float -> ``(3, h, w)``.

    Shorter side to ``min_size``, longer side capped at ``max_size`` (scale = the smaller of the
    two ratios; bilinear, ``align_corners=False``), exactly as :class:`GeneralizedRCNNTransform`
    does it in eval mode. Input of :meth:`FaceRCNN.detect_unpasted` and of the exported ONNX graph.
    """
    return resize_image(image, input_scale(image.shape[-2], image.shape[-1], int(min_size), int(max_size)))


def build_face_rcnn(cfg) -> FaceRCNN:
    """The detector described by ``cfg.MODEL``, initialised from ``MODEL.PRETRAINED`` if set.

    ``MODEL.WEIGHTS`` (a full MaskFace checkpoint) is not loaded here: the trainer / evaluator /
    predictor load it with :mod:`maskface.utils.checkpoint` (see :func:`load_detector`).
    """
    model = FaceRCNN(**FaceRCNN.from_config(cfg))
    if cfg.MODEL.PRETRAINED:
        path = resolve_pretrained(cfg.MODEL.PRETRAINED, cfg.MODEL.BACKBONE)
        check_known_file(path)
        load_pretrained(model, path, cfg.MODEL.BACKBONE)
    return model


# --- optional initialisation from torchvision weights files ----------------------------------


def load_detector(cfg, weights: Optional[str] = None, device: Optional[Union[str, torch.device]] = None,
                  fast: bool = False) -> FaceRCNN:
    """The detector of ``cfg`` with ``weights`` (default ``MODEL.WEIGHTS``) loaded strictly, in
    eval mode on ``device`` (default ``MODEL.DEVICE``). ``weights=""`` keeps the initialisation
    (benchmarks). ``fast``: :meth:`FaceRCNN.optimize_for_inference` (the same outputs to ~1e-5
    px, ~40 % less backbone time on CPU; the model then no longer matches a checkpoint's keys,
    so not for training or saving). Raises ``FileNotFoundError`` / ``RuntimeError`` naming the
    file when it is missing or does not fit the config."""
    from maskface.utils.checkpoint import load_checkpoint_file, load_model_weights
    from maskface.utils.device import resolve_device

    weights = cfg.MODEL.WEIGHTS if weights is None else weights
    device = resolve_device(cfg.MODEL.DEVICE) if device is None else torch.device(device)
    model = build_face_rcnn(cfg)
    if weights:
        data = load_checkpoint_file(weights)
        load_model_weights(model, data.get("model", data), source=weights)
        logger.info("Loaded detector weights from %s", weights)
    model = model.to(device).eval()
    return model.optimize_for_inference() if fast else model


def resolve_pretrained(spec: str, backbone: str) -> str:
    """Turn ``MODEL.PRETRAINED`` into a local file path; never downloads.

    ``spec`` is a path, a file name looked up in ``torch.hub.get_dir()/checkpoints`` (where
    torchvision caches its downloads), or ``"imagenet"`` for the backbone's official ImageNet
    file in that cache.
    """
    hub_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
    hint = ""
    if spec == "imagenet":
        try:
            info = imagenet_weights_url(backbone)
        except Exception:  # an unknown name has no official weights
            raise FileNotFoundError(f"no official ImageNet weights are known for backbone {backbone!r}") from None
        spec, hint = info["file"], f" (download {info['url']} on a connected machine)"
    candidates = [spec] if os.path.isabs(spec) else [spec, os.path.join(hub_dir, spec)]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(
        f"MODEL.PRETRAINED={spec!r}: no such local file (looked in: {', '.join(candidates)}). "
        f"Nothing is downloaded: put the file there{hint}, or set MODEL.PRETRAINED '' to train from scratch."
    )


# Keys of torchvision's older Mask R-CNN files, renamed to the current module layout.
_LEGACY_RENAMES = [(f"roi_heads.mask_head.mask_fcn{i + 1}.", f"roi_heads.mask_head.{i}.0.") for i in range(4)] + [
    ("rpn.head.conv.weight", "rpn.head.conv.0.0.weight"),
    ("rpn.head.conv.bias", "rpn.head.conv.0.0.bias"),
]


def load_pretrained(model: nn.Module, path: str, backbone: str) -> Dict[str, List[str]]:
    """Initialise ``model`` from a torchvision weights file: an ImageNet classifier of the same
    backbone, or a detection model (e.g. COCO Mask R-CNN, or a MaskFace checkpoint).

    Tensors whose name and shape match are copied; the rest -- class-specific predictors
    (91 COCO classes vs 2), anchor-count dependent RPN outputs, BatchNorm statistics when the
    model uses GroupNorm -- keep their initialisation and are listed in the log. ImageNet
    weights belong with ``MODEL.NORM FrozenBN``: with GroupNorm only the BatchNorm scale/shift
    would carry over, not its statistics.
    Returns ``{"loaded": [...], "skipped": [...]}``.
    """
    data = torch.load(path, map_location="cpu", weights_only=False)
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state:
        raise RuntimeError(f"{path}: not a state dict (got {type(data).__name__})")
    if is_retinaface_state(state):  # RetinaFace body/FPN/SSH + class/box heads
        state = retinaface_to_maskface(state)
    elif not any(k.startswith("backbone.") for k in state):  # an ImageNet classifier
        key_map = imagenet_key_map(backbone)
        state = {nk: v for k, v in state.items() if (nk := key_map(k)) is not None}
    else:
        renamed = {}
        for k, v in state.items():
            for old, new in _LEGACY_RENAMES:
                if k.startswith(old):
                    k = new + k[len(old):]
            renamed[k] = v
        state = renamed
    own = model.state_dict()
    loaded, skipped = {}, []
    for k, v in state.items():
        if k in own and tuple(v.shape) == tuple(own[k].shape):
            loaded[k] = v.to(own[k].dtype)
        else:
            skipped.append(k if k not in own else f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}")
    if not loaded:
        raise RuntimeError(f"{path}: no tensor matches the model (backbone {backbone!r}); wrong file?")
    model.load_state_dict(loaded, strict=False)
    logger.info(
        "Initialised %d of %d tensors from %s; skipped %d (%s%s)",
        len(loaded),
        len(own),
        path,
        len(skipped),
        ", ".join(skipped[:6]),
        " ..." if len(skipped) > 6 else "",
    )
    return {"loaded": sorted(loaded), "skipped": skipped}
