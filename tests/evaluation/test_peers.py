"""Public face detectors as evaluation peers (maskface.evaluation.peers) and
``tools/evaluate.py detection --peer``: each finds the astronaut's face of scikit-image's
public-domain sample, and the tool scores a peer with the same code as a MaskFace model."""

import json
import sys
from pathlib import Path

import cv2
import pytest
import torch
from torchvision.ops import box_iou

from maskface.evaluation.peers import PEERS, build_peer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from shared_weights import shared_weight  # noqa: E402
from tool_loader import load_tool  # noqa: E402

ASTRONAUT_FACE = [178.0, 60.0, 270.0, 176.0]  # xyxy px, hand-checked on skimage.data.astronaut()


def _astronaut():
    from skimage import data

    return data.astronaut()


@pytest.mark.parametrize("name", PEERS)
def test_each_peer_finds_the_astronaut(name):
    peer = build_peer(name, str(shared_weight("yunet_n_dynamic.onnx")) if name == "yunet" else None).eval()
    x = torch.from_numpy(_astronaut()).permute(2, 0, 1).float() / 255
    (out,) = peer([x])
    assert set(out) == {"boxes", "scores", "labels"}
    best = out["boxes"][out["scores"].argmax()][None]
    assert float(box_iou(best, torch.tensor([ASTRONAUT_FACE]))) > 0.6
    assert float(out["scores"].max()) > 0.5


def test_peer_errors():
    yunet = shared_weight("yunet_n_dynamic.onnx")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_peer("yunet", "/nonexistent/yunet.onnx")
    with pytest.raises(ValueError, match="only for yunet"):
        build_peer("mtcnn", "x.onnx")
    with pytest.raises(ValueError, match="unknown peer"):
        build_peer("dlib")
    with pytest.raises(ValueError, match="3 x H x W"):
        build_peer("yunet", str(yunet))([torch.zeros(1, 8, 8)])


def test_evaluate_tool_scores_a_peer(tmp_path, capsys):
    yunet = shared_weight("yunet_n_dynamic.onnx")
    img_path = tmp_path / "astronaut.png"
    cv2.imwrite(str(img_path), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    x0, y0, x1, y1 = ASTRONAUT_FACE
    coco = {
        "images": [{"id": 1, "file_name": str(img_path), "width": 512, "height": 512}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}],
        "categories": [{"id": 1, "name": "face"}],
    }
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(coco))
    evaluate = load_tool("evaluate")
    out = tmp_path / "yunet"
    rc = evaluate.main(["detection", "--peer", "yunet", "--peer-weights", str(yunet), "--dataset", str(gt),
                        "--output", str(out), "--num-workers", "0"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["bbox/AP50"] == pytest.approx(1.0) and metrics["recall@0.5"] == pytest.approx(1.0)
    assert metrics["ms_per_image"] > 0 and "mask_iou" not in metrics
    assert "model time" in capsys.readouterr().out
    assert evaluate.main(["detection", "--dataset", str(gt)]) == 2
    assert "--config-file" in capsys.readouterr().err
    assert evaluate.main(["detection", "--peer", "yunet", "--config-file", "x.yaml", "--dataset", str(gt)]) == 2
    assert evaluate.main(["detection", "--peer", "yunet", "--peer-weights", str(tmp_path / "no.onnx"),
                          "--dataset", str(gt), "--output", str(out)]) == 1
    assert "no such file" in capsys.readouterr().err


def test_peer_upscale_returns_boxes_in_the_images_own_pixels():
    """YuNet on the astronaut shrunk to 128 px, read at 4x: the face box comes back in the small
    picture's pixels (a quarter of the full-size box), and bad factors are refused."""
    yunet = str(shared_weight("yunet_n_dynamic.onnx"))
    small = cv2.resize(_astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(small).permute(2, 0, 1).float() / 255
    (big,) = build_peer("yunet", yunet, upscale=4.0)([x])
    best = big["boxes"][big["scores"].argmax()][None]
    assert float(box_iou(best, torch.tensor([ASTRONAUT_FACE]) / 4)) > 0.6
    assert float(big["scores"].max()) > 0.5
    with pytest.raises(ValueError, match="upscale must be >= 1"):
        build_peer("yunet", yunet, upscale=0.5)
    evaluate = load_tool("evaluate")
    assert evaluate.main(["detection", "--peer", "yunet", "--peer-weights", yunet, "--peer-upscale", "0.5"]) == 2
    assert evaluate.main(["detection", "--config-file", "x.yaml", "--peer-upscale", "2"]) == 2
