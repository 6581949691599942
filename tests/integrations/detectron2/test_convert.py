"""MaskFace <-> Detectron2 checkpoints and configs (maskface/integrations/detectron2/convert.py).

The first tests need no Detectron2 (renaming, layouts, bit-exact round trips, files, the config
mapping); the rest build the converted model in Detectron2 and compare its outputs with MaskFace's
on the same image, and convert Detectron2-side models (without MaskFace's extras, BGR input) back."""

import pytest
import torch
from d2_testing import maskface_cfg, random_maskface_model

from maskface.integrations.detectron2.convert import (
    BOX_KEYS,
    CLS_KEYS,
    MASK_KEYS,
    ConversionError,
    detectron2_to_maskface_state,
    load_detectron2_checkpoint,
    maskface_to_detectron2,
    maskface_to_detectron2_config,
    maskface_to_detectron2_state,
    save_detectron2_checkpoint,
)

KINDS = ("resnet", "resnet_frozenbn", "ssh", "ssh_s4")


def _assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip_is_bit_exact(random_models, kind):
    cfg, model = random_models[kind]
    state = model.state_dict()
    d2, background = maskface_to_detectron2_state(state, cfg.MODEL.BACKBONE)
    assert set(background) == set(BOX_KEYS + MASK_KEYS)
    back = detectron2_to_maskface_state(d2, state, cfg.MODEL.BACKBONE, background)
    _assert_same_state(state, {k: back[k] for k in state})


def test_round_trip_keeps_fp16_tensors(random_models):
    cfg, model = random_models["ssh"]
    state = {k: (v.half() if v.is_floating_point() and not k.endswith(("running_mean", "running_var")) else v)
             for k, v in model.state_dict().items()}
    d2, background = maskface_to_detectron2_state(state, cfg.MODEL.BACKBONE)
    assert d2["roi_heads.box_head.fc1.weight"].dtype == torch.float16
    _assert_same_state(state, detectron2_to_maskface_state(d2, state, cfg.MODEL.BACKBONE, background))


def test_layouts_follow_detectron2(random_models):
    cfg, model = random_models["resnet"]
    s = model.state_dict()
    d2, background = maskface_to_detectron2_state(s, "resnet18")
    # classes: torchvision (background, face) -> Detectron2 (face, background)
    assert torch.equal(d2["roi_heads.box_predictor.cls_score.weight"][0], s[CLS_KEYS[0]][1])
    assert torch.equal(d2["roi_heads.box_predictor.cls_score.bias"][1], s[CLS_KEYS[1]][0])
    # box regression: the face's 4 rows only; the background's travel separately
    assert torch.equal(d2["roi_heads.box_predictor.bbox_pred.weight"], s[BOX_KEYS[0]][4:8])
    assert torch.equal(background[BOX_KEYS[0]], s[BOX_KEYS[0]][:4])
    assert torch.equal(d2["roi_heads.mask_head.predictor.weight"], s[MASK_KEYS[0]][1:2])
    # names Detectron2's builders use
    for key, src in [("backbone.bottom_up.stem.conv1.norm.weight", "backbone.body.bn1.weight"),
                     ("backbone.bottom_up.res3.0.shortcut.norm.bias", "backbone.body.layer2.0.downsample.1.bias"),
                     ("backbone.bottom_up.res5.1.conv2.weight", "backbone.body.layer4.1.conv2.weight"),
                     ("backbone.fpn_lateral2.norm.weight", "backbone.fpn.inner_blocks.0.1.weight"),
                     ("backbone.fpn_output5.weight", "backbone.fpn.layer_blocks.3.0.weight"),
                     ("proposal_generator.rpn_head.conv.weight", "rpn.head.conv.0.0.weight"),
                     ("proposal_generator.rpn_head.anchor_deltas.bias", "rpn.head.bbox_pred.bias"),
                     ("roi_heads.box_head.fc2.weight", "roi_heads.box_head.fc7.weight"),
                     ("roi_heads.mask_head.mask_fcn4.norm.bias", "roi_heads.mask_head.3.1.bias"),
                     ("roi_heads.mask_head.deconv.weight", "roi_heads.mask_predictor.conv5_mask.weight")]:
        assert torch.equal(d2[key], s[src]), key
    ssh_cfg, ssh = random_models["ssh"]
    d2_ssh, _ = maskface_to_detectron2_state(ssh.state_dict(), "mobilenet_v1_ssh")
    assert torch.equal(d2_ssh["proposal_generator.rpn_head.objectness_logits.2.weight"],
                       ssh.state_dict()["rpn.head.cls_logits.2.weight"])
    assert "backbone.ssh3.conv7x7_3.1.running_var" in d2_ssh


