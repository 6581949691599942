"""ONNX export and the ONNX Runtime path: graphs equal to the PyTorch modules, FacePredictor parity
(same faces, boxes within 1 px, mask IoU >= 0.98, attribute probabilities within 0.01, same
labels) on the sample and synthetic images, the export cache, the manifest, tools/export.py and
--runtime in tools/infer.py. Tiny random-weight models keep it fast; the MobileNetV1-SSH layout
(per-level RPN, centred anchors, FrozenBN) is exported at random init and a small input."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tool_loader import load_tool

import onnxruntime  # required, not skipped: the dev extra installs it)

from maskface.data.synthetic import make_synthetic_image  # noqa: E402
from maskface.export.check import PARITY_LIMITS, ParityReport, compare_faces, compare_runs  # noqa: E402
from maskface.export.onnx_export import (  # noqa: E402
    ATTRIBUTE_OUTPUTS,
    AttributeGraph,
    export_attributes,
    export_models,
    load_manifest,
    resample_matrix,
    sample_image,
)
from maskface.inference.masks import paste_masks  # noqa: E402
from maskface.inference.predictor import FacePredictor  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("maskface_cache")


@pytest.fixture(scope="module")
def predictors(tiny_files, cache):
    mp = pytest.MonkeyPatch()
    mp.setenv("MASKFACE_CACHE", str(cache))
    try:
        torch_p = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu")
        onnx_p = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", runtime="onnxruntime", threads=1)
    finally:
        mp.undo()
    return torch_p, onnx_p


def _images():
    rng = np.random.default_rng(0)
    sample = sample_image()
    return [sample, sample[::2, ::2].copy(), make_synthetic_image(rng, (120, 160), 2, min_face=20)[0],
            make_synthetic_image(rng, (200, 90), 1, min_face=20)[0]]


def test_predictor_parity_on_sample_and_synthetic_images(predictors):
    torch_p, onnx_p = predictors
    report = compare_runs(torch_p, onnx_p, _images())
    assert report.paired == report.faces_a == report.faces_b > 0  # the tiny detector returns 3 faces per image
    assert report.max_box_px <= PARITY_LIMITS["box_px"] and report.min_mask_iou >= PARITY_LIMITS["mask_iou"]
    assert report.max_prob_diff <= PARITY_LIMITS["prob"] and report.label_mismatches == 0 and report.ok()
    # a batch gives the same faces as single images; Face records are complete
    batch = onnx_p.predict_batch(_images()[:2], color="rgb")
    single = onnx_p(_images()[1], color="rgb")
    assert compare_faces(batch[1], single).ok()
    f = batch[0][0]
    assert f.mask.shape == _images()[0].shape[:2] and f.mask.dtype == bool and f.gender in ("female", "male")
    assert onnx_p.model_info["runtime"] == "onnxruntime" and set(onnx_p.timings) >= {"detector_ms", "attributes_ms"}


def test_score_threshold_is_a_graph_input(predictors):
    _, onnx_p = predictors
    img = _images()[0]
    n = len(onnx_p(img, color="rgb"))
    onnx_p.score_thresh = 1.0
    try:
        assert onnx_p(img, color="rgb") == []
    finally:
        onnx_p.score_thresh = 0.0
    assert len(onnx_p(img, color="rgb")) == n


def test_export_cache_is_reused_and_its_files_checked(tiny_files, cache, predictors, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKFACE_CACHE", str(cache))
    folders = sorted(p for p in (cache / "onnx").iterdir())
    assert len(folders) == 1 and predictors[1].onnx_dir == str(folders[0])
    import maskface.export.onnx_export as ox

    monkeypatch.setattr(ox, "export_models", lambda *a, **k: pytest.fail("exported again"))
    again = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", runtime="onnxruntime")
    assert again.onnx_dir == str(folders[0])
    # the manifest lists each file's sha256; a modified file is not used
    manifest = load_manifest(folders[0])
    assert manifest["detector"]["class_names"] == ["face"] and manifest["attributes"]["crop"]["size"] == 32
    assert manifest["attributes"]["class_names"]["gender"] == ["female", "male"]
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folders[0].iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    with open(copy / "detector.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(RuntimeError, match="sha256 differs"):
        FacePredictor(runtime="onnxruntime", onnx_dir=str(copy))


def test_detect_unpasted_matches_the_model_and_paste_matches_torchvision(predictors):
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from maskface.modeling.face_rcnn import resize_for_detector

    model = predictors[0].detector
    img = torch.from_numpy(_images()[0]).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        full = model([img])[0]
        x = resize_for_detector(img, model.transform.min_size[-1], model.transform.max_size)
        raw = model.detect_unpasted([x])[0]
    scale = torch.tensor([img.shape[2] / x.shape[2], img.shape[1] / x.shape[1]] * 2)
    assert torch.allclose(raw["boxes"] * scale, full["boxes"], atol=1e-3)
    assert raw["masks"].shape[1:] == (28, 28) and torch.allclose(raw["scores"], full["scores"])
    # pasting: same masks as torchvision's full-image paste, up to its integer box rounding
    boxes = torch.tensor([[10.3, 20.7, 90.2, 130.9], [50.0, 5.0, 62.0, 17.0]])
    probs = torch.rand(2, 28, 28, generator=torch.Generator().manual_seed(0)).pow(0.3)
    ours = paste_masks(probs.numpy(), boxes.numpy(), 150, 120, 0.5)
    ref = paste_masks_in_image(probs[:, None], boxes, (150, 120))[:, 0] > 0.5
    ious = [(a & b).sum() / (a | b).sum() for a, b in zip(ours, ref.numpy())]
    assert ious[0] > 0.95 and ious[1] > 0.8, ious  # a 12 px box: torchvision rounds it to whole pixels
    full_box = paste_masks(np.ones((1, 28, 28), np.float32), np.array([[10.0, 20.0, 40.0, 60.0]]), 100, 100)[0]
    ys, xs = np.nonzero(full_box)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 39, 20, 59)  # exactly the box's pixels


def test_attribute_graph_equals_an_ensemble_with_flip_and_smaller_member(tmp_path):
    from maskface.modeling.attributes import AttributeEnsemble, AttributeNet

    torch.manual_seed(0)
    members = [AttributeNet(width=8, crop_size=32, mask_dilate=2), AttributeNet(width=8, crop_size=24, mask_dilate=1,
                                                                                flip_test=True)]
    ens = AttributeEnsemble(members).eval()
    x = torch.randn(3, 3, 32, 32)
    r = resample_matrix(32, 24)
    ref_down = F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(r @ x @ r.t(), ref_down, atol=1e-5)
    with torch.no_grad():
        ref = ens(x)
        graph = AttributeGraph(ens)(x)
    for k, v in zip(ATTRIBUTE_OUTPUTS, graph):
        assert torch.allclose(v, ref[k], atol=1e-5), k
    export_attributes(ens, tmp_path / "a.onnx")
    sess = onnxruntime.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # dynamic batch
        xn = torch.randn(n, 3, 32, 32)
        with torch.no_grad():
            refn = ens(xn)
        out = sess.run(None, {"crops": xn.numpy()})
        for k, v in zip(ATTRIBUTE_OUTPUTS, out):
            assert v.shape[0] == n and np.allclose(v, refn[k].numpy(), atol=1e-4), k


@pytest.mark.parametrize("stride4", ["[]", "[8, 12]"])
def test_mobilenet_ssh_detector_exports_with_dynamic_size(tmp_path, stride4):
    from maskface.config import get_cfg, setup_cfg
    from maskface.modeling.face_rcnn import build_face_rcnn, resize_for_detector

    cfg = setup_cfg(get_cfg(), "configs/maskface_MV1_SSH_lite.yaml",
                    ["MODEL.MIN_SIZE", "160", "MODEL.MAX_SIZE", "224", "MODEL.DETECTIONS_PER_IMAGE", "5",
                     "MODEL.RPN_POST_NMS_TOP_N_TEST", "50", "MODEL.SCORE_THRESH", "0.0", "MODEL.STRIDE4_ANCHORS", stride4])
    torch.manual_seed(0)
    model = build_face_rcnn(cfg).eval()
    with torch.no_grad():  # spread the untrained heads' scores: no near-ties where proposals / faces are cut
        model.roi_heads.box_predictor.cls_score.weight.mul_(50.0)
        for conv in model.rpn.head.cls_logits:
            conv.weight.mul_(50.0)
    manifest = export_models(tmp_path, model, cfg, sample_image())
    assert "attributes" not in manifest and manifest["detector"]["image_mean"][0] > 0.3  # RetinaFace's 0..255 mean
    sess = onnxruntime.InferenceSession(str(tmp_path / "detector.onnx"), providers=["CPUExecutionProvider"])
    for h, w in ((120, 160), (200, 150)):
        img = torch.from_numpy(make_synthetic_image(np.random.default_rng(h), (h, w), 2)[0]).permute(2, 0, 1) / 255.0
        x = resize_for_detector(img.float(), 160, 224)
        with torch.no_grad():
            ref = model.detect_unpasted([x], score_thresh=0.0)[0]
        boxes, scores, masks = sess.run(None, {"image": x.numpy(), "score_thresh": np.array(0.0, np.float32)})
        # score order, ties (an untrained model's near-equal scores) broken by position
        def order_of(b, sc):
            return np.lexsort((np.round(b[:, 1], 1), np.round(b[:, 0], 1), -np.round(sc, 4)))

        order_ref, order = order_of(ref["boxes"].numpy(), ref["scores"].numpy()), order_of(boxes, scores)
        assert len(boxes) == len(ref["boxes"]) == 5
        assert np.allclose(boxes[order], ref["boxes"][order_ref].numpy(), atol=0.05)
        assert np.allclose(masks[order], ref["masks"][order_ref].numpy(), atol=1e-3)


def test_compare_faces_reports_differences():
    from maskface.inference.results import Face

    m = np.zeros((20, 20), bool)
    m[2:10, 2:10] = True
    m2 = m.copy()
    m2[2:10, 9] = False
    attrs = {"age": 30.0, "age_std": 3.0, "age_group": "25-32", "gender": "male", "gender_prob": 0.8,
             "emotion": "happy", "emotion_probs": {"happy": 0.9, "neutral": 0.1}}
    a = Face(box=[2, 2, 10, 10], score=0.9, mask=m)
    b = Face(box=[2, 2, 11.5, 10], score=0.9, mask=m2)
    a.set_attributes(attrs)
    b.set_attributes({**attrs, "gender": "female", "gender_prob": 0.55})
    r = compare_faces([a], [b])
    assert r.paired == 1 and r.max_box_px == 1.5 and r.min_mask_iou == pytest.approx(56 / 64)
    assert r.max_prob_diff == pytest.approx(0.35) and r.label_mismatches == 1 and not r.ok()
    r2 = compare_faces([a], [], ParityReport())
    assert r2.faces_a == 1 and r2.paired == 0 and not r2.ok() and "without a partner" in r2.notes[0]


def test_export_tool_refuses_a_detectron2_detector(tmp_path, capsys):
    export = load_tool("export")
    assert export.main(["--output", str(tmp_path), "--detector-backend", "detectron2", "--detector-config",
                        "d2.yaml", "--detector-weights", "d2.pth", "--quiet"]) == 2
    assert "convert_weights.py --to maskface" in capsys.readouterr().err


def test_export_tool_writes_files_and_passes_its_check(tiny_files, tmp_path, capsys):
    export = load_tool("export")
    out = tmp_path / "deploy"
    t = tiny_files
    rc = export.main(["--output", str(out), "--detector-config", t.detector_config, "--detector-weights",
                      t.detector_weights, "--attribute-config", t.attribute_config, "--attribute-weights",
                      t.attribute_weights, "--threads", "1", "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0 and "check passed" in printed and "largest box difference" in printed
    check = json.loads((out / "check.json").read_text())
    assert check["ok"] and check["paired"] == check["faces_a"] > 0
    manifest = load_manifest(out)  # sha256s verified
    assert manifest["source"]["detector_weights"] == tiny_files.detector_weights and manifest["opset"] == 17
    # tools/infer.py on the exported folder
    infer = load_tool("infer")
    img = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(img), _images()[2])
    rc = infer.main(["--input", str(img), "--output", str(tmp_path / "out"), "--runtime", "onnxruntime",
                     "--onnx-dir", str(out), "--device", "cpu", "--quiet", "--no-vis"])
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert rc == 0 and res["model"]["runtime"] == "onnxruntime" and len(res["images"][0]["faces"]) == 3
    assert export.main(["--output", str(tmp_path / "x"), "--opset", "11"]) == 2


def test_missing_onnxruntime_says_how_to_install(monkeypatch, tiny_files):
    import sys

    from maskface.export.onnx_export import require_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[onnx\]"'):
        require_onnxruntime()
    with pytest.raises(ImportError, match="optional packages onnx and onnxruntime"):
        FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", runtime="onnxruntime")
    with pytest.raises(ValueError, match="runtime must be one of"):
        FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", runtime="tensorrt")


def test_sessions_do_not_busy_wait(predictors):
    """ONNX Runtime's threads must not spin between runs: the pipeline's PyTorch work (crops,
    mask pasting) runs on the same cores right after each call."""
    _, onnx_p = predictors
    for net in (onnx_p.detector, onnx_p.attribute_net):
        opts = net.session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert opts.intra_op_num_threads == 1  # the threads asked for are kept
