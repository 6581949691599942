"""MaskFace <-> Detectron2 checkpoints and configs.

MaskFace's face Mask R-CNN is torchvision's; Detectron2 builds the same architecture from other
modules. Converting is renaming plus the few places where the two lay tensors out differently:

=========================  ===================================  =====================================
                           MaskFace (torchvision)               Detectron2
=========================  ===================================  =====================================
class order                0 = background, 1 = face             0 = face, last = background
box classifier             ``cls_score`` (2, D): bg, face       ``cls_score`` (2, D): face, bg
box regression             ``bbox_pred`` (8, D): a box per      ``bbox_pred`` (4, D): faces only
                           class, background included
mask logits                ``mask_fcn_logits`` (2, C, 1, 1)     ``mask_head.predictor`` (1, C, 1, 1)
box head                   ``fc6``, ``fc7``                     ``fc1``, ``fc2`` (``NUM_FC: 2``)
mask head                  ``mask_head.{i}.0`` (+ ``.1`` GN),   ``mask_fcn{i+1}`` (+ ``.norm``),
                           ``conv5_mask``                       ``deconv``
ResNet                     ``layerN.b.convK`` / ``bnK``,        ``resN+1.b.convK`` / ``convK.norm``,
                           ``downsample``; stride in the 3x3    ``shortcut``; ``STRIDE_IN_1X1: False``
FPN                        ``inner_blocks.i`` / ``layer_blocks``  ``fpn_lateralN`` / ``fpn_outputN``
RPN head (shared)          ``conv.0.0``, ``cls_logits``,        ``conv``, ``objectness_logits``,
                           ``bbox_pred``                        ``anchor_deltas``
input                      RGB 0..1, normalised inside:         ``INPUT.FORMAT: RGB``, ``PIXEL_MEAN``
                           ImageNet mean / std, or RetinaFace   / ``PIXEL_STD`` in 0..255 units
                           mean (123, 117, 104) with std 1/255
RoIAlign                   ``aligned=False``, 2 samples         ``POOLER_TYPE: ROIAlign`` (not V2),
                                                                ``POOLER_SAMPLING_RATIO: 2``
anchors                    torchvision's (rounded cell          ``MaskFaceAnchorGenerator`` (same),
                           anchors, strides from the padded     ``OFFSET`` 0 (ResNet) / 0.5 (SSH)
                           image), centred for SSH
RPN top-k                  per level before NMS, per image      the same (``PRE_NMS_TOPK_*``,
                           after                                ``POST_NMS_TOPK_*``)
test resize                float image, torch bilinear, size    ``MaskFaceRCNN`` does MaskFace's resize
                           rounded down (images over MAX_SIZE   in the model (``INPUT.MIN_SIZE_TEST:
                           first shrunk with OpenCV's area      0``, ``MODEL.MASKFACE.*``); or Detectron2's
                           filter by FacePredictor)             own (PIL on uint8) with ``resize=
                                                                "detectron2"``
=========================  ===================================  =====================================

The background rows Detectron2 has no place for (box regression and mask logits of class 0, never
used at inference) travel in the Detectron2 checkpoint under the top-level key ``"maskface"``
(which Detectron2's checkpointer ignores), together with the source MaskFace config, so converting
back reproduces the original checkpoint bit for bit. A checkpoint trained in Detectron2 has none:
those rows come back as zeros.

The MaskFace -> Detectron2 direction needs no Detectron2; reading a Detectron2 config (the other
direction) does, for its defaults.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import re
from typing import Any, Dict, List, Optional, Tuple

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "ConversionError",
    "EXTRA_KEY",
    "maskface_to_detectron2",
    "detectron2_to_maskface",
    "maskface_to_detectron2_state",
    "detectron2_to_maskface_state",
    "maskface_to_detectron2_config",
    "detectron2_to_maskface_config",
    "load_maskface_checkpoint",
    "save_detectron2_checkpoint",
    "load_detectron2_checkpoint",
    "dump_detectron2_yaml",
]

#: top-level key of a Detectron2 checkpoint holding what Detectron2 has no place for
EXTRA_KEY = "maskface"
FORMAT_VERSION = 1
NUM_FACE_CLASSES = 1  # Detectron2 counts foreground classes only


class ConversionError(ValueError):
    """The model cannot be expressed in the other framework; the message says what differs."""


# --- names ---------------------------------------------------------------------------------------


def _is_ssh(backbone: str) -> bool:
    from maskface.modeling.backbone import SSH_BACKBONES

    return backbone in SSH_BACKBONES


def _check_backbone(backbone: str) -> None:
    from maskface.modeling.backbone import RESNETS, SSH_BACKBONES

    if backbone not in RESNETS + SSH_BACKBONES:
        raise ConversionError(
            f"backbone {backbone!r} has no Detectron2 counterpart here; convertible: {RESNETS + SSH_BACKBONES} "
            "(ResNet-FPN via Detectron2's own build_resnet_fpn_backbone, mobilenet_v1_ssh via this package's)"
        )


_RESNET_RULES = [
    (r"^backbone\.body\.conv1\.", "backbone.bottom_up.stem.conv1."),
    (r"^backbone\.body\.bn1\.", "backbone.bottom_up.stem.conv1.norm."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.conv(\d)\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.conv{m[3]}."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.bn(\d)\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.norm."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.downsample\.0\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.shortcut."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.downsample\.1\.",
     lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.shortcut.norm."),
    # torchvision >= 0.13 FPN blocks are Conv2dNormActivation (conv ".0", norm ".1"); older ones a bare conv
    (r"^backbone\.fpn\.inner_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}."),
    (r"^backbone\.fpn\.inner_blocks\.(\d)\.1\.", lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}.norm."),
    (r"^backbone\.fpn\.inner_blocks\.(\d)\.(weight|bias)$", lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}.{m[2]}"),
    (r"^backbone\.fpn\.layer_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn_output{int(m[1]) + 2}."),
    (r"^backbone\.fpn\.layer_blocks\.(\d)\.1\.", lambda m: f"backbone.fpn_output{int(m[1]) + 2}.norm."),
    (r"^backbone\.fpn\.layer_blocks\.(\d)\.(weight|bias)$", lambda m: f"backbone.fpn_output{int(m[1]) + 2}.{m[2]}"),
    (r"^rpn\.head\.conv\.0\.0\.", "proposal_generator.rpn_head.conv."),
    (r"^rpn\.head\.cls_logits\.", "proposal_generator.rpn_head.objectness_logits."),
    (r"^rpn\.head\.bbox_pred\.", "proposal_generator.rpn_head.anchor_deltas."),
]
_SSH_RULES = [
    (r"^backbone\.", "backbone."),  # the Detectron2 backbone holds MaskFace's modules under the same names
    (r"^rpn\.head\.cls_logits\.(\d)\.", lambda m: f"proposal_generator.rpn_head.objectness_logits.{m[1]}."),
    (r"^rpn\.head\.bbox_pred\.(\d)\.", lambda m: f"proposal_generator.rpn_head.anchor_deltas.{m[1]}."),
]
_HEAD_RULES = [
    (r"^roi_heads\.box_head\.fc6\.", "roi_heads.box_head.fc1."),
    (r"^roi_heads\.box_head\.fc7\.", "roi_heads.box_head.fc2."),
    (r"^roi_heads\.box_predictor\.", "roi_heads.box_predictor."),
    (r"^roi_heads\.mask_head\.(\d)\.0\.", lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}."),
    (r"^roi_heads\.mask_head\.(\d)\.1\.", lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.norm."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_heads.mask_head.deconv."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_heads.mask_head.predictor."),
]

#: MaskFace keys whose rows are reordered / split between the frameworks
CLS_KEYS = ("roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias")
BOX_KEYS = ("roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias")
MASK_KEYS = ("roi_heads.mask_predictor.mask_fcn_logits.weight", "roi_heads.mask_predictor.mask_fcn_logits.bias")
#: first conv of each backbone (its input channels follow INPUT.FORMAT)
FIRST_CONV = {"resnet": "backbone.body.conv1.weight", "ssh": "backbone.body.stage1.0.0.weight"}


def detectron2_key(key: str, backbone: str) -> str:
    """The Detectron2 name of MaskFace state-dict key ``key`` (model with backbone ``backbone``)."""
    rules = (_SSH_RULES if _is_ssh(backbone) else _RESNET_RULES) if key.startswith(("backbone.", "rpn.")) else _HEAD_RULES
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise ConversionError(f"MaskFace key {key!r} has no Detectron2 name (backbone {backbone!r})")


def maskface_to_detectron2_state(
    state: Dict[str, torch.Tensor], backbone: str
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """MaskFace state dict -> ``(detectron2_state, background)``.

    ``background`` holds, under their MaskFace keys, the class-0 rows that Detectron2 has no place
    for (box regression and mask logits of the background class). Tensors keep their dtype and
    values (bit-exact; only slicing and concatenation).
    """
    _check_backbone(backbone)
    out: Dict[str, torch.Tensor] = {}
    background: Dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked") and k.replace("num_batches_tracked", "running_mean") not in state:
            continue
        d2k = detectron2_key(k, backbone)
        if k in CLS_KEYS:  # (bg, face...) -> (face..., bg)
            v = torch.cat([v[1:], v[:1]])
        elif k in BOX_KEYS:
            background[k] = v[:4].clone()
            v = v[4:]
        elif k in MASK_KEYS:
            background[k] = v[:1].clone()
            v = v[1:]
        if d2k in out:
            raise ConversionError(f"two MaskFace keys map to the Detectron2 key {d2k!r} (second: {k!r})")
        out[d2k] = v.clone()
    return out, background


def detectron2_to_maskface_state(
    d2_state: Dict[str, torch.Tensor],
    expected: Dict[str, torch.Tensor],
    backbone: str,
    background: Optional[Dict[str, torch.Tensor]] = None,
    flip_input_channels: bool = False,
) -> Dict[str, torch.Tensor]:
    """Detectron2 state dict -> MaskFace state dict with the keys (and shapes) of ``expected``.

    Args:
        d2_state: the Detectron2 model's tensors (``checkpoint["model"]``).
        expected: a MaskFace model's ``state_dict()`` (keys and shapes; values unused).
        backbone: MaskFace backbone name.
        background: class-0 rows saved by :func:`maskface_to_detectron2_state`; missing -> zeros.
        flip_input_channels: the Detectron2 model reads BGR: reverse the first conv's input
            channels so the MaskFace model reads RGB.

    Raises:
        ConversionError: a tensor is missing, has another shape, or a Detectron2 tensor is unused.
    """
    background = background or {}
    out: Dict[str, torch.Tensor] = {}
    missing, shape_bad = [], []
    used = set()
    for k, ref in expected.items():
        d2k = detectron2_key(k, backbone)
        if d2k not in d2_state:
            if k.endswith("num_batches_tracked"):  # a BatchNorm counter Detectron2's FrozenBN does not keep
                out[k] = torch.zeros((), dtype=torch.long)
                continue
            missing.append(d2k)
            continue
        used.add(d2k)
        v = d2_state[d2k]
        v = torch.as_tensor(v) if not isinstance(v, torch.Tensor) else v
        if k in CLS_KEYS:
            v = torch.cat([v[-1:], v[:-1]])
        elif k in BOX_KEYS:
            bg = background.get(k)
            v = torch.cat([bg.to(v.dtype) if bg is not None else v.new_zeros((4, *v.shape[1:])), v])
        elif k in MASK_KEYS:
            bg = background.get(k)
            v = torch.cat([bg.to(v.dtype) if bg is not None else v.new_zeros((1, *v.shape[1:])), v])
        if flip_input_channels and k in FIRST_CONV.values():
            v = v.flip(1)
        if tuple(v.shape) != tuple(ref.shape):
            shape_bad.append(f"{d2k} {tuple(v.shape)} vs MaskFace {k} {tuple(ref.shape)}")
            continue
        out[k] = v.clone()
    unused = [k for k in d2_state if k not in used and not k.endswith("num_batches_tracked")
              and not k.startswith(("pixel_mean", "pixel_std"))]
    problems = []
    for title, items in (("missing in the Detectron2 checkpoint", missing), ("shape mismatch", shape_bad),
                         ("Detectron2 tensors with no MaskFace place", unused)):
        if items:
            problems.append(f"{title} ({len(items)}): " + ", ".join(items[:6]) + (" ..." if len(items) > 6 else ""))
    if problems:
        raise ConversionError("the Detectron2 checkpoint does not match the MaskFace model of its config:\n  "
                              + "\n  ".join(problems))
    return out


# --- configs -------------------------------------------------------------------------------------


def _anchor_sizes(sizes) -> List[List[float]]:
    return [[v for v in s] if isinstance(s, (list, tuple)) else [s] for s in sizes]


def _pixel_norm(backbone: str) -> Tuple[List[float], List[float]]:
    """MaskFace's input normalisation in Detectron2's 0..255 units, RGB order."""
    from maskface.modeling.face_rcnn import IMAGENET_MEAN, IMAGENET_STD
    from maskface.modeling.mobilenet_ssh import RETINAFACE_MEAN_RGB

    if _is_ssh(backbone):
        return [float(v) for v in RETINAFACE_MEAN_RGB], [1.0, 1.0, 1.0]
    return [round(v * 255, 6) for v in IMAGENET_MEAN], [round(v * 255, 6) for v in IMAGENET_STD]


def _gn_check(channels: int, what: str) -> None:
    if channels % 32:
        raise ConversionError(f"{what} has {channels} channels: Detectron2's GN uses 32 groups, MaskFace's "
                              f"{channels}-channel GroupNorm uses fewer; no exact Detectron2 equivalent")


#: values of ``maskface_to_detectron2_config(resize=...)``
RESIZES = ("maskface", "detectron2")


def maskface_to_detectron2_config(cfg, weights: str = "", resize: str = "maskface") -> Dict[str, Any]:
    """A Detectron2 config (nested dict, Detectron2 key names) for the MaskFace config ``cfg``.

    ``resize``: ``"maskface"`` (default) makes the model ``MaskFaceRCNN``, which resizes test images
    itself exactly as MaskFace does (``MODEL.MASKFACE.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``,
    ``INPUT.MIN_SIZE_TEST: 0``), so Detectron2 finds MaskFace's faces up to float rounding;
    ``"detectron2"`` keeps ``GeneralizedRCNN`` and Detectron2's own test resize (``INPUT.MIN_SIZE_TEST``;
    PIL on uint8: small faces move by a pixel or two).

    Needs :func:`~maskface.integrations.detectron2.config.add_maskface_config` before merging into
    Detectron2's ``get_cfg()`` for the MobileNet-SSH backbone (key ``MODEL.MOBILENET_SSH``), and
    this package's modeling module imported (registry names ``MaskFaceAnchorGenerator``,
    ``FaceROIHeads``, ``build_mobilenet_ssh_backbone``, ``PerLevelRPNHead``).
    MaskFace-only training augmentations (square crops, close-ups, copy-paste, colour jitter) have no
    Detectron2 key and are left out, and so is a second inference pass (``MODEL.EXTRA_PASS_SIZE``,
    the crowd setting's 1x pass) and the native / tiled reading (``MODEL.RESIZE``, ``MODEL.TILE``):
    the Detectron2 model reads each image once, at ``MIN_SIZE`` (logged as a warning); nor does the
    RPN's objectness threshold at inference (``MODEL.RPN_SCORE_THRESH_TEST``: Detectron2 keeps every
    proposal; converted back without the source config it reads 0).
    """
    from maskface.modeling.backbone import SSH_BACKBONES

    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
    m = cfg.MODEL
    if len(m.EXTRA_PASS_SIZE):
        logger.warning("MODEL.EXTRA_PASS_SIZE %s has no Detectron2 counterpart: the Detectron2 model reads each "
                       "image once, at MODEL.MIN_SIZE %d", list(m.EXTRA_PASS_SIZE), int(m.MIN_SIZE))
    if float(m.RPN_SCORE_THRESH_TEST) > 0:
        logger.warning("MODEL.RPN_SCORE_THRESH_TEST %s has no Detectron2 counterpart: the Detectron2 model sends "
                       "every proposal (up to MODEL.RPN.POST_NMS_TOPK_TEST) to the box head (slower; on the "
                       "validation splits the same faces)", m.RPN_SCORE_THRESH_TEST)
    if m.RESIZE != "shorter_side" or m.TILE:
        logger.warning("MODEL.RESIZE %s / MODEL.TILE %s have no Detectron2 counterpart: the Detectron2 model "
                       "brings each image's shorter side to MODEL.MIN_SIZE %d (longer <= %d), without tiles",
                       m.RESIZE, m.TILE, int(m.MIN_SIZE), int(m.MAX_SIZE))
    backbone = m.BACKBONE
    _check_backbone(backbone)
    ssh = backbone in SSH_BACKBONES
    stride4 = ssh and len(m.STRIDE4_ANCHORS) > 0
    in_model = resize == "maskface"
    gn = m.NORM == "GN"
    mean, std = _pixel_norm(backbone)
    bg_iou, fg_iou = (float(t) for t in m.RPN_IOU_THRESHOLDS)
    model: Dict[str, Any] = {
        "META_ARCHITECTURE": "MaskFaceRCNN" if in_model else "GeneralizedRCNN",
        "MASK_ON": True,
        "KEYPOINT_ON": False,
        "LOAD_PROPOSALS": False,
        "WEIGHTS": weights,
        "PIXEL_MEAN": mean,
        "PIXEL_STD": std,
        "ANCHOR_GENERATOR": {
            "NAME": "MaskFaceAnchorGenerator",
            "SIZES": _anchor_sizes(list(m.ANCHOR_SIZES) + ([list(m.STRIDE4_ANCHORS)] if stride4 else [])),
            "ASPECT_RATIOS": [[float(r) for r in m.ANCHOR_RATIOS]],
            "OFFSET": 0.5 if ssh else 0.0,
        },
        "PROPOSAL_GENERATOR": {"NAME": "RPN", "MIN_SIZE": 0},  # an int key; torchvision's 1e-3 px is the same in practice
        "RPN": {
            "HEAD_NAME": "PerLevelRPNHead" if ssh else "StandardRPNHead",
            # MaskFace's level order (the stride-4 level last: its RPN head is the fourth)
            "IN_FEATURES": ["p3", "p4", "p5"] + (["p2"] if stride4 else []) if ssh else ["p2", "p3", "p4", "p5", "p6"],
            "IOU_THRESHOLDS": [bg_iou, fg_iou],
            "IOU_LABELS": [0, -1, 1],
            "BATCH_SIZE_PER_IMAGE": 256,
            "POSITIVE_FRACTION": 0.5,
            "BBOX_REG_WEIGHTS": [1.0, 1.0, 1.0, 1.0],
            "SMOOTH_L1_BETA": 1.0 / 9,  # torchvision's RPN loss
            "PRE_NMS_TOPK_TRAIN": int(m.RPN_PRE_NMS_TOP_N_TRAIN),
            "PRE_NMS_TOPK_TEST": int(m.RPN_PRE_NMS_TOP_N_TEST),
            "POST_NMS_TOPK_TRAIN": int(m.RPN_POST_NMS_TOP_N_TRAIN),
            "POST_NMS_TOPK_TEST": int(m.RPN_POST_NMS_TOP_N_TEST),
            "NMS_THRESH": 0.7,
        },
        "ROI_HEADS": {
            "NAME": "FaceROIHeads",
            "NUM_CLASSES": NUM_FACE_CLASSES,
            "IN_FEATURES": (["p2"] if stride4 else []) + ["p3", "p4", "p5"] if ssh else ["p2", "p3", "p4", "p5"],
            "IOU_THRESHOLDS": [0.5],
            "IOU_LABELS": [0, 1],
            "BATCH_SIZE_PER_IMAGE": int(m.BOX_BATCH_SIZE_PER_IMAGE),
            "POSITIVE_FRACTION": 0.25,
            "SCORE_THRESH_TEST": float(m.SCORE_THRESH),
            "NMS_THRESH_TEST": float(m.NMS_THRESH),
            "PROPOSAL_APPEND_GT": True,
        },
        "ROI_BOX_HEAD": {
            "NAME": "FastRCNNConvFCHead",
            "NUM_CONV": 0,
            "NUM_FC": 2,
            "FC_DIM": int(m.BOX_HEAD_DIM),
            "NORM": "",
            "POOLER_TYPE": "ROIAlign",  # torchvision's MultiScaleRoIAlign: aligned=False
            "POOLER_RESOLUTION": 7,
            "POOLER_SAMPLING_RATIO": 2,
            "BBOX_REG_WEIGHTS": [10.0, 10.0, 5.0, 5.0],
            "CLS_AGNOSTIC_BBOX_REG": False,
            "SMOOTH_L1_BETA": 1.0 / 9,  # torchvision's box loss
        },
        "ROI_MASK_HEAD": {
            "NAME": "MaskRCNNConvUpsampleHead",
            "NUM_CONV": 4,
            "CONV_DIM": int(m.MASK_HEAD_DIM),
            "NORM": "GN" if gn else "",
            "POOLER_TYPE": "ROIAlign",
            "POOLER_RESOLUTION": 14,
            "POOLER_SAMPLING_RATIO": 2,
            "CLS_AGNOSTIC_MASK": False,
        },
    }
    if gn:
        _gn_check(int(m.MASK_HEAD_DIM), "MODEL.MASK_HEAD_DIM (mask head GroupNorm)")
    if in_model:
        model["MASKFACE"] = {"MIN_SIZE_TEST": int(m.MIN_SIZE), "MAX_SIZE_TEST": int(m.MAX_SIZE)}
    if ssh:
        model["BACKBONE"] = {"NAME": "build_mobilenet_ssh_backbone", "FREEZE_AT": 4 - min(int(m.TRAINABLE_LAYERS), 4)}
        model["MOBILENET_SSH"] = {"NORM": m.NORM, "STRIDE4": stride4}
    else:
        depth = int(backbone[len("resnet"):])
        if gn:
            _gn_check(int(m.FPN_CHANNELS), "MODEL.FPN_CHANNELS (FPN GroupNorm)")
        model["BACKBONE"] = {"NAME": "build_resnet_fpn_backbone", "FREEZE_AT": 5 - int(m.TRAINABLE_LAYERS)}
        model["RESNETS"] = {
            "DEPTH": depth,
            "NORM": m.NORM,  # GN | FrozenBN | BN: the same names in Detectron2
            "STRIDE_IN_1X1": False,  # torchvision ResNets stride in the 3x3 conv
            "NUM_GROUPS": 1,
            "WIDTH_PER_GROUP": 64,
            "RES2_OUT_CHANNELS": 64 if depth < 50 else 256,
            "RES5_DILATION": 1,
            "DEFORM_ON_PER_STAGE": [False, False, False, False],
            "OUT_FEATURES": ["res2", "res3", "res4", "res5"],
        }
        model["FPN"] = {
            "IN_FEATURES": ["res2", "res3", "res4", "res5"],
            "OUT_CHANNELS": int(m.FPN_CHANNELS),
            "NORM": "GN" if gn else "",
            "FUSE_TYPE": "sum",
        }
    s = cfg.SOLVER
    inp = cfg.INPUT
    return {
        "MODEL": model,
        "INPUT": {
            "FORMAT": "RGB",
            "MASK_FORMAT": "bitmask",  # MaskFace files hold RLE masks as well as polygons
            "MIN_SIZE_TRAIN": [int(v) for v in inp.MIN_SIZE_TRAIN],
            "MIN_SIZE_TRAIN_SAMPLING": "choice",
            "MAX_SIZE_TRAIN": int(inp.MAX_SIZE_TRAIN),
            "MIN_SIZE_TEST": 0 if in_model else int(m.MIN_SIZE),  # 0: MaskFaceRCNN resizes (MODEL.MASKFACE)
            "MAX_SIZE_TEST": int(m.MAX_SIZE),
            "RANDOM_FLIP": "horizontal" if float(inp.HFLIP_PROB) > 0 else "none",
        },
        "DATASETS": {"TRAIN": list(cfg.DATASETS.TRAIN), "TEST": list(cfg.DATASETS.TEST)},
        "DATALOADER": {"NUM_WORKERS": int(cfg.DATALOADER.NUM_WORKERS), "FILTER_EMPTY_ANNOTATIONS": False},
        "SOLVER": {
            "IMS_PER_BATCH": int(s.IMS_PER_BATCH),
            "BASE_LR": float(s.BASE_LR),
            "MOMENTUM": float(s.MOMENTUM),
            "WEIGHT_DECAY": float(s.WEIGHT_DECAY),
            "MAX_ITER": int(s.MAX_ITER),
            "STEPS": [int(v) for v in s.STEPS],
            "GAMMA": float(s.GAMMA),
            "WARMUP_ITERS": int(s.WARMUP_ITERS),
            "CHECKPOINT_PERIOD": int(s.CHECKPOINT_PERIOD),
            "CLIP_GRADIENTS": {"ENABLED": float(s.CLIP_GRAD_NORM) > 0, "CLIP_TYPE": "norm",
                               "CLIP_VALUE": float(s.CLIP_GRAD_NORM) or 1.0, "NORM_TYPE": 2.0},
            "AMP": {"ENABLED": bool(s.AMP)},
        },
        "TEST": {"DETECTIONS_PER_IMAGE": int(m.DETECTIONS_PER_IMAGE), "EVAL_PERIOD": int(cfg.TEST.EVAL_PERIOD)},
        "OUTPUT_DIR": cfg.OUTPUT_DIR,
        "SEED": int(cfg.SEED),
        "VERSION": 2,
    }


def _close(a, b, tol=1e-3) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) <= tol for x, y in zip(a, b))


def detectron2_to_maskface_config(d2cfg, base=None) -> Tuple[Any, Dict[str, Any]]:
    """The MaskFace config of a Detectron2 config (a Detectron2 ``CfgNode`` with every key, as
    :func:`~maskface.integrations.detectron2.config.get_detectron2_cfg` gives).

    Args:
        d2cfg: the Detectron2 config.
        base: MaskFace config to start from (the source config saved in a converted checkpoint:
            training keys Detectron2 has no place for survive); default MaskFace's defaults.

    Returns:
        ``(cfg, info)``: the MaskFace ``CfgNode``; ``info["backbone"]``, ``info["flip_input_channels"]``
        (the Detectron2 model reads BGR) and ``info["approximations"]``, a list of the settings MaskFace
        cannot express exactly (outputs then differ slightly; empty for a converted model).

    Raises:
        ConversionError: the architecture has no MaskFace equivalent (the message lists why).
    """
    from maskface.config import get_cfg

    cfg = get_cfg()
    if base is not None:
        cfg.merge_from_dict(base.to_dict() if hasattr(base, "to_dict") else dict(base))
    M = d2cfg.MODEL
    errors: List[str] = []
    approx: List[str] = []

    def need(cond: bool, msg: str) -> bool:
        if not cond:
            errors.append(msg)
        return cond

    need(M.META_ARCHITECTURE in ("GeneralizedRCNN", "MaskFaceRCNN"),
         f"MODEL.META_ARCHITECTURE {M.META_ARCHITECTURE!r}: needs GeneralizedRCNN or MaskFaceRCNN")
    need(M.MASK_ON, "MODEL.MASK_ON is False: MaskFace models always have a mask head")
    need(not M.KEYPOINT_ON, "MODEL.KEYPOINT_ON: MaskFace has no keypoint head")
    need(M.PROPOSAL_GENERATOR.NAME == "RPN", f"MODEL.PROPOSAL_GENERATOR.NAME {M.PROPOSAL_GENERATOR.NAME!r}: needs RPN")
    need(M.ROI_HEADS.NUM_CLASSES == NUM_FACE_CLASSES, f"MODEL.ROI_HEADS.NUM_CLASSES {M.ROI_HEADS.NUM_CLASSES}: needs 1 (face)")
    need(M.ROI_HEADS.NAME in ("StandardROIHeads", "FaceROIHeads"),
         f"MODEL.ROI_HEADS.NAME {M.ROI_HEADS.NAME!r}: needs StandardROIHeads or FaceROIHeads")

    # backbone, norms, feature levels
    name = M.BACKBONE.NAME
    if name == "build_mobilenet_ssh_backbone":
        backbone = "mobilenet_v1_ssh"
        norm = M.MOBILENET_SSH.NORM
        stride4 = bool(M.MOBILENET_SSH.STRIDE4)
        levels_rpn = ["p3", "p4", "p5"] + (["p2"] if stride4 else [])
        levels_roi = (["p2"] if stride4 else []) + ["p3", "p4", "p5"]
        need(M.RPN.HEAD_NAME == "PerLevelRPNHead", f"MODEL.RPN.HEAD_NAME {M.RPN.HEAD_NAME!r}: mobilenet_v1_ssh uses PerLevelRPNHead")
        trainable = 4 - int(M.BACKBONE.FREEZE_AT)
        cfg.MODEL.FPN_CHANNELS = 64
        if need(norm in ("GN", "FrozenBN", "BN"), f"MODEL.MOBILENET_SSH.NORM {norm!r}: needs GN, FrozenBN or BN"):
            need(M.ROI_MASK_HEAD.NORM == ("GN" if norm == "GN" else ""),
                 f"MODEL.ROI_MASK_HEAD.NORM {M.ROI_MASK_HEAD.NORM!r} with backbone norm {norm}: MaskFace puts GN in the "
                 "mask head exactly when the backbone has GN")
    elif name == "build_resnet_fpn_backbone":
        R, F = M.RESNETS, M.FPN
        backbone = f"resnet{R.DEPTH}"
        norm = R.NORM
        stride4 = False
        levels_rpn, levels_roi = ["p2", "p3", "p4", "p5", "p6"], ["p2", "p3", "p4", "p5"]
        need(R.DEPTH in (18, 34, 50, 101), f"MODEL.RESNETS.DEPTH {R.DEPTH}: MaskFace has ResNet-18/34/50/101")
        need(not R.STRIDE_IN_1X1, "MODEL.RESNETS.STRIDE_IN_1X1 True (MSRA ResNets): MaskFace's torchvision ResNets "
                                  "stride in the 3x3 conv")
        need(R.NUM_GROUPS == 1 and R.WIDTH_PER_GROUP == 64, "MODEL.RESNETS.NUM_GROUPS / WIDTH_PER_GROUP: ResNeXt is not in MaskFace")
        need(R.RES5_DILATION == 1 and not any(R.DEFORM_ON_PER_STAGE), "dilated or deformable ResNet stages are not in MaskFace")
        need(list(R.OUT_FEATURES) == ["res2", "res3", "res4", "res5"] and list(F.IN_FEATURES) == list(R.OUT_FEATURES),
             "MODEL.RESNETS.OUT_FEATURES / MODEL.FPN.IN_FEATURES: need res2..res5")
        need(F.FUSE_TYPE == "sum", f"MODEL.FPN.FUSE_TYPE {F.FUSE_TYPE!r}: needs sum")
        need(M.RPN.HEAD_NAME == "StandardRPNHead" and list(M.RPN.CONV_DIMS) == [-1],
             f"MODEL.RPN.HEAD_NAME {M.RPN.HEAD_NAME!r} / CONV_DIMS {list(M.RPN.CONV_DIMS)}: needs StandardRPNHead with one conv")
        trainable = 5 - int(M.BACKBONE.FREEZE_AT)
        cfg.MODEL.FPN_CHANNELS = int(F.OUT_CHANNELS)
        combos = {("GN", "GN", "GN"): "GN", ("FrozenBN", "", ""): "FrozenBN", ("BN", "", ""): "BN"}
        got = (R.NORM, F.NORM, M.ROI_MASK_HEAD.NORM)
        if need(got in combos, f"norms (RESNETS.NORM, FPN.NORM, ROI_MASK_HEAD.NORM) = {got}: MaskFace has "
                               f"{sorted(combos)} (GN everywhere, or a BatchNorm trunk with plain FPN and mask head)"):
            norm = combos[got]
    else:
        errors.append(f"MODEL.BACKBONE.NAME {name!r}: convertible are build_resnet_fpn_backbone and build_mobilenet_ssh_backbone")
        backbone, norm, levels_rpn, levels_roi, trainable, stride4 = "resnet50", "GN", [], [], 5, False

    if errors:
        raise ConversionError("this Detectron2 model has no MaskFace equivalent:\n  " + "\n  ".join(errors))
    need(list(M.RPN.IN_FEATURES) == levels_rpn, f"MODEL.RPN.IN_FEATURES {list(M.RPN.IN_FEATURES)}: needs {levels_rpn}")
    need(list(M.ROI_HEADS.IN_FEATURES) == levels_roi,
         f"MODEL.ROI_HEADS.IN_FEATURES {list(M.ROI_HEADS.IN_FEATURES)}: needs {levels_roi}")

    # input
    fmt = d2cfg.INPUT.FORMAT
    need(fmt in ("RGB", "BGR"), f"INPUT.FORMAT {fmt!r}: needs RGB or BGR")
    mean, std = _pixel_norm(backbone)
    if fmt == "BGR":
        mean, std = mean[::-1], std[::-1]
    need(_close(M.PIXEL_MEAN, mean) and _close(M.PIXEL_STD, std),
         f"MODEL.PIXEL_MEAN / PIXEL_STD {list(M.PIXEL_MEAN)} / {list(M.PIXEL_STD)}: MaskFace's {backbone} normalises "
         f"with {mean} / {std} ({fmt} order)")

    # anchors
    A = M.ANCHOR_GENERATOR
    offset = 0.5 if backbone == "mobilenet_v1_ssh" else 0.0
    need(A.NAME in ("MaskFaceAnchorGenerator", "DefaultAnchorGenerator"),
         f"MODEL.ANCHOR_GENERATOR.NAME {A.NAME!r}: needs MaskFaceAnchorGenerator or DefaultAnchorGenerator")
    need(abs(float(A.OFFSET) - offset) < 1e-9, f"MODEL.ANCHOR_GENERATOR.OFFSET {A.OFFSET}: MaskFace's {backbone} uses {offset}")
    ratios = [list(r) for r in A.ASPECT_RATIOS]
    need(len({tuple(r) for r in ratios}) == 1, f"MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS {ratios}: MaskFace shares one list across levels")
    sizes = [list(s) for s in A.SIZES]
    if len(sizes) == 1 and len(levels_rpn) > 1:
        sizes = sizes * len(levels_rpn)
    need(len(sizes) == len(levels_rpn), f"MODEL.ANCHOR_GENERATOR.SIZES {sizes}: needs one entry per level {levels_rpn}")
    if A.NAME == "DefaultAnchorGenerator":
        approx.append("DefaultAnchorGenerator: MaskFace (torchvision) rounds cell anchors to whole pixels, orders them "
                      "ratio-major and derives strides from the padded image size (differs on P6 when it is not a "
                      "multiple of 64); proposals move by a fraction of a pixel")

    # RPN / heads
    need(list(M.RPN.IOU_LABELS) == [0, -1, 1] and len(M.RPN.IOU_THRESHOLDS) == 2,
         f"MODEL.RPN.IOU_THRESHOLDS / IOU_LABELS {list(M.RPN.IOU_THRESHOLDS)} / {list(M.RPN.IOU_LABELS)}: needs [bg, fg] / [0, -1, 1]")
    need(_close(M.RPN.BBOX_REG_WEIGHTS, [1, 1, 1, 1], 0), f"MODEL.RPN.BBOX_REG_WEIGHTS {list(M.RPN.BBOX_REG_WEIGHTS)}: needs 1, 1, 1, 1")
    H, K = M.ROI_BOX_HEAD, M.ROI_MASK_HEAD
    need(H.NAME == "FastRCNNConvFCHead" and H.NUM_CONV == 0 and H.NUM_FC == 2 and H.NORM == "",
         "MODEL.ROI_BOX_HEAD: needs FastRCNNConvFCHead with NUM_CONV 0, NUM_FC 2, no norm (MaskFace's two-FC head)")
    need(not H.CLS_AGNOSTIC_BBOX_REG, "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG: MaskFace regresses per class")
    need(_close(H.BBOX_REG_WEIGHTS, [10, 10, 5, 5], 0), f"MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS {list(H.BBOX_REG_WEIGHTS)}: needs 10, 10, 5, 5")
    need(H.POOLER_RESOLUTION == 7 and K.POOLER_RESOLUTION == 14, "RoI pooler resolutions: MaskFace pools 7x7 (box) and 14x14 (mask)")
    need(K.NAME == "MaskRCNNConvUpsampleHead" and K.NUM_CONV == 4,
         "MODEL.ROI_MASK_HEAD: needs MaskRCNNConvUpsampleHead with NUM_CONV 4")
    for key, head in (("ROI_BOX_HEAD", H), ("ROI_MASK_HEAD", K)):
        if head.POOLER_TYPE != "ROIAlign":
            need(head.POOLER_TYPE == "ROIAlignV2", f"MODEL.{key}.POOLER_TYPE {head.POOLER_TYPE!r}: needs ROIAlign(V2)")
            approx.append(f"MODEL.{key}.POOLER_TYPE ROIAlignV2 (aligned=True): MaskFace's RoIAlign is aligned=False "
                          "(half-pixel shift of the pooled features)")
        if head.POOLER_SAMPLING_RATIO != 2:
            approx.append(f"MODEL.{key}.POOLER_SAMPLING_RATIO {head.POOLER_SAMPLING_RATIO}: MaskFace samples 2 points per bin")
    if abs(float(M.RPN.NMS_THRESH) - 0.7) > 1e-9:
        approx.append(f"MODEL.RPN.NMS_THRESH {M.RPN.NMS_THRESH}: MaskFace's RPN uses 0.7")
    if float(M.PROPOSAL_GENERATOR.MIN_SIZE) > 1e-3:
        approx.append(f"MODEL.PROPOSAL_GENERATOR.MIN_SIZE {M.PROPOSAL_GENERATOR.MIN_SIZE}: MaskFace drops proposals under 0.001 px")
    if errors:
        raise ConversionError("this Detectron2 model has no MaskFace equivalent:\n  " + "\n  ".join(errors))

    m = cfg.MODEL
    m.BACKBONE = backbone
    m.NORM = norm
    m.TRAINABLE_LAYERS = trainable
    base_sizes = sizes[:-1] if stride4 else sizes  # the stride-4 level is the last RPN level
    m.ANCHOR_SIZES = [s[0] if len(s) == 1 else s for s in base_sizes]
    m.STRIDE4_ANCHORS = list(sizes[-1]) if stride4 else []
    m.ANCHOR_RATIOS = [float(r) for r in ratios[0]]
    m.RPN_IOU_THRESHOLDS = [float(t) for t in M.RPN.IOU_THRESHOLDS]
    sizes_from = M.MASKFACE if M.META_ARCHITECTURE == "MaskFaceRCNN" else d2cfg.INPUT
    m.MIN_SIZE = int(sizes_from.MIN_SIZE_TEST)
    m.MAX_SIZE = int(sizes_from.MAX_SIZE_TEST)
    m.RPN_PRE_NMS_TOP_N_TRAIN = int(M.RPN.PRE_NMS_TOPK_TRAIN)
    m.RPN_PRE_NMS_TOP_N_TEST = int(M.RPN.PRE_NMS_TOPK_TEST)
    m.RPN_POST_NMS_TOP_N_TRAIN = int(M.RPN.POST_NMS_TOPK_TRAIN)
    m.RPN_POST_NMS_TOP_N_TEST = int(M.RPN.POST_NMS_TOPK_TEST)
    m.BOX_BATCH_SIZE_PER_IMAGE = int(M.ROI_HEADS.BATCH_SIZE_PER_IMAGE)
    m.BOX_HEAD_DIM = int(H.FC_DIM)
    m.MASK_HEAD_DIM = int(K.CONV_DIM)
    m.SCORE_THRESH = float(M.ROI_HEADS.SCORE_THRESH_TEST)
    m.NMS_THRESH = float(M.ROI_HEADS.NMS_THRESH_TEST)
    m.DETECTIONS_PER_IMAGE = int(d2cfg.TEST.DETECTIONS_PER_IMAGE)
    if base is None:  # no MaskFace source config: take what Detectron2's config says about training
        S = d2cfg.SOLVER
        cfg.INPUT.MIN_SIZE_TRAIN = [int(v) for v in d2cfg.INPUT.MIN_SIZE_TRAIN]
        cfg.INPUT.MAX_SIZE_TRAIN = int(d2cfg.INPUT.MAX_SIZE_TRAIN)
        cfg.INPUT.HFLIP_PROB = 0.5 if d2cfg.INPUT.RANDOM_FLIP == "horizontal" else 0.0
        cfg.INPUT.COLOR_JITTER = 0.0
        for mf_key, value in (("IMS_PER_BATCH", int(S.IMS_PER_BATCH)), ("BASE_LR", float(S.BASE_LR)),
                              ("MOMENTUM", float(S.MOMENTUM)), ("WEIGHT_DECAY", float(S.WEIGHT_DECAY)),
                              ("MAX_ITER", int(S.MAX_ITER)), ("STEPS", [int(v) for v in S.STEPS]),
                              ("GAMMA", float(S.GAMMA)), ("WARMUP_ITERS", int(S.WARMUP_ITERS)),
                              ("CHECKPOINT_PERIOD", int(S.CHECKPOINT_PERIOD)), ("AMP", bool(S.AMP.ENABLED))):
            cfg.SOLVER[mf_key] = value
        cfg.SOLVER.CLIP_GRAD_NORM = float(S.CLIP_GRADIENTS.CLIP_VALUE) if S.CLIP_GRADIENTS.ENABLED else 0.0
        cfg.DATASETS.TRAIN = [str(d) for d in d2cfg.DATASETS.TRAIN]
        cfg.DATASETS.TEST = [str(d) for d in d2cfg.DATASETS.TEST]
        cfg.DATALOADER.NUM_WORKERS = int(d2cfg.DATALOADER.NUM_WORKERS)
        cfg.TEST.EVAL_PERIOD = int(d2cfg.TEST.EVAL_PERIOD)
        cfg.SEED = int(d2cfg.SEED) if int(d2cfg.SEED) >= 0 else cfg.SEED
    return cfg, {"backbone": backbone, "flip_input_channels": fmt == "BGR", "approximations": approx}


# --- files ---------------------------------------------------------------------------------------


def load_maskface_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The model state dict of a MaskFace checkpoint (``{"model": state}`` or a bare state dict)."""
    from maskface.utils.checkpoint import load_checkpoint_file

    data = load_checkpoint_file(path)
    state = data.get("model", data)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: expected a MaskFace checkpoint ({{'model': state_dict}}), got keys {sorted(data)[:8]}")
    if is_detectron2_state(state):
        raise ConversionError(f"{path}: this is a Detectron2 checkpoint (keys such as 'proposal_generator.*'); "
                              "convert it with --to maskface")
    return state


