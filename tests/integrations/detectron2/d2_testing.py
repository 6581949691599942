"""Helpers of the Detectron2 integration tests: small MaskFace detectors with *every* tensor random
(norm statistics, background rows, zero-initialised residual branches: a conversion that drops or
misplaces one shows) and their configs. Imported as ``from d2_testing import ...`` (this folder is put
on ``sys.path`` by its conftest.py)."""

import torch

#: MaskFace overrides: tiny ResNet-18-FPN (GroupNorm, 32 channels) and tiny MobileNet-SSH heads
RESNET_OPTS = ["MODEL.BACKBONE", "resnet18", "MODEL.NORM", "GN", "MODEL.FPN_CHANNELS", "32", "MODEL.BOX_HEAD_DIM", "64",
               "MODEL.MASK_HEAD_DIM", "32", "MODEL.MIN_SIZE", "96", "MODEL.MAX_SIZE", "160",
               "MODEL.RPN_PRE_NMS_TOP_N_TEST", "200", "MODEL.RPN_POST_NMS_TOP_N_TEST", "100",
               "MODEL.SCORE_THRESH", "0.001", "MODEL.DETECTIONS_PER_IMAGE", "30", "MODEL.DEVICE", "cpu"]
SSH_CONFIG = "configs/maskface_MV1_SSH_lite.yaml"
SSH_OPTS = ["MODEL.BOX_HEAD_DIM", "64", "MODEL.MASK_HEAD_DIM", "16", "MODEL.MIN_SIZE", "96", "MODEL.MAX_SIZE", "160",
            "MODEL.SCORE_THRESH", "0.001", "MODEL.DETECTIONS_PER_IMAGE", "30", "MODEL.DEVICE", "cpu"]


def maskface_cfg(kind: str, extra=()):
    """A MaskFace config: ``resnet`` (tiny ResNet-18-FPN GN), ``resnet_frozenbn``, ``ssh`` or ``ssh_s4``
    (with the stride-4 level)."""
    from pathlib import Path

    from maskface.config import get_cfg

    cfg = get_cfg()
    if kind in ("ssh", "ssh_s4"):
        cfg.merge_from_file(str(Path(__file__).resolve().parents[3] / SSH_CONFIG))
        cfg.merge_from_list(SSH_OPTS + (["MODEL.STRIDE4_ANCHORS", "[8, 12]"] if kind == "ssh_s4" else []))
    else:
        cfg.merge_from_list(RESNET_OPTS)
        if kind == "resnet_frozenbn":
            cfg.merge_from_list(["MODEL.NORM", "FrozenBN", "MODEL.TRAINABLE_LAYERS", "3"])
    cfg.merge_from_list(list(extra))
    return cfg


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter and float buffer random (variances positive), predictors scaled so scores
    spread over 0..1, boxes move and mask probabilities stay clear of 0.5: no tensor keeps an initial
    value a conversion could get right by luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 1:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith(("weight", "running_var")) else 0.0))
            else:
                fan_in = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
        heads = model.roi_heads
        heads.box_predictor.cls_score.weight.mul_(8)
        heads.box_predictor.bbox_pred.weight.mul_(2)
        heads.mask_predictor.mask_fcn_logits.weight.mul_(10)  # decisive masks: no pixel sits at exactly 0.5
    return model.eval()


def random_maskface_model(kind: str, seed: int = 0, extra=()):
    """``(cfg, model)``: a randomised MaskFace detector of ``kind`` (see :func:`maskface_cfg`)."""
    from maskface.modeling.face_rcnn import build_face_rcnn

    cfg = maskface_cfg(kind, extra)
    return cfg, randomize_(build_face_rcnn(cfg), seed)
