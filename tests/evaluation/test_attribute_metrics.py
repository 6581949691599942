import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskface.config import get_attr_cfg
from maskface.data.attribute_dataset import build_crop_cache, load_crop_cache
from maskface.data.coco_faces import load_coco_faces
from maskface.evaluation.attribute_metrics import (
    add_attributes_subcommand,
    age_metrics,
    benchmark_attribute_net,
    classification_metrics,
    compute_attribute_metrics,
    confusion_matrix,
    evaluate_attribute_model,
    expected_calibration_error,
    flatten_metrics,
    macro_f1,
    save_attribute_report,
)
from maskface.modeling.attributes.net import AttributeNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modeling" / "attributes"))
from synthetic_faces import write_faces  # noqa: E402

NAN = float("nan")


def test_age_mae_cs5_and_group_accuracy():
    m = age_metrics(np.array([10.0, 20.0, 30.0, 40.0]), np.array([12.0, 20.0, 36.0, NAN]))
    assert m["n"] == 3
    assert m["mae"] == pytest.approx(8.0 / 3.0)  # errors 2, 0, 6
    assert m["cs5"] == pytest.approx(2.0 / 3.0)
    assert m["group_accuracy"] == pytest.approx(2.0 / 3.0)  # 8-12, 15-20 right; 30 (25-32) vs 36 (38-43)
    empty = age_metrics(np.array([1.0]), np.array([NAN]))
    assert empty["n"] == 0 and empty["mae"] is None


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])
    labels = np.array([0, 1, 0])  # right (0.9), wrong (0.6), right (0.8), each alone in its bin
    assert expected_calibration_error(probs, labels) == pytest.approx((0.1 + 0.6 + 0.2) / 3)
    # Two samples in one bin: |accuracy - mean confidence| weighted by the bin's share.
    probs2 = np.array([[0.7, 0.3], [0.7, 0.3]])
    assert expected_calibration_error(probs2, np.array([0, 1])) == pytest.approx(abs(0.5 - 0.7))
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0)) is None


def test_confusion_matrix_and_macro_f1_by_hand():
    labels = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    cm = confusion_matrix(pred, labels, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    # F1: class 0 = 2*1/(2+2) = 0.5, class 1 = 2*2/(2+3) = 0.8, class 2 = 0; class 3 absent -> left out.
    assert macro_f1(cm) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_classification_metrics_ignore_unknown_labels():
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.4, 0.6]])
    m = classification_metrics(probs, np.array([0, 0, -1, 1]), ("female", "male"))
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion"] == [[1, 1], [0, 1]]
    assert m["per_class_recall"] == {"female": 0.5, "male": 1.0}
    none = classification_metrics(probs, np.array([0, 0, 0, 0]), ("female", "male"))
    assert none["per_class_recall"]["male"] is None


def _pred_true():
    pred = {
        "age": np.array([25.0, 30.0, 70.0, 5.0]),
        "age_group": np.array([4, 4, 7, 1]),
        "gender_probs": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]]),
        "emotion_probs": np.eye(7)[[3, 3, 0, 4]],
    }
    true = {"age": np.array([27.0, 40.0, NAN, NAN]), "gender": np.array([0, 0, 1, -1]),
            "emotion": np.array([-1, -1, 0, 4])}
    return pred, true


