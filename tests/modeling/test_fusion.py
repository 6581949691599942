"""Inference speed-ups of the detector keep its outputs: frozen norms folded into convs,
channels-last layout, and the RPN's objectness threshold at inference."""

import copy

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from maskface.config import get_cfg
from maskface.modeling.face_rcnn import build_face_rcnn
from maskface.modeling.fusion import fold_frozen_norms
from norm_testing import set_random_norm_stats


def _lite(opts=()):
    cfg = get_cfg()
    cfg.merge_from_file("configs/maskface_MV1_SSH_lite.yaml")
    cfg.merge_from_list(["MODEL.MIN_SIZE", "96", "MODEL.MAX_SIZE", "128", *opts])
    torch.manual_seed(0)
    model = set_random_norm_stats(build_face_rcnn(cfg).eval(), seed=1)  # as in the trained file
    model.roi_heads.score_thresh = 0.0
    return model


def test_optimize_for_inference_keeps_the_detections():
    model = _lite()
    fast = copy.deepcopy(model).optimize_for_inference()
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fast.modules())
    img = [torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(2))]
    with torch.no_grad():
        a, b = model.detect_unpasted(img)[0], fast.detect_unpasted(img)[0]
        feats_a = model.backbone(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)))
        feats_b = fast.backbone(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)))
    assert len(a["boxes"]) == len(b["boxes"]) > 0
    assert torch.allclose(a["boxes"], b["boxes"], atol=1e-3) and torch.allclose(a["scores"], b["scores"], atol=1e-4)
    assert torch.allclose(a["masks"], b["masks"], atol=1e-4)
    assert all(torch.allclose(feats_a[k], feats_b[k], atol=1e-4) for k in feats_a)
    with pytest.raises(RuntimeError, match="eval"):
        _lite().train().optimize_for_inference()


def test_fold_skips_norms_that_do_not_follow_a_conv():
    seq = torch.nn.Sequential(torch.nn.ReLU(), FrozenBatchNorm2d(4), torch.nn.Conv2d(4, 4, 1), torch.nn.GroupNorm(2, 4))
    assert fold_frozen_norms(seq) == 0
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert fold_frozen_norms(seq) == 0  # a BatchNorm2d in training mode still learns its statistics
    seq.eval()
    x = torch.rand(1, 3, 8, 8)
    ref = seq(x)
    assert fold_frozen_norms(seq) == 1 and isinstance(seq[1], torch.nn.Identity)
    assert torch.allclose(seq(x), ref, atol=1e-5)


def test_rpn_objectness_threshold_keeps_the_best_proposals_only_at_inference():
    model = _lite(["MODEL.RPN_SCORE_THRESH_TEST", "0.9999"])
    rpn = model.rpn
    from torchvision.models.detection.image_list import ImageList

    img = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        feats = model.backbone(img)
        props, _ = rpn(ImageList(img, [(96, 128)]), feats)
        rpn.score_thresh_test = 0.0
        all_props, _ = rpn(ImageList(img, [(96, 128)]), feats)
    assert len(props[0]) == rpn.MIN_PROPOSALS_TEST < len(all_props[0])  # the best 16 always kept
    assert torch.equal(props[0], all_props[0][: rpn.MIN_PROPOSALS_TEST])  # in score order
    with pytest.raises(ValueError, match="score_thresh_test"):
        build_face_rcnn(_cfg_with(["MODEL.RPN_SCORE_THRESH_TEST", "1.5"]))


def _cfg_with(opts):
    cfg = get_cfg()
    cfg.merge_from_file("configs/maskface_MV1_SSH_lite.yaml")
    cfg.merge_from_list(list(opts))
    return cfg