def test_missing_background_rows_come_back_as_zeros(random_models):
    cfg, model = random_models["resnet"]
    state = model.state_dict()
    d2, _ = maskface_to_detectron2_state(state, "resnet18")
    back = detectron2_to_maskface_state(d2, state, "resnet18", background=None)
    assert torch.count_nonzero(back[BOX_KEYS[0]][:4]) == 0 and torch.count_nonzero(back[MASK_KEYS[1]][:1]) == 0
    assert torch.equal(back[BOX_KEYS[0]][4:], state[BOX_KEYS[0]][4:])
    assert torch.equal(back[CLS_KEYS[0]], state[CLS_KEYS[0]])


def test_mismatched_detectron2_state_is_reported_by_name(random_models):
    cfg, model = random_models["resnet"]
    state = model.state_dict()
    d2, bg = maskface_to_detectron2_state(state, "resnet18")
    broken = dict(d2)
    del broken["backbone.fpn_output3.weight"]
    broken["roi_heads.extra.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r"fpn_output3\.weight[\s\S]*roi_heads\.extra\.weight"):
        detectron2_to_maskface_state(broken, state, "resnet18", bg)


def test_unconvertible_models_name_the_reason():
    with pytest.raises(ConversionError, match="mobilenet_v3"):
        maskface_to_detectron2_config(maskface_cfg("resnet", ["MODEL.BACKBONE", "mobilenet_v3"]))
    with pytest.raises(ConversionError, match="MASK_HEAD_DIM"):
        maskface_to_detectron2_config(maskface_cfg("resnet", ["MODEL.MASK_HEAD_DIM", "48"]))


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_checkpoint_files_round_trip(random_models, tmp_path, suffix):
    cfg, model = random_models["ssh"]
    d2cfg, d2, extras = maskface_to_detectron2(cfg, model.state_dict())
    path = save_detectron2_checkpoint(str(tmp_path / f"model{suffix}"), d2, extras)
    state, loaded_extras = load_detectron2_checkpoint(path)
    _assert_same_state(d2, state)
    assert loaded_extras["config"] == cfg.dump() and set(loaded_extras["background"]) == set(extras["background"])
    torch.save({"model": model.state_dict()}, tmp_path / "maskface.pth")
    with pytest.raises(ConversionError, match="--to detectron2"):
        load_detectron2_checkpoint(str(tmp_path / "maskface.pth"))


def test_config_mapping():
    d2 = maskface_to_detectron2_config(maskface_cfg("ssh"))
    m = d2["MODEL"]
    assert d2["INPUT"]["FORMAT"] == "RGB" and m["PIXEL_MEAN"] == [123.0, 117.0, 104.0] and m["PIXEL_STD"] == [1.0] * 3
    assert m["ANCHOR_GENERATOR"]["OFFSET"] == 0.5 and m["ANCHOR_GENERATOR"]["SIZES"] == [[16, 32], [64, 128], [256, 512]]
    assert m["RPN"]["HEAD_NAME"] == "PerLevelRPNHead" and m["RPN"]["IN_FEATURES"] == ["p3", "p4", "p5"]
    assert m["ROI_HEADS"]["NUM_CLASSES"] == 1 and m["ROI_HEADS"]["SCORE_THRESH_TEST"] == 0.001
    assert m["ROI_BOX_HEAD"]["POOLER_TYPE"] == m["ROI_MASK_HEAD"]["POOLER_TYPE"] == "ROIAlign"
    assert m["ROI_MASK_HEAD"]["NORM"] == "" and m["MOBILENET_SSH"]["NORM"] == "FrozenBN"
    r = maskface_to_detectron2_config(maskface_cfg("resnet"))
    assert r["MODEL"]["RESNETS"]["STRIDE_IN_1X1"] is False and r["MODEL"]["RESNETS"]["RES2_OUT_CHANNELS"] == 64
    assert r["MODEL"]["ANCHOR_GENERATOR"]["OFFSET"] == 0.0 and r["MODEL"]["ANCHOR_GENERATOR"]["SIZES"][0] == [16]
    assert r["MODEL"]["PIXEL_STD"] == [58.395, 57.12, 57.375] and r["MODEL"]["FPN"]["NORM"] == "GN"


# --- with Detectron2 ---------------------------------------------------------------------------------------


def _d2_model(d2cfg_dict, opts=()):
    pytest.importorskip("detectron2")
    from detectron2.modeling import build_model

    from maskface.integrations.detectron2.config import get_detectron2_cfg

    cfg = get_detectron2_cfg(d2cfg_dict, ["MODEL.DEVICE", "cpu", *opts])
    return cfg, build_model(cfg).eval()


def _run_both(mf_model, d2_model, rgb, d2_bgr=False):
    """MaskFace's detect_unpasted and Detectron2's raw inference on the same (unresized) image."""
    t = torch.from_numpy(rgb).permute(2, 0, 1).float()
    with torch.no_grad():
        a = mf_model.detect_unpasted([t / 255.0])[0]
        d2_in = t.flip(0) if d2_bgr else t
        b = d2_model.inference([{"image": d2_in, "height": rgb.shape[0], "width": rgb.shape[1]}], do_postprocess=False)[0]
    return a, b


def _assert_same_outputs(a, b):
    assert len(a["scores"]) == len(b.scores) > 3
    assert (a["boxes"] - b.pred_boxes.tensor).abs().max() < 1e-2
    assert (a["scores"] - b.scores).abs().max() < 1e-4
    assert (a["masks"] - b.pred_masks[:, 0]).abs().max() < 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_converted_model_computes_what_maskface_computes(random_models, test_image, kind):
    cfg, mf = random_models[kind]
    d2cfg, d2_state, _ = maskface_to_detectron2(cfg, mf.state_dict())
    _, d2 = _d2_model(d2cfg)
    incompatible = d2.load_state_dict(d2_state, strict=True)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    _assert_same_outputs(*_run_both(mf, d2, test_image))


def test_detectron2_model_without_maskface_extras_converts(test_image):
    """A model that lives in Detectron2 (trained there: no background rows, no source config) and
    reads BGR: MaskFace gets an RGB model that computes the same faces."""
    from maskface.integrations.detectron2.convert import detectron2_to_maskface

    base, _ = random_maskface_model("resnet", seed=5)
    d2dict = maskface_to_detectron2_config(base)
    bgr_opts = ["INPUT.FORMAT", "BGR", "MODEL.PIXEL_MEAN", "[103.53, 116.28, 123.675]",
                "MODEL.PIXEL_STD", "[57.375, 57.12, 58.395]"]
    d2cfg, d2 = _d2_model(d2dict, bgr_opts)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, t in list(d2.named_parameters()):
            t.copy_(torch.randn_like(t) / max(1, t[0].numel()) ** 0.5 if t.dim() > 1 else torch.randn_like(t) * 0.1 + 1)
        d2.roi_heads.box_predictor.cls_score.weight.mul_(8)
    cfg, state, info = detectron2_to_maskface(d2cfg, d2.state_dict(), extras=None)
    assert info["flip_input_channels"] and not info["approximations"]
    assert cfg.MODEL.BACKBONE == "resnet18" and cfg.MODEL.NORM == "GN" and cfg.MODEL.FPN_CHANNELS == 32
    from maskface.modeling.face_rcnn import build_face_rcnn

    mf = build_face_rcnn(cfg).eval()
    mf.load_state_dict(state)
    _assert_same_outputs(*_run_both(mf, d2, test_image, d2_bgr=True))


def test_config_round_trip(random_models):
    from maskface.integrations.detectron2.convert import detectron2_to_maskface_config

    for kind in KINDS:
        cfg, _ = random_models[kind]
        d2cfg, _ = _d2_model(maskface_to_detectron2_config(cfg))
        back, info = detectron2_to_maskface_config(d2cfg, base=cfg)
        assert back.to_dict() == cfg.to_dict() and not info["approximations"], kind
        fresh, _ = detectron2_to_maskface_config(d2cfg)  # no source config: model keys still equal ...
        # ... but the RPN's objectness threshold, which Detectron2 has no key for (it keeps every proposal)
        assert fresh.MODEL.RPN_SCORE_THRESH_TEST == 0.0, kind
        assert fresh.MODEL.to_dict() == {**cfg.MODEL.to_dict(), "DEVICE": fresh.MODEL.DEVICE,
                                         "RPN_SCORE_THRESH_TEST": 0.0}, kind


def test_unconvertible_detectron2_configs_name_the_reason(random_models):
    from maskface.integrations.detectron2.convert import detectron2_to_maskface_config

    pytest.importorskip("detectron2")
    from maskface.integrations.detectron2.config import get_detectron2_cfg

    with pytest.raises(ConversionError, match=r"MASK_ON[\s\S]*build_resnet_backbone"):
        detectron2_to_maskface_config(get_detectron2_cfg())  # Detectron2's defaults: a C4 box-only model
    d2dict = maskface_to_detectron2_config(random_models["resnet"][0])
    msra = get_detectron2_cfg(d2dict, ["MODEL.RESNETS.STRIDE_IN_1X1", "True"])
    with pytest.raises(ConversionError, match="STRIDE_IN_1X1"):
        detectron2_to_maskface_config(msra)
    stock = get_detectron2_cfg(d2dict, ["MODEL.ANCHOR_GENERATOR.NAME", "DefaultAnchorGenerator",
                                        "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignV2"])
    _, info = detectron2_to_maskface_config(stock)
    assert len(info["approximations"]) == 2 and "DefaultAnchorGenerator" in info["approximations"][0]
