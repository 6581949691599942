"""The face Mask R-CNN: losses in training, output format in eval, box-only faces (no mask
loss), crowd regions, backbones, and initialisation from local torchvision weight files."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector_testing import tiny_cfg  # noqa: E402

from maskface.modeling.backbone import build_backbone  # noqa: E402
from maskface.modeling.face_rcnn import FaceRCNN, build_face_rcnn, load_pretrained, resolve_pretrained  # noqa: E402

H, W = 96, 128


def _target(boxes, has_mask, crowd=()):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    masks = torch.zeros((len(boxes), H, W), dtype=torch.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
        masks[i, y0:y1, x0:x1] = 1
    return {
        "boxes": boxes,
        "labels": torch.ones(len(boxes), dtype=torch.int64),
        "masks": masks,
        "has_mask": torch.tensor(has_mask, dtype=torch.bool),
        "crowd_boxes": torch.tensor(crowd, dtype=torch.float32).reshape(-1, 4),
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    return build_face_rcnn(tiny_cfg(tmp_path_factory.mktemp("cfg")))


def _grad_norm(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_training_losses_are_finite_and_named(model):
    model.train()
    torch.manual_seed(1)
    images = [torch.rand(3, H, W), torch.rand(3, H, W)]
    targets = [_target([[10, 10, 50, 60], [60, 20, 110, 80]], [True, False]), _target([], [])]
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(k.startswith("loss_") for k in losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"] > 0


def test_box_only_faces_train_boxes_but_give_no_mask_loss(model):
    model.train()
    model.zero_grad()
    torch.manual_seed(2)
    images = [torch.rand(3, H, W)]
    losses = model(images, [_target([[10, 10, 50, 60], [60, 20, 110, 80]], [False, False])])
    assert float(losses["loss_mask"].detach()) == 0.0
    assert losses["loss_mask"].requires_grad  # still in the graph (DDP needs every parameter used)
    assert losses["loss_box_reg"].item() > 0 and losses["loss_classifier"].item() > 0
    sum(losses.values()).backward()
    assert _grad_norm(model.roi_heads.box_head) > 0 and _grad_norm(model.rpn) > 0
    assert _grad_norm(model.roi_heads.mask_head) == 0 and _grad_norm(model.roi_heads.mask_predictor) == 0
    mask_params = list(model.roi_heads.mask_predictor.parameters())
    assert all(p.grad is not None for p in mask_params)


def test_mask_loss_only_from_faces_with_masks(model):
    """The box-only face's (all-zero) mask must not pull the mask loss: the loss with a box-only
    second face equals the loss with that face's mask set to anything else."""
    model.train()
    images = [torch.rand(3, H, W, generator=torch.Generator().manual_seed(3))]
    t1 = _target([[10, 10, 50, 60], [60, 20, 110, 80]], [True, False])
    t2 = _target([[10, 10, 50, 60], [60, 20, 110, 80]], [True, False])
    t2["masks"][1] = 1 - t2["masks"][1]
    torch.manual_seed(4)
    l1 = model(images, [t1])["loss_mask"]
    torch.manual_seed(4)
    l2 = model(images, [t2])["loss_mask"]
    assert l1.item() > 0 and torch.equal(l1, l2)
    t3 = _target([[10, 10, 50, 60], [60, 20, 110, 80]], [True, True])
    t3["masks"][1] = t2["masks"][1]
    torch.manual_seed(4)
    assert not torch.equal(model(images, [t3])["loss_mask"], l1)  # with has_mask the face counts


