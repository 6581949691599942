"""The face-trained MobileNetV1-0.25 + FPN + SSH backbone: the public RetinaFace file loads by
name, and the RPN built from its heads reproduces RetinaFace's own scores and boxes (computed
here independently: BGR input minus its mean, softmax, SSD decoding with variances 0.1 / 0.2,
priors centred on the cells). Also the sha256 check and the clear errors on a missing file."""

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from maskface.config import get_cfg, setup_cfg
from maskface.modeling.face_rcnn import build_face_rcnn
from maskface.modeling.mobilenet_ssh import (
    KNOWN_WEIGHTS,
    MobileNetSSHBackbone,
    PerLevelRPNHead,
    check_known_file,
)

from shared_weights import shared_weight  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "maskface_MV1_SSH_lite.yaml"


def _cfg(*opts):
    return setup_cfg(get_cfg(), str(CONFIG), ["MODEL.DEVICE", "cpu", *opts])


def _retinaface_reference(state, image_rgb):
    """RetinaFace's own output on ``image_rgb`` (H x W x 3 uint8): (face prob (A,), boxes (A, 4) xyxy)."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    bb = MobileNetSSHBackbone(FrozenBatchNorm2d).eval()
    own = {k: v for k, v in state.items() if k.startswith(("body.", "fpn.", "ssh")) and "num_batches" not in k}
    bb.load_state_dict(own, strict=True)  # the file's BGR-ordered first conv, untouched
    bgr = image_rgb[..., ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32)
    x = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]
    feats = list(bb(x).values())
    h, w = image_rgb.shape[:2]
    scores, boxes = [], []
    for k, (f, sizes, stride) in enumerate(zip(feats, ((16, 32), (64, 128), (256, 512)), (8, 16, 32))):
        cls = torch.nn.functional.conv2d(f, state[f"ClassHead.{k}.conv1x1.weight"], state[f"ClassHead.{k}.conv1x1.bias"])
        loc = torch.nn.functional.conv2d(f, state[f"BboxHead.{k}.conv1x1.weight"], state[f"BboxHead.{k}.conv1x1.bias"])
        cls = cls.permute(0, 2, 3, 1).reshape(-1, 2).softmax(-1)[:, 1]
        loc = loc.permute(0, 2, 3, 1).reshape(-1, 4)
        fh, fw = f.shape[-2:]
        priors = [[(j + 0.5) * stride, (i + 0.5) * stride, s, s] for i in range(fh) for j in range(fw) for s in sizes]
        p = torch.tensor(priors)
        c = p[:, :2] + loc[:, :2] * 0.1 * p[:, 2:]
        wh = p[:, 2:] * torch.exp(loc[:, 2:] * 0.2)
        scores.append(cls)
        boxes.append(torch.cat([c - wh / 2, c + wh / 2], 1))
    return torch.cat(scores), torch.cat(boxes)


@torch.no_grad()
def test_rpn_from_retinaface_file_reproduces_retinaface():
    from skimage import data

    retina = shared_weight("retinaface_mobilenet0.25_wider.pth")
    image = data.astronaut()[:320, 96:416].copy()  # 320 x 320: the model does not resize it
    model = build_face_rcnn(_cfg("MODEL.PRETRAINED", str(retina), "MODEL.MIN_SIZE", "320", "MODEL.MAX_SIZE", "320")).eval()
    state = torch.load(retina, map_location="cpu")
    ref_scores, ref_boxes = _retinaface_reference(state, image)

    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    images, _ = model.transform([x])
    assert tuple(images.tensors.shape[-2:]) == (320, 320)
    feats = model.backbone(images.tensors)
    logits, deltas = model.rpn.head(list(feats.values()))
    anchors = model.rpn.anchor_generator(images, list(feats.values()))[0]
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    obj, reg = concat_box_prediction_layers(logits, deltas)
    boxes = model.rpn.box_coder.decode(reg, [anchors]).reshape(-1, 4)
    assert obj.shape[0] == ref_scores.shape[0] == 2 * (40 * 40 + 20 * 20 + 10 * 10)
    torch.testing.assert_close(obj.sigmoid().reshape(-1), ref_scores, atol=2e-4, rtol=1e-3)
    sure = ref_scores > 0.5  # the faces it is confident of: the same boxes to a fraction of a pixel
    assert sure.sum() >= 2
    torch.testing.assert_close(boxes[sure], ref_boxes[sure], atol=0.05, rtol=1e-4)
    # and the astronaut's face is among them
    best = boxes[obj.reshape(-1).argmax()]
    assert 60 < float(best[0]) < 110 and 30 < float(best[1]) < 90 and float(best[2] - best[0]) > 60


def test_model_shapes_losses_and_frozen_parts():
    model = build_face_rcnn(_cfg("MODEL.TRAINABLE_LAYERS", "1"))
    assert isinstance(model.rpn.head, PerLevelRPNHead) and len(model.rpn.head.cls_logits) == 3
    trainable = {n.split(".")[0] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"fpn", "ssh1", "ssh2", "ssh3"}
    model.train()
    img = torch.rand(3, 160, 192)
    masks = torch.zeros(2, 160, 192, dtype=torch.uint8)
    masks[0, 20:80, 30:80] = 1
    target = {
        "boxes": torch.tensor([[30.0, 20.0, 80.0, 80.0], [120.0, 100.0, 132.0, 114.0]]),
        "labels": torch.ones(2, dtype=torch.int64),
        "masks": masks,
        "has_mask": torch.tensor([True, False]),
    }
    losses = model([img], [target])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_heads.mask_head[0][0].weight.grad is not None
    model.eval()
    with torch.no_grad():
        (out,) = model([img])
    assert out["masks"].shape[1:] == (1, 160, 192)


def test_fpn_channels_and_trainable_layers_are_checked():
    with pytest.raises(ValueError, match="FPN_CHANNELS 64"):
        build_face_rcnn(_cfg("MODEL.FPN_CHANNELS", "128"))
    from torchvision.ops.misc import FrozenBatchNorm2d

    with pytest.raises(ValueError, match="trainable_layers"):
        MobileNetSSHBackbone(FrozenBatchNorm2d, trainable_layers=7)


def test_missing_and_altered_files_give_clear_errors(tmp_path):
    retina = shared_weight("retinaface_mobilenet0.25_wider.pth")
    with pytest.raises(FileNotFoundError, match="Nothing is downloaded|no such local file"):
        build_face_rcnn(_cfg("MODEL.PRETRAINED", str(tmp_path / "retinaface_mobilenet0.25_wider.pth")))
    altered = tmp_path / "retinaface_mobilenet0.25_wider.pth"
    shutil.copyfile(retina, altered)
    with open(altered, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="sha256 .* differs"):
        build_face_rcnn(_cfg("MODEL.PRETRAINED", str(altered)))
    check_known_file(str(retina))  # the published file passes
    assert os.path.basename(retina) in KNOWN_WEIGHTS
    renamed = tmp_path / "my_copy.pth"  # unknown names load without a check
    shutil.copyfile(retina, renamed)
    model = build_face_rcnn(_cfg("MODEL.PRETRAINED", str(renamed)))
    w = torch.load(retina, map_location="cpu")["body.stage1.0.0.weight"]
    assert math.isclose(float((model.backbone.body.stage1[0][0].weight.detach() - w.flip(1)).abs().max()), 0.0)


def test_stride4_level_shapes_training_and_loading():
    """MODEL.STRIDE4_ANCHORS adds a fourth level at stride 4 (64 channels): its anchors are
    matched to tiny faces, RoIAlign pools faces under 56 px from it, it trains with the rest of
    the backbone frozen, and a checkpoint without it loads into the three RetinaFace levels
    unchanged."""
    base = build_face_rcnn(_cfg()).eval()
    model = build_face_rcnn(_cfg("MODEL.STRIDE4_ANCHORS", "[8, 12]", "MODEL.TRAINABLE_LAYERS", "0"))
    assert len(model.rpn.head.cls_logits) == 4 and model.rpn.head.cls_logits[3].in_channels == 64
    assert model.backbone.roi_feature_names == ["s4", "0", "1", "2"]
    trainable = {n.split(".")[0] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"stride4"}
    # untrained level: 1 % objectness, not 50 %
    assert torch.sigmoid(model.rpn.head.cls_logits[3].bias).max() < 0.02

    img = torch.rand(3, 128, 160)
    feats = model.backbone(img[None])
    assert list(feats) == ["0", "1", "2", "s4"]
    assert tuple(feats["s4"].shape) == (1, 64, 32, 40) and tuple(feats["0"].shape) == (1, 64, 16, 20)
    # RoIAlign: a 20 px box is pooled from the stride-4 map, a 60 px one from the stride-8 map (as
    # without the stride-4 map), a 120 px one too
    pool = model.roi_heads.box_roi_pool
    for side, name in ((20, "s4"), (60, "0"), (120, "0")):
        box = torch.tensor([[4.0, 4.0, 4.0 + side, 4.0 + side]])
        got = pool(feats, [box], [(128, 160)])
        from torchvision.ops import roi_align

        level = feats[name]
        ref = roi_align(level, [box], (7, 7), spatial_scale=level.shape[-1] / 160, sampling_ratio=2)
        torch.testing.assert_close(got, ref)
    # the other levels are exactly those of the model without the stride-4 level
    missing = set(model.state_dict()) - set(base.state_dict())
    assert missing and all(k.startswith(("backbone.stride4.", "rpn.head.cls_logits.3", "rpn.head.bbox_pred.3")) for k in missing)
    model.load_state_dict(base.state_dict(), strict=False)
    with torch.no_grad():
        ref = base.backbone(img[None])
        got = model.backbone(img[None])
    for k in ("0", "1", "2"):
        torch.testing.assert_close(got[k], ref[k])

    # an 8 px face is matched to the stride-4 level's anchors
    images, _ = model.transform([img])
    anchors = model.rpn.anchor_generator(images, list(feats.values()))[0]
    n3 = 2 * (16 * 20 + 8 * 10 + 4 * 5)
    face = torch.tensor([[60.0, 40.0, 68.0, 48.0]])
    from torchvision.ops import box_iou

    assert int(box_iou(face, anchors).argmax()) >= n3

    model.train()
    target = {"boxes": face, "labels": torch.ones(1, dtype=torch.int64),
              "masks": torch.zeros(1, 128, 160, dtype=torch.uint8), "has_mask": torch.tensor([False])}
    losses = model([img], [target])
    sum(losses.values()).backward()
    assert model.backbone.stride4.lateral.weight.grad is not None
    assert model.rpn.head.cls_logits[3].weight.grad.abs().sum() > 0
    assert model.backbone.body.stage1[0][0].weight.grad is None

    with pytest.raises(ValueError, match="STRIDE4_ANCHORS is for the mobilenet_v1_ssh"):
        build_face_rcnn(setup_cfg(get_cfg(), None, ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE", "resnet18",
                                                     "MODEL.STRIDE4_ANCHORS", "[8]"]))
