"""MaskFace's Detectron2 modules (maskface/integrations/detectron2/modeling.py): torchvision's anchors,
the MobileNet-SSH backbone, the per-level RPN head and FaceROIHeads' mask loss for box-only faces."""

import pytest
import torch
from d2_testing import maskface_cfg

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402
from detectron2.modeling.anchor_generator import build_anchor_generator  # noqa: E402
from detectron2.structures import BitMasks, Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.models.detection.image_list import ImageList  # noqa: E402

from maskface.integrations.detectron2.config import get_detectron2_cfg  # noqa: E402
from maskface.integrations.detectron2.convert import maskface_to_detectron2_config  # noqa: E402
from maskface.modeling.mobilenet_ssh import CenteredAnchorGenerator  # noqa: E402


def _d2cfg(kind, opts=()):
    return get_detectron2_cfg(maskface_to_detectron2_config(maskface_cfg(kind)), ["MODEL.DEVICE", "cpu", *opts])


@pytest.mark.parametrize("kind", ["resnet", "ssh"])
def test_anchors_are_torchvision_anchors(kind):
    cfg = _d2cfg(kind)
    model = build_model(cfg)
    shapes = model.backbone.output_shape()
    levels = cfg.MODEL.RPN.IN_FEATURES
    d2_gen = build_anchor_generator(cfg, [shapes[f] for f in levels])
    h, w = 96, 160  # padded size; P6 of a 96-px-high input: 2 cells, torchvision's stride 48, not 64
    feats = [torch.zeros(1, 1, -(-h // shapes[f].stride), -(-w // shapes[f].stride)) for f in levels]
    if kind == "ssh":
        tv_gen = CenteredAnchorGenerator(((16, 32), (64, 128), (256, 512)), ((1.0,),) * 3)
    else:
        tv_gen = AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((1.0, 1.3),) * 5)
    tv = tv_gen(ImageList(torch.zeros(1, 3, h, w), [(h, w)]), feats)[0]
    d2 = torch.cat([b.tensor for b in d2_gen(feats)])
    assert d2.shape == tv.shape and torch.equal(d2, tv)
    stock = get_detectron2_cfg(cfg, ["MODEL.ANCHOR_GENERATOR.NAME", "DefaultAnchorGenerator"])
    d2_stock = torch.cat([b.tensor for b in build_anchor_generator(stock, [shapes[f] for f in levels])(feats)])
    assert torch.equal(d2_stock, tv) == (kind == "ssh")  # Detectron2's own differs for ratio 1.3 and P6


def test_mobilenet_ssh_backbone_and_per_level_head():
    cfg = _d2cfg("ssh", ["MODEL.BACKBONE.FREEZE_AT", "2"])
    model = build_model(cfg)
    out = model.backbone(torch.zeros(1, 3, 96, 160))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"p3": (1, 64, 12, 20), "p4": (1, 64, 6, 10), "p5": (1, 64, 3, 5)}
    assert model.backbone.size_divisibility == 32
    frozen = {n.split(".")[1] for n, p in model.backbone.named_parameters() if not p.requires_grad}
    trained = {n.split(".")[1] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert frozen == {"stage1", "stage2"} and "stage3" in trained  # FREEZE_AT 2: the two lowest stages
    head = model.proposal_generator.rpn_head
    logits, deltas = head(list(out.values()))
    assert [tuple(x.shape) for x in logits] == [(1, 2, 12, 20), (1, 2, 6, 10), (1, 2, 3, 5)]
    assert [x.shape[1] for x in deltas] == [8, 8, 8]
    assert head.objectness_logits[0].weight is not head.objectness_logits[1].weight  # one head per level


def _batch(has_mask: bool):
    inst = Instances((96, 160))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 10.0, 60.0, 60.0], [90.0, 30.0, 130.0, 80.0]]))
    inst.gt_classes = torch.zeros(2, dtype=torch.int64)
    masks = torch.zeros(2, 96, 160, dtype=torch.bool)
    masks[0, 15:55, 25:55] = masks[1, 35:75, 95:125] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_has_mask = torch.tensor([has_mask, has_mask])
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.randint(0, 255, (3, 96, 160), generator=g).float(), "instances": inst}]


def test_face_roi_heads_give_box_only_faces_no_mask_loss():
    model = build_model(_d2cfg("resnet"))
    model.train()
    predictor = model.roi_heads.mask_head.predictor.weight
    with EventStorage():
        torch.manual_seed(0)
        masked = model(_batch(True))
        masked["loss_mask"].backward()
        assert masked["loss_mask"] > 0 and predictor.grad.abs().sum() > 0
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        box_only = model(_batch(False))
        sum(box_only.values()).backward()
    assert box_only["loss_mask"] == 0 and box_only["loss_box_reg"] > 0
    assert predictor.grad is None or predictor.grad.abs().sum() == 0


def test_maskface_rcnn_resizes_as_maskface_and_refuses_a_second_resize():
    cfg = _d2cfg("ssh")
    assert cfg.MODEL.META_ARCHITECTURE == "MaskFaceRCNN" and cfg.INPUT.MIN_SIZE_TEST == 0
    model = build_model(cfg).eval()
    inputs = [{"image": torch.rand(3, 200, 120) * 255}]  # 200 > MAX_SIZE 160: shrunk, then min side 96 capped
    images = model.preprocess_image(inputs)
    assert images.image_sizes == [(160, 96)] and inputs[0]["height"] == 200 and inputs[0]["width"] == 120
    with pytest.raises(ValueError, match="INPUT.MIN_SIZE_TEST 0"):
        build_model(get_detectron2_cfg(cfg, ["INPUT.MIN_SIZE_TEST", "96"]))