def test_crowd_regions_are_not_negatives(model):
    model.train()
    crowd = [[0.0, 0.0, 64.0, 96.0]]
    anchors = [torch.tensor([[4.0, 4.0, 20.0, 20.0], [80.0, 40.0, 100.0, 60.0], [10.0, 50.0, 30.0, 70.0], [100.0, 70.0, 120.0, 90.0]])]
    t = _target([[100, 70, 120, 90]], [True], crowd)
    labels, _ = model.rpn.assign_targets_to_anchors(anchors, [t])
    assert labels[0].tolist() == [-1.0, 0.0, -1.0, 1.0]  # inside the crowd: ignored; elsewhere: background
    t_nocrowd = _target([[100, 70, 120, 90]], [True])
    labels, _ = model.rpn.assign_targets_to_anchors(anchors, [t_nocrowd])
    assert labels[0].tolist() == [0.0, 0.0, 0.0, 1.0]
    # RoI heads: proposals in the crowd region are not sampled as background either
    props = [torch.tensor([[5.0, 5.0, 25.0, 25.0]] * 20 + [[70.0, 5.0, 90.0, 25.0]] * 20)]
    _, _, rlabels, _ = model.roi_heads.select_training_samples(props, [t])
    n_bg = int((rlabels[0] == 0).sum())
    assert n_bg == 20  # only the 20 proposals outside the crowd region are negatives


def test_eval_output_format_in_input_pixels(model):
    model.eval()
    model.roi_heads.score_thresh, old = 0.0, model.roi_heads.score_thresh
    try:
        with torch.no_grad():
            out = model([torch.rand(3, 150, 200), torch.rand(3, 60, 90)])
    finally:
        model.roi_heads.score_thresh = old
    assert len(out) == 2
    for o, (h, w) in zip(out, [(150, 200), (60, 90)]):
        n = len(o["boxes"])
        assert n > 0
        assert o["boxes"].shape == (n, 4) and o["scores"].shape == (n,) and o["labels"].dtype == torch.int64
        assert o["masks"].shape == (n, 1, h, w) and o["masks"].dtype == torch.float32
        assert float(o["masks"].min()) >= 0 and float(o["masks"].max()) <= 1
        assert float(o["boxes"][:, 2].max()) <= w + 1e-3 and float(o["boxes"][:, 3].max()) <= h + 1e-3


@pytest.mark.parametrize("name,norm", [("resnet18", "GN"), ("resnet34", "FrozenBN"), ("mobilenet_v3", "GN")])
def test_backbones_give_five_levels(name, norm):
    bb = build_backbone(name, norm=norm, fpn_channels=32, trainable_layers=5 if norm == "GN" else 3)
    feats = bb(torch.rand(1, 3, 64, 96))
    assert list(feats) == ["0", "1", "2", "3", "pool"]
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    assert all(f.shape[1] == 32 for f in feats.values())
    if norm == "FrozenBN":
        frozen = [n for n, p in bb.named_parameters() if not p.requires_grad]
        assert any(n.startswith("body.conv1") for n in frozen) and not any("layer4" in n for n in frozen)


def test_model_builds_without_a_config():
    torch.manual_seed(0)
    m = FaceRCNN(build_backbone("resnet18", fpn_channels=32), min_size=64, max_size=96, box_head_dim=32, mask_head_dim=8)
    m.eval()
    with torch.no_grad():
        assert set(m([torch.rand(3, 64, 80)])[0]) == {"boxes", "scores", "labels", "masks"}


def test_pretrained_missing_file_fails_clearly_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="Nothing is downloaded.*resnet50-"):
        resolve_pretrained("imagenet", "resnet50")
    with pytest.raises(FileNotFoundError, match="no such local file"):
        resolve_pretrained("missing.pth", "resnet18")
    ckpt = tmp_path / "hub" / "checkpoints" / "mine.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert resolve_pretrained("mine.pth", "resnet18") == str(ckpt)  # found in the hub cache


def test_load_imagenet_backbone_and_coco_like_detector(tmp_path, model):
    import torchvision

    cls = torchvision.models.resnet18()
    torch.save(cls.state_dict(), tmp_path / "resnet18.pth")
    report = load_pretrained(model, str(tmp_path / "resnet18.pth"), "resnet18")
    assert "backbone.body.layer4.1.conv2.weight" in report["loaded"]
    assert torch.equal(model.backbone.body.layer1[0].conv1.weight, cls.layer1[0].conv1.weight)
    assert not any(k.startswith("fc.") for k in report["loaded"])

    # A detection checkpoint: class-specific predictors of another class count are skipped.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(91, state["roi_heads.box_predictor.cls_score.weight"].shape[1])
    state["roi_heads.mask_head.mask_fcn1.weight"] = state.pop("roi_heads.mask_head.0.0.weight")  # legacy name
    torch.save(state, tmp_path / "coco.pth")
    report = load_pretrained(model, str(tmp_path / "coco.pth"), "resnet18")
    assert "roi_heads.mask_head.0.0.weight" in report["loaded"]
    assert any(s.startswith("roi_heads.box_predictor.cls_score.weight") for s in report["skipped"])


