"""tools/benchmark.py pipeline / attributes / video / anonymize through main(), on the tiny random-weight
models of maskface.inference.testing (the detector subcommand is tested in test_evaluate.py)."""

import json

import pytest
import torch
from tool_loader import load_tool

benchmark = load_tool("benchmark")
STAGES = ("preprocess", "detector", "attributes", "postprocess")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from maskface.inference.testing import session_tiny_models

    return session_tiny_models(tmp_path_factory)


@pytest.fixture(autouse=True)
def keep_threads():
    """--threads 1 (fast and steady on a busy machine) must not leak into the other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def detector_args(tiny):
    return ["--detector-config", tiny.detector_config, "--detector-weights", tiny.detector_weights]


def attribute_args(tiny):
    return ["--attribute-config", tiny.attribute_config, "--attribute-weights", tiny.attribute_weights]


RUN = ["--device", "cpu", "--threads", "1", "--iters", "1", "--warmup", "0"]


def test_pipeline_json(tiny, tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    rc = benchmark.main(["pipeline", *detector_args(tiny), *attribute_args(tiny), *RUN, "--input-size", "160x120",
                         "--batch-sizes", "2", "1", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert [r["batch"] for r in res["results"]] == [1, 2]
    for r in res["results"]:
        for k in ("images_per_s", "ms_per_image", "ms_per_image_median", "cpu_ms_per_image", "peak_rss_mb",
                  *(f"{s}_ms_per_image" for s in STAGES)):
            assert r[k] > 0, k
        # the tiny detector keeps DETECTIONS_PER_IMAGE = 3 arbitrary faces (score threshold 0)
        assert r["faces_per_image"] == 3 and r["faces_max"] == 3 and r["input"] == "160x120" and r["attributes"]
    info = res["info"]
    assert info["device"] == "cpu" and info["threads"] == 1 and info["detector_config"] == tiny.detector_config
    assert "160x120" in info["image"]  # "samples/faces.jpg (800x480) resized to 160x120" (or the synthetic stand-in)
    printed = capsys.readouterr().out
    assert "img/s" in printed and "det" in printed and info["image"] in printed


def test_attributes_json(tiny, tmp_path, capsys):
    out = tmp_path / "attributes.json"
    rc = benchmark.main(["attributes", *attribute_args(tiny), *RUN, "--input-size", "160x120", "--batch-sizes", "1", "4",
                         "--trunks", "depthwise", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert [r["batch"] for r in res["results"]] == [1, 4]
    for r in res["results"]:
        for k in ("faces_per_s", "ms_per_face", "cpu_ms_per_face", "crop_ms_per_face", "forward_ms_per_face",
                  "decode_ms_per_face", "peak_rss_mb"):
            assert r[k] > 0, k
        assert r["crop_size"] == 32 and r["input"] == "160x120"
    assert [(t["trunk"], t["batch"]) for t in res["trunks"]] == [("depthwise", 1), ("depthwise", 4)]
    assert all(t["params"] > 0 and t["ms_per_face"] > 0 for t in res["trunks"])
    assert res["info"]["params"] > 0 and res["info"]["crop"]["size"] == 32
    printed = capsys.readouterr().out
    assert "faces/s" in printed and "per trunk" in printed


def test_video_json(tiny, tmp_path, capsys):
    out = tmp_path / "video.json"
    rc = benchmark.main(["video", *detector_args(tiny), *attribute_args(tiny), *RUN, "--input-size", "160x120",
                         "--frames", "6", "--batch-size", "4", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    (r,) = res["results"]
    for k in ("frames_per_s", "ms_per_frame", "cpu_ms_per_frame", "peak_rss_mb", *(f"{s}_ms_per_frame" for s in STAGES)):
        assert r[k] > 0, k
    assert r["other_ms_per_frame"] >= 0
    assert r["frames"] == 6 and r["batch_size"] == 4 and r["input"] == "160x120" and r["faces_per_frame"] == 3
    assert r["track"] is True and "6 frames 160x120" in res["info"]["video"]
    assert "fps" in capsys.readouterr().out


def test_help_and_errors(tiny, capsys):
    for cmd in ("pipeline", "attributes", "video"):
        with pytest.raises(SystemExit) as e:
            benchmark.main([cmd, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and "--threads" in text and "--json" in text
    assert benchmark.main(["pipeline", "--input-size", "640", "--device", "cpu"]) == 2
    assert "WxH" in capsys.readouterr().err
    assert benchmark.main(["attributes", "--batch-sizes", "0", "--device", "cpu"]) == 2
    assert benchmark.main(["attributes", "--trunks", "vgg", "--device", "cpu"]) == 2
    assert "unknown trunk" in capsys.readouterr().err
    # a checkpoint without a stored config, given alone
    assert benchmark.main(["attributes", "--attribute-weights", tiny.attribute_weights, *RUN]) == 1
    assert "no config" in capsys.readouterr().err
    assert benchmark.main(["video", "--video", "missing.mp4", *detector_args(tiny), *RUN]) == 1
    assert "file not found" in capsys.readouterr().err


def test_anonymize_json(tmp_path, capsys):
    import cv2

    n = cv2.getNumThreads()
    out = tmp_path / "anon.json"
    try:
        rc = benchmark.main(["anonymize", "--input-size", "160x120", "--faces", "2", "--methods", "blur", "fill",
                             "--iters", "2", "--warmup", "0", "--json", str(out)])
    finally:
        cv2.setNumThreads(n)
    assert rc == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["method"], r["region"]) for r in rows] == [(m, r) for m in ("blur", "fill")
                                                          for r in ("mask", "box", "ellipse")]
    assert all(r["input"] == "160x120" and r["faces"] == 2 and r["ms_per_image"] > 0 for r in rows)
    assert "2 synthetic faces" in capsys.readouterr().out
    assert benchmark.main(["anonymize", "--margin", "-1", "--iters", "1"]) == 2
    assert "margin must be a number of pixels" in capsys.readouterr().err


def test_stages_split_the_detector_time_and_time_yunet_on_the_same_picture(tiny, tmp_path, capsys):
    from pathlib import Path

    out = tmp_path / "stages.json"
    argv = ["stages", "--detector-config", tiny.detector_config, "--weights", tiny.detector_weights,
            "--input-size", "160x120", "--iters", "2", "--warmup", "1", "--threads", "1", "--score-thresh", "0",
            "--json", str(out)]
    yunet = Path(__file__).resolve().parents[3] / "shared" / "weights" / "yunet_n_dynamic.onnx"
    assert benchmark.main(argv + ["--yunet", str(yunet)]) == 0
    res = json.loads(out.read_text())["results"]
    stages = res["stages"]
    assert list(stages)[:3] == ["preprocess", "backbone", "rpn"] and "mask_head" in stages and "paste" in stages
    assert all(v >= 0 for k, v in stages.items() if k != "other")
    assert sum(stages.values()) == pytest.approx(res["total_ms"], rel=0.2)  # medians of parts vs median of sums
    from maskface.config import get_cfg
    from maskface.modeling.read_plan import ReadPlan

    cfg = get_cfg()
    cfg.merge_from_file(tiny.detector_config)
    scale = ReadPlan.from_config(cfg).scale(120, 160)
    assert res["input"] == f"{int(160 * scale)}x{int(120 * scale)}"  # read as the config's plan says
    assert res["faces"] > 0 and res["proposals"] >= res["faces"]
    assert res["ms_per_megapixel"] == pytest.approx(res["total_ms"] / (160 * 120 / 1e6))
    assert res["yunet"]["total_ms"] > 0
    text = capsys.readouterr().out
    assert "backbone" in text and "YuNet (same picture)" in text and "ms per megapixel" in text
    assert benchmark.main(["stages", "--detector-config", tiny.detector_config]) == 2  # no zoo weights for it
    assert benchmark.main(argv[:-2] + ["--yunet", str(tmp_path / "none.onnx")]) == 1
def test_stream_json_with_an_outage(tiny, tmp_path, capsys):
    out = tmp_path / "stream.json"
    rc = benchmark.main(["stream", *detector_args(tiny), *attribute_args(tiny), *RUN, "--input-size", "160x120",
                         "--seconds", "2.5", "--realtime", "--outage-after", "5", "--outage-s", "0.5", "--json", str(out)])
    assert rc == 0
    (r,) = json.loads(out.read_text())["results"]
    assert r["processed_fps"] > 0 and r["covered_fps"] >= r["processed_fps"] and r["cpu_ms_per_frame"] > 0
    assert r["reconnects"] == 1 and r["errors"] == [] and r["faces_per_frame"] == 3
    assert "processed fps" in capsys.readouterr().out
    for cmd in ("live", "stream"):
        with pytest.raises(SystemExit) as e:
            benchmark.main([cmd, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and "--threads" in text and "--json" in text
    assert benchmark.main(["stream", "--every-n-frames", "0", *RUN]) == 2
