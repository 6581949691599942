"""tools/evaluate.py detection and tools/benchmark.py detector through their main()."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "modeling"))
from detector_testing import make_dataset, tiny_cfg, write_tiny_config  # noqa: E402
from tool_loader import load_tool  # noqa: E402

evaluate = load_tool("evaluate")
benchmark = load_tool("benchmark")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny random-init checkpoint (evaluation plumbing does not need a trained model)."""
    from maskface.modeling.face_rcnn import build_face_rcnn

    tmp = tmp_path_factory.mktemp("evaltool")
    torch.manual_seed(0)
    weights = tmp / "model.pth"
    torch.save({"model": build_face_rcnn(tiny_cfg(tmp)).state_dict()}, weights)
    masks = make_dataset(tmp / "masks", num_images=3)
    boxes = make_dataset(tmp / "boxes", num_images=2, box_only_fraction=1.0, crowd_fraction=0.0, name="boxonly")
    return tmp, write_tiny_config(tmp), str(weights), masks, boxes


def test_detection_writes_metrics_predictions_and_config(trained, capsys):
    tmp, cfg, weights, masks, _ = trained
    out = tmp / "out"
    rc = evaluate.main(["detection", "--config-file", cfg, "--weights", weights, "--dataset", masks, "--output", str(out),
                        "MODEL.SCORE_THRESH", "0.0"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for k in ("bbox/AP", "bbox/AP50", "bbox/AP75", "bbox/APs", "segm/AP", "recall@0.5", "mask_iou", "recall@0.5/16-32"):
        assert k in metrics, k
    preds = json.loads((out / "coco_instances_results.json").read_text())
    assert preds and {"image_id", "bbox", "score", "segmentation", "category_id"} <= set(preds[0])
    assert "MIN_SIZE: 96" in (out / "config.yaml").read_text()
    printed = capsys.readouterr().out
    assert "bbox" in printed and "segm" in printed and "recall@0.5" in printed


def test_detection_on_box_only_set_and_several_datasets(trained, capsys):
    tmp, cfg, weights, masks, boxes = trained
    out = tmp / "multi"
    assert evaluate.main(["detection", "--config-file", cfg, "--weights", weights, "--dataset", masks,
                          "--dataset", boxes, "--output", str(out), "--max-images", "1"]) == 0
    m = json.loads((out / "boxonly" / "metrics.json").read_text())
    assert "segm/AP" not in m and any("box-only" in n for n in m["notes"])
    assert m["num_images"] == 1
    assert "note: ground truth has no masks" in capsys.readouterr().out


def test_detection_errors(trained, capsys):
    tmp, cfg, weights, masks, _ = trained
    assert evaluate.main(["detection", "--config-file", cfg, "--weights", str(tmp / "none.pth"), "--dataset", masks,
                          "--output", str(tmp / "e")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert evaluate.main(["detection", "--config-file", cfg, "--weights", weights, "--output", str(tmp / "e")]) == 2
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--help"])
    assert e.value.code == 0 and "detection" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        evaluate.main([])  # a subcommand is required


def test_benchmark_detector_json(trained, tmp_path, capsys):
    _, cfg, _, _, _ = trained
    out = tmp_path / "bench.json"
    rc = benchmark.main(["detector", "--config-file", cfg, "--device", "cpu", "--input-size", "128x96", "--batch-sizes", "1", "2",
                         "--iters", "1", "--warmup", "0", "--train-iters", "1", "--faces", "3", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    phases = [(r["phase"], r["batch"]) for r in res["results"]]
    assert phases == [("inference", 1), ("inference", 2), ("train", 2)]
    inf = res["results"][0]
    assert inf["ms_per_image"] > 0 and inf["faces_per_image"] == 3 and inf["input"] == "128x96" and inf["peak_rss_mb"] > 0
    assert res["results"][2]["images_per_s"] > 0
    assert "ms/img" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        benchmark.main(["detector", "--help"])
    assert e.value.code == 0


def test_pipeline_subcommand_writes_attribute_report(tmp_path, capsys):
    """evaluate.py pipeline end to end on a tiny random-weight model: the plumbing (matching,
    metrics, report files) must work whatever the model predicts."""
    import cv2
    import numpy as np

    from maskface.inference.testing import write_tiny_models

    models = write_tiny_models(tmp_path / "models")
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    images, anns = [], []
    for i in range(3):
        rng = np.random.default_rng(i)
        cv2.imwrite(str(img_dir / f"{i}.png"), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 96, "height": 96})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [0, 0, 96, 96], "area": 9216.0,
                     "iscrowd": 0, "attributes": {"age": 20.0 + i, "gender": "female", "emotion": "happy"}})
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "face"}],
                              "image_root": "imgs"}))
    out = tmp_path / "eval"
    rc = evaluate.main(["pipeline", "--dataset", str(gt), "--output", str(out), "--device", "cpu",
                        "--detector-config", models.detector_config, "--detector-weights", models.detector_weights,
                        "--attribute-config", models.attribute_config, "--attribute-weights", models.attribute_weights,
                        "--score-thresh", "0.0", "--min-iou", "0.0"])
    assert rc == 0
    m = json.loads((out / "attribute_metrics.json").read_text())
    assert m["labelled_faces"] == 3
    assert 1 <= m["described_faces"] <= 3 and m["described_fraction"] == m["described_faces"] / 3
    assert 0.0 <= m["gender"]["accuracy"] <= 1.0 and m["age"]["mae"] >= 0.0
    assert "labelled faces 3" in capsys.readouterr().out