def is_detectron2_state(state: Dict[str, Any]) -> bool:
    return any(k.startswith(("proposal_generator.", "backbone.bottom_up.")) for k in state)


def save_detectron2_checkpoint(path: str, state: Dict[str, torch.Tensor], extras: Optional[Dict[str, Any]] = None) -> str:
    """Write a Detectron2 checkpoint: ``.pth`` (``torch.save({"model": state, ...})``) or ``.pkl``
    (Detectron2's model-zoo format: numpy arrays, ``"__author__"``). ``extras`` go under
    :data:`EXTRA_KEY`. Written atomically; returns ``path``."""
    from maskface.utils.io import atomic_write

    if not path.endswith((".pth", ".pkl")):
        raise ValueError(f"Detectron2 checkpoint path must end in .pth or .pkl, got {path!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data: Dict[str, Any] = {"model": state, "__author__": "MaskFace"}
    if extras:
        data[EXTRA_KEY] = extras
    with atomic_write(path, "wb") as f:
        if path.endswith(".pkl"):
            pickle.dump(_to_numpy(data), f, protocol=4)
        else:
            torch.save(data, f)
    return path


def _to_numpy(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    return obj


def _to_torch(obj):
    import numpy as np

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    return obj


def load_detectron2_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """``(state, extras)`` of a Detectron2 checkpoint (``.pth`` or ``.pkl``, e.g. ``model_final.pth``
    of a Detectron2 training run); ``extras`` is ``{}`` unless MaskFace wrote it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Detectron2 checkpoint not found: {path}")
    try:
        if path.endswith(".pkl"):
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1")
        else:
            data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ConversionError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a dict checkpoint, got {type(data).__name__}")
    state = data.get("model", data)
    state = _to_torch(state)
    if not is_detectron2_state(state):
        raise ConversionError(f"{path}: not a Detectron2 detection checkpoint (no 'proposal_generator.*' or "
                              "'backbone.bottom_up.*' keys); a MaskFace checkpoint converts with --to detectron2")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return state, _to_torch(data.get(EXTRA_KEY) or {})


def dump_detectron2_yaml(config: Dict[str, Any], header: str = "") -> str:
    """YAML text of a Detectron2 config dict (block style, keys in Detectron2's order)."""
    import yaml

    class Dumper(yaml.SafeDumper):  # mappings in block style, lists of scalars on one line
        pass

    def seq(dumper, data):
        flat = all(not isinstance(v, (list, tuple, dict)) for v in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    Dumper.add_representer(list, seq)
    Dumper.add_representer(tuple, seq)
    text = yaml.dump(config, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=110)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text


# --- whole models --------------------------------------------------------------------------------


def maskface_to_detectron2(cfg, state: Dict[str, torch.Tensor], weights: str = "", source: str = "",
                           resize: str = "maskface"):
    """MaskFace config + state dict -> ``(detectron2_config_dict, detectron2_state, extras)``
    (``resize`` as in :func:`maskface_to_detectron2_config`).

    ``extras`` (to store under :data:`EXTRA_KEY`) hold the background rows and the source config,
    so :func:`detectron2_to_maskface` restores the original exactly.
    """
    backbone = cfg.MODEL.BACKBONE
    d2cfg = maskface_to_detectron2_config(cfg, weights=weights, resize=resize)
    d2_state, background = maskface_to_detectron2_state(state, backbone)
    extras = {"format_version": FORMAT_VERSION, "background": background, "config": cfg.dump(),
              "source": source, "keys": list(state)}
    return d2cfg, d2_state, extras


def detectron2_to_maskface(d2cfg, d2_state: Dict[str, torch.Tensor], extras: Optional[Dict[str, Any]] = None):
    """Detectron2 config (full ``CfgNode``) + state dict -> ``(maskface_cfg, state, info)``.

    With ``extras`` written by :func:`maskface_to_detectron2`, the source config's training keys,
    the background rows and the key order come back, so config and weights equal the original.
    ``info`` as in :func:`detectron2_to_maskface_config`.
    """
    from maskface.config import CfgNode, get_cfg
    from maskface.modeling.face_rcnn import build_face_rcnn

    extras = extras or {}
    base = None
    if extras.get("config"):
        import yaml

        base = get_cfg()
        base.merge_from_dict(yaml.safe_load(extras["config"]))
    cfg, info = detectron2_to_maskface_config(d2cfg, base=base)
    built = cfg.clone()
    built.MODEL.PRETRAINED = ""
    expected = build_face_rcnn(built).state_dict()
    state = detectron2_to_maskface_state(d2_state, expected, info["backbone"], extras.get("background"),
                                         flip_input_channels=info["flip_input_channels"])
    order = extras.get("keys")
    if order and set(order) == set(state):
        state = {k: state[k] for k in order}
    return CfgNode(copy.deepcopy(cfg.to_dict())), state, info
