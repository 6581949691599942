"""tools/train_detectron2.py through its main(): a tiny Detectron2 training run on a MaskFace COCO face
file (masked, box-only and crowd faces) named by its path, its checkpoint driving FacePredictor with
MaskFace's attribute net, --eval-only, converting the Detectron2-trained model to MaskFace, and errors."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from tool_loader import load_tool

pytest.importorskip("detectron2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations" / "detectron2"))
from d2_testing import maskface_cfg  # noqa: E402

from maskface.data.synthetic import make_synthetic_coco, make_synthetic_image  # noqa: E402

train = load_tool("train_detectron2")
convert = load_tool("convert_weights")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """3 iterations of a tiny ResNet-18-FPN face Mask R-CNN (MaskFace's tiny recipe converted with
    --config-only) on a synthetic face file; returns (output dir, dataset JSON)."""
    d = tmp_path_factory.mktemp("d2train")
    data = make_synthetic_coco(str(d / "data"), num_images=6, size=(96, 128), box_only_fraction=0.3,
                               crowd_fraction=0.1, seed=2)
    (d / "tiny.yaml").write_text(maskface_cfg("resnet").dump(), encoding="utf-8")
    assert convert.main(["--to", "detectron2", "--config-file", str(d / "tiny.yaml"), "--config-only",
                         "--output", str(d / "cfg"), "--quiet"]) == 0
    out = d / "run"
    code = train.main(["--config-file", str(d / "cfg" / "config.yaml"), "MODEL.DEVICE", "cpu",
                       "DATASETS.TRAIN", f"('{data}',)", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "3",
                       "SOLVER.STEPS", "(2,)", "SOLVER.WARMUP_ITERS", "1", "SOLVER.BASE_LR", "0.005",
                       "SOLVER.CHECKPOINT_PERIOD", "100", "SOLVER.AMP.ENABLED", "False", "DATALOADER.NUM_WORKERS", "0",
                       "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "128", "OUTPUT_DIR", str(out)])
    assert code == 0
    return out, data


def test_training_run_writes_a_checkpoint_with_finite_losses(run):
    out, _ = run
    assert (out / "model_final.pth").is_file() and (out / "config.yaml").is_file()
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    losses = {k: v for r in rows for k, v in r.items() if k.startswith("loss_") or k == "total_loss"}
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values()) and losses["total_loss"] > 0


def test_checkpoint_drives_face_predictor(run, tiny_files):
    from maskface.inference.predictor import FacePredictor

    out, _ = run
    predictor = FacePredictor(detector_backend="detectron2", detector_config=str(out / "config.yaml"),
                              detector_weights=str(out / "model_final.pth"), attribute_config=tiny_files.attribute_config,
                              attribute_weights=tiny_files.attribute_weights, device="cpu", score_thresh=0.0, retry_pad=0)
    image = make_synthetic_image(np.random.default_rng(0), (96, 128), 2, min_face=24)[0]
    faces = predictor(image, color="rgb")
    assert faces, "an untrained detector at threshold 0 still returns its best boxes"
    for f in faces:
        assert f.mask is not None and f.mask.shape == (96, 128) and f.age is not None and f.gender in ("female", "male")


def test_infer_tool_takes_the_detectron2_detector(run, tmp_path):
    import cv2

    out, _ = run
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), make_synthetic_image(np.random.default_rng(1), (96, 128), 2, min_face=24)[0])
    infer = load_tool("infer")
    assert infer.main(["--input", str(image), "--output", str(tmp_path / "out"), "--detector-backend", "detectron2",
                       "--detector-config", str(out / "config.yaml"), "--detector-weights", str(out / "model_final.pth"),
                       "--no-attributes", "--device", "cpu", "--score-thresh", "0", "--quiet"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["model"]["detector_backend"] == "detectron2"
    assert results["images"][0]["faces"] and results["images"][0]["faces"][0]["mask"]


def test_eval_only_and_conversion_to_maskface(run, tmp_path):
    out, data = run
    assert train.main(["--eval-only", "--config-file", str(out / "config.yaml"), "MODEL.WEIGHTS",
                       str(out / "model_final.pth"), "DATASETS.TEST", f"('{data}',)", "MODEL.DEVICE", "cpu",
                       "OUTPUT_DIR", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "inference" / "coco_instances_results.json").is_file()
    assert convert.main(["--to", "maskface", "--config-file", str(out / "config.yaml"), "--weights",
                         str(out / "model_final.pth"), "--output", str(tmp_path / "mf"), "--quiet"]) == 0
    from maskface.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "mf" / "config.yaml"))
    assert cfg.MODEL.BACKBONE == "resnet18" and cfg.MODEL.FPN_CHANNELS == 32 and cfg.SOLVER.MAX_ITER == 3


def test_errors_exit_2(tmp_path, capsys):
    assert train.main(["--config-file", str(tmp_path / "none.yaml")]) == 2
    assert "config not found" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("MODEL:\n  DEVICE: cpu\n")
    assert train.main(["--config-file", str(cfg), "DATASETS.TRAIN", "('nowhere_registered',)"]) == 2
    assert "neither registered nor" in capsys.readouterr().err
    assert train.main(["--config-file", str(cfg), "--dataset", "oops"]) == 2
    assert "NAME=JSON" in capsys.readouterr().err
