"""tools/convert_weights.py through its main(): MaskFace -> Detectron2 files without Detectron2
(checkpoint .pth / .pkl, config, the exact round trip it verifies), argument and conversion errors,
and with Detectron2 the shipped detector there and back (bit-exact weights, same config) with --check."""

import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from tool_loader import load_tool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations" / "detectron2"))
from d2_testing import random_maskface_model  # noqa: E402

from maskface.integrations.detectron2.convert import (  # noqa: E402
    detectron2_to_maskface_state,
    load_detectron2_checkpoint,
)

tool = load_tool("convert_weights")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def maskface_files(tmp_path_factory):
    """A randomised tiny ResNet-18-FPN MaskFace detector as config + checkpoint files."""
    d = tmp_path_factory.mktemp("mf")
    cfg, model = random_maskface_model("resnet", seed=7)
    (d / "config.yaml").write_text(cfg.dump(), encoding="utf-8")
    torch.save({"model": model.state_dict()}, d / "model.pth")
    return d, model.state_dict()


@pytest.mark.parametrize("fmt", ["pth", "pkl"])
def test_to_detectron2_writes_checkpoint_and_config(maskface_files, tmp_path, fmt, capsys):
    d, state = maskface_files
    out = tmp_path / "d2"
    assert tool.main(["--to", "detectron2", "--config-file", str(d / "config.yaml"), "--weights", str(d / "model.pth"),
                      "--output", str(out), "--format", fmt, "--quiet"]) == 0
    assert "round trip to MaskFace checked: exact" in capsys.readouterr().out
    d2_cfg = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert d2_cfg["MODEL"]["WEIGHTS"] == str((out / f"model_final.{fmt}").resolve())
    assert d2_cfg["MODEL"]["RESNETS"]["DEPTH"] == 18 and d2_cfg["INPUT"]["FORMAT"] == "RGB"
    d2_state, extras = load_detectron2_checkpoint(str(out / f"model_final.{fmt}"))
    back = detectron2_to_maskface_state(d2_state, state, "resnet18", extras["background"])
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_bad_arguments_exit_2(maskface_files, tmp_path, capsys):
    d, _ = maskface_files
    cases = [
        (["--to", "maskface", "--config-file", "x.yaml", "--config-only"], "--config-only applies to --to detectron2"),
        (["--to", "detectron2", "--config-file", str(d / "config.yaml")], "needs --weights"),
        (["--to", "detectron2", "--config-file", str(tmp_path / "none.yaml"), "--weights", str(d / "model.pth")],
         "config not found"),
        (["--to", "detectron2", "--config-file", str(d / "config.yaml"), "--weights", str(d / "model.pth"),
          "--opts", "MODEL.BACKBONE", "mobilenet_v3"], "mobilenet_v3"),
        (["--to", "detectron2", "--model", "maskface-lite", "--config-file", str(d / "config.yaml")], "not both"),
        (["--to", "detectron2", "--format", "pkl", "--mask-iou", "1.5"], "--mask-iou"),
    ]
    for argv, message in cases:
        assert tool.main([*argv, "--output", str(tmp_path / "o"), "--quiet"]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_shipped_detector_there_and_back_exactly(tmp_path, capsys):
    pytest.importorskip("detectron2")
    data = pytest.importorskip("skimage.data")
    image = tmp_path / "astronaut.png"  # at the detector's input size: both frameworks see the same pixels
    cv2.imwrite(str(image), cv2.resize(data.astronaut()[:, :, ::-1], (480, 480), interpolation=cv2.INTER_AREA))
    d2_dir, mf_dir = tmp_path / "d2", tmp_path / "mf"
    assert tool.main(["--to", "detectron2", "--model", "maskface-lite", "--output", str(d2_dir), "--check",
                      str(image), "--box-px", "0.01", "--score", "0.001", "--mask-iou", "0.99", "--quiet"]) == 0
    assert "check passed" in capsys.readouterr().out
    check = yaml.safe_load((d2_dir / "check.json").read_text())
    assert check["ok"] is True and check["paired"] == check["faces_a"] == check["faces_b"] >= 1
    assert tool.main(["--to", "maskface", "--config-file", str(d2_dir / "config.yaml"), "--output", str(mf_dir),
                      "--check", str(image), "--quiet"]) == 0
    original = torch.load(ROOT / "maskface" / "model_zoo" / "weights" / "maskface_lite_detector.pth")["model"]
    back = torch.load(mf_dir / "model_final.pth")["model"]
    assert list(back) == list(original)
    assert all(back[k].dtype == original[k].dtype and torch.equal(back[k], original[k]) for k in original)
    from maskface.config import get_cfg

    source, converted = get_cfg(), get_cfg()
    source.merge_from_file(str(ROOT / "configs" / "maskface_MV1_SSH_lite.yaml"))
    converted.merge_from_file(str(mf_dir / "config.yaml"))
    assert converted.to_dict() == source.to_dict()


def test_retinaface_file_starts_a_detectron2_model(tmp_path):
    """RetinaFace's public file + the mobilenet_v1_ssh config: its backbone and RPN tensors (renamed,
    RGB-ordered) in the Detectron2 checkpoint, box and mask heads initialised."""
    from shared_weights import shared_weight

    from maskface.modeling.mobilenet_ssh import retinaface_to_maskface

    path = shared_weight("retinaface_mobilenet0.25_wider.pth")
    assert tool.main(["--to", "detectron2", "--config-file", str(ROOT / "configs" / "maskface_MV1_SSH_lite.yaml"),
                      "--weights", str(path), "--output", str(tmp_path), "--quiet"]) == 0
    d2_state, _ = load_detectron2_checkpoint(str(tmp_path / "model_final.pth"))
    retina = retinaface_to_maskface(torch.load(path, map_location="cpu"))
    assert torch.equal(d2_state["backbone.body.stage1.0.0.weight"], retina["backbone.body.stage1.0.0.weight"])
    assert torch.equal(d2_state["proposal_generator.rpn_head.objectness_logits.1.bias"], retina["rpn.head.cls_logits.1.bias"])
    assert "roi_heads.mask_head.predictor.weight" in d2_state