def test_merge_passes_keeps_each_size_from_its_pass():
    from maskface.modeling.face_rcnn import merge_passes

    def dets(boxes, scores):
        boxes = torch.tensor(boxes, dtype=torch.float32)
        return {"boxes": boxes, "scores": torch.tensor(scores), "labels": torch.ones(len(boxes), dtype=torch.int64),
                "masks": torch.arange(len(boxes), dtype=torch.float32)[:, None] + 10 * scores[0]}

    # enlarged pass: a 20 px face, a 100 px face (band) and a 300 px "face" (too large for it)
    large = dets([[0, 0, 20, 20], [100, 100, 200, 200], [0, 0, 300, 300]], [0.9, 0.6, 0.99])
    # 1x pass: the 20 px face (too small for it), the 100 px face scored higher, a 200 px face
    small = dets([[1, 1, 21, 21], [102, 100, 202, 200], [300, 0, 500, 200]], [0.95, 0.8, 0.7])
    out = merge_passes(large, small, band=(64, 128), nms_thresh=0.4, max_detections=10)
    assert set(out) == {"boxes", "scores", "labels", "masks"}
    got = [(b, round(s, 2)) for b, s in zip(out["boxes"].tolist(), out["scores"].tolist())]
    # the 20 px face from the enlarged pass only; the 100 px face from whichever scores higher (the 1x
    # pass, after NMS); the 200 px face from the 1x pass; the 300 px box of the enlarged pass dropped
    assert got == [([0, 0, 20, 20], 0.9), ([102, 100, 202, 200], 0.8), ([300, 0, 500, 200], 0.7)]  # by score
    assert out["masks"][:, 0].tolist() == [9.0, 10.5, 11.5]  # the per-face tensors follow their faces
    assert merge_passes(large, small, (64, 128), 0.4, max_detections=1)["scores"].tolist() == [pytest.approx(0.9)]
    with pytest.raises(ValueError, match="merge_band"):
        merge_passes(large, small, (128, 64), 0.4, 10)


def test_two_pass_inference_equals_merging_two_single_passes(model):
    from maskface.modeling.face_rcnn import merge_passes

    model.eval()
    imgs = [torch.rand(3, 150, 200, generator=torch.Generator().manual_seed(1))]
    t = model.transform
    old = (model.roi_heads.score_thresh, t.min_size, t.max_size)
    model.roi_heads.score_thresh = 0.0
    try:
        with torch.no_grad():
            first = model(imgs)[0]
            t.min_size, t.max_size = (48,), 64
            second = model(imgs)[0]
            t.min_size, t.max_size = old[1], old[2]
            model.extra_pass_size, model.merge_band = (48, 64), (10.0, 40.0)
            both = model(imgs)[0]
    finally:
        model.roi_heads.score_thresh, t.min_size, t.max_size = old
        model.extra_pass_size, model.merge_band = None, (64.0, 128.0)
    ref = merge_passes(first, second, (10, 40), model.roi_heads.nms_thresh, model.roi_heads.detections_per_img)
    assert len(both["boxes"]) == len(ref["boxes"]) > 0
    assert torch.allclose(both["boxes"], ref["boxes"], atol=1e-3) and torch.allclose(both["scores"], ref["scores"], atol=1e-5)
    assert both["masks"].shape[1:] == (1, 150, 200)


def test_extra_pass_size_is_checked():
    cfg_kwargs = dict(backbone=build_backbone("resnet18", norm="GN", fpn_channels=16))
    with pytest.raises(ValueError, match="extra_pass_size"):
        FaceRCNN(**cfg_kwargs, extra_pass_size=(640, 480))
    assert FaceRCNN(**cfg_kwargs, extra_pass_size=[]).extra_pass_size is None