def test_compute_attribute_metrics_bias_and_score(tmp_path):
    pred, true = _pred_true()
    m = compute_attribute_metrics(pred, true)
    assert m["age"]["mae"] == pytest.approx(6.0) and m["age"]["cs5"] == pytest.approx(0.5)
    assert m["gender"]["accuracy"] == pytest.approx(1 / 3) and m["emotion"]["accuracy"] == 1.0
    assert m["score"] == pytest.approx((1 / 3 + 1.0 + 0.5) / 3)
    female = m["bias"]["by_gender"]["female"]
    assert female["n"] == 2 and female["gender_accuracy"] == 0.5 and female["age_mae"] == pytest.approx(6.0)
    assert female["emotion_accuracy"] is None
    assert set(m["bias"]["by_age_group"]) == {"25-32", "38-43"}
    assert "by_race" not in m["bias"]
    # population groups: one breakdown per group name, unknown ("") faces left out
    g = compute_attribute_metrics(pred, true, groups={"race": ["asian", "white", "", "asian"]})["bias"]["by_race"]
    assert set(g) == {"asian", "white"}
    assert g["asian"]["n"] == 2 and g["asian"]["age_mae"] == pytest.approx(2.0)
    assert g["white"]["gender_accuracy"] == 0.0 and g["white"]["age_mae"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="3 labels for 4 faces"):
        compute_attribute_metrics(pred, true, groups={"race": ["a", "b", "c"]})
    flat = flatten_metrics(m)
    assert flat["val/score"] == pytest.approx(m["score"]) and "val/emotion_macro_f1" in flat
    paths = save_attribute_report(m, tmp_path)
    assert json.loads((tmp_path / "attribute_metrics.json").read_text())["score"] == pytest.approx(m["score"])
    for name in ("confusion_gender.png", "confusion_emotion.png", "confusion_age_group.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(paths) == 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    records = load_coco_faces(write_faces(root, "colour", "colour", 6, seed=0))
    records += load_coco_faces(write_faces(root, "grey", "grey", 6, seed=1))
    net = AttributeNet(trunk="depthwise", width=4, head_dim=8, crop_size=16)
    build_crop_cache(records, 16, net.crop_kwargs["margin"], root / "cache.pt", pad=2)
    return root, records, net


def test_evaluate_on_cache_and_records_agree(tiny):
    root, records, net = tiny
    on_cache = evaluate_attribute_model(net, load_crop_cache(root / "cache.pt"), output_dir=root / "out")
    on_records = evaluate_attribute_model(net, records)
    assert on_cache["n"] == on_records["n"] == 14  # 6 + 2 (masked) colour faces, 6 grey faces
    assert on_cache["gender"]["n"] == 6 and on_cache["emotion"]["n"] == 6 and on_cache["age"]["n"] == 8
    # Same crops up to JPEG noise: the mean predicted age barely moves.
    assert abs(on_cache["age"]["mae"] - on_records["age"]["mae"]) < 1.0
    assert (root / "out" / "attribute_metrics.json").is_file()
    # records carry their dataset: one breakdown row per source, summing to all faces
    by_dataset = on_records["bias"]["by_dataset"]
    assert set(by_dataset) == {str(r["source"]) for r in records if r["annotations"]}
    assert sum(s["n"] for s in by_dataset.values()) == 14 and "by_dataset" not in on_cache["bias"]
    other = AttributeNet(trunk="depthwise", width=4, head_dim=8, crop_size=16, crop_margin=0.5)
    with pytest.raises(ValueError, match="margin"):
        evaluate_attribute_model(other, root / "cache.pt")


def test_cli_subcommand(tiny, tmp_path):
    root, _, net = tiny
    cfg = get_attr_cfg()
    cfg.MODEL.WIDTH, cfg.MODEL.CROP_SIZE, cfg.MODEL.CROP_MARGIN = 4, 16, net.crop_kwargs["margin"]
    cfg.TEST.FLIP = True
    model = AttributeNet.from_config(cfg)
    torch.save({"model": model.state_dict(), "cfg": cfg.dump()}, tmp_path / "model_best.pth")
    parser = argparse.ArgumentParser()
    add_attributes_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["attributes", "--weights", str(tmp_path / "model_best.pth"),
                              "--cache", str(root / "cache.pt"), "--device", "cpu"])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "eval_model_best" / "attribute_metrics.json").read_text())
    assert report["n"] == 14 and math.isfinite(report["score"]) and report["flip_test"] is True
    # --no-flip: one read per face, recorded in the report, and other predictions than the mirrored average
    args = parser.parse_args(["attributes", "--weights", str(tmp_path / "model_best.pth"), "--cache",
                              str(root / "cache.pt"), "--device", "cpu", "--no-flip", "--output", str(tmp_path / "nf")])
    assert args.func(args) == 0
    single = json.loads((tmp_path / "nf" / "attribute_metrics.json").read_text())
    assert single["flip_test"] is False and single["n"] == 14
    assert single["age"]["mae"] != pytest.approx(report["age"]["mae"], abs=1e-6)
    # weights stored without a config (the model zoo's) need --config, and then give the same figures
    torch.save({"model": model.state_dict()}, tmp_path / "bare.pth")
    (tmp_path / "net.yaml").write_text(cfg.dump(), encoding="utf-8")
    bare = ["attributes", "--weights", str(tmp_path / "bare.pth"), "--cache", str(root / "cache.pt"), "--device", "cpu"]
    with pytest.raises(RuntimeError, match="holds no config"):
        args = parser.parse_args(bare)
        args.func(args)
    args = parser.parse_args(bare + ["--config", str(tmp_path / "net.yaml"), "--output", str(tmp_path / "cf")])
    assert args.func(args) == 0
    with_config = json.loads((tmp_path / "cf" / "attribute_metrics.json").read_text())
    assert with_config["age"]["mae"] == pytest.approx(report["age"]["mae"], abs=1e-9)


def test_benchmark_rows():
    cfg = get_attr_cfg()
    cfg.MODEL.WIDTH, cfg.MODEL.CROP_SIZE = 4, 16
    rows = benchmark_attribute_net(cfg, batch_sizes=(1, 4), warmup=1, iters=2)
    assert [(r["trunk"], r["batch"]) for r in rows] == [(t, b) for t in ("depthwise", "resnet", "gra") for b in (1, 4)]
    params = {r["trunk"]: r["params"] for r in rows}
    assert params["depthwise"] < params["resnet"] < params["gra"]
    assert all(r["ms_per_face"] > 0 and r["ms_per_batch"] == pytest.approx(r["ms_per_face"] * r["batch"]) for r in rows)


def test_age_bands_adult_gender_and_ferplus_majority():
    pred, true = _pred_true()
    true["age"] = np.array([27.0, 12.0, 65.0, NAN])
    pred["age_group_top"] = np.array([4, 2, 7, 1])
    true["emotion_votes"] = np.array([
        [0, 0, 0, 0.5, 0.5, 0, 0],  # tied top vote: left out
        [0, 0, 0, 0.8, 0.2, 0, 0],  # majority happy, predicted happy
        [0, 0, 0, 0, 0, 0, 0],  # no votes
        [0, 0, 0, 0.7, 0.3, 0, 0],  # majority happy, predicted neutral
    ])
    m = compute_attribute_metrics(pred, true)
    assert m["emotion"]["n_ferplus"] == 2 and m["emotion"]["ferplus_majority_accuracy"] == 0.5
    # faces 0 (27 y, female, right) and 2 (65 y, male, wrong); face 1 is 12
    assert m["gender"]["n_13_and_over"] == 2 and m["gender"]["accuracy_13_and_over"] == 0.5
    assert set(m["bias"]["by_age_band"]) == {"0-12", "20-39", "60+"}
    assert m["bias"]["by_age_band"]["0-12"]["n"] == 1
    assert m["age"]["group_accuracy_top"] == pytest.approx(1.0) and m["age"]["group_accuracy"] == pytest.approx(2 / 3)
