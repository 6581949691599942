"""Model zoo: names, sha256 checks, register_weights (fp16 copies), URL download to the cache,
offline errors, and FacePredictor(model=name)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from maskface.model_zoo import (
    ModelZooError,
    WeightsIntegrityError,
    fetch_weights,
    get_model,
    list_models,
    model_for_config,
    register_weights,
    sha256_file,
    verify_sha256,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from maskface.inference.testing import session_tiny_models

    return session_tiny_models(tmp_path_factory)


def test_builtin_table():
    assert "maskface-lite" in list_models()
    e = get_model("maskface-lite")
    assert Path(e.config_path("detector")).name == "maskface_MV1_SSH_lite.yaml"
    assert e.detector_weights == "weights/maskface_lite_detector.pth"
    assert e.attribute_weights == "weights/maskface_lite_attributes.pth"
    with pytest.raises(ModelZooError, match="unknown model 'nope'; known models: .*maskface-lite"):
        get_model("nope")


def test_zoo_configs_and_their_variants_find_their_model(tmp_path):
    root = Path(__file__).resolve().parents[2]
    assert model_for_config(root / "configs" / "maskface_MV1_SSH_lite.yaml") == "maskface-lite"
    # the crowd setting inherits from the lite config: it runs with maskface-lite's weights
    assert model_for_config(root / "configs" / "maskface_MV1_SSH_crowd.yaml") == "maskface-lite"
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"_BASE_: {root / 'configs' / 'maskface_MV1_SSH_crowd.yaml'}\nMODEL:\n  MIN_SIZE: 900\n")
    assert model_for_config(mine) == "maskface-lite"
    assert model_for_config(root / "configs" / "maskface_R50_FPN.yaml") is None  # a recipe, no zoo weights
    (tmp_path / "loop.yaml").write_text("_BASE_: loop.yaml\n")
    assert model_for_config(tmp_path / "loop.yaml") is None


def test_shipped_detector_finds_the_four_sample_faces():
    """The README's sample: both astronaut copies and both Grace Hopper copies, at the shipped
    threshold, and nothing else (earlier detectors missed both astronauts, then took the
    astronaut's round mission patch for a face)."""
    import cv2

    from maskface.inference.predictor import FacePredictor

    root = Path(__file__).resolve().parents[2]
    p = FacePredictor(attributes=False, device="cpu", retry_pad=0)
    faces = p(cv2.imread(str(root / "samples" / "faces.jpg")))
    expected = [[169, 59, 257, 165], [588, 56, 680, 167], [574, 322, 609, 365], [708, 330, 758, 390]]
    boxes = torch.tensor([f.box for f in faces])
    from torchvision.ops import box_iou

    iou = box_iou(torch.tensor(expected, dtype=torch.float32), boxes.float())
    assert (iou.max(dim=1).values > 0.7).all(), [f.box for f in faces]
    assert all(faces[int(i)].score > 0.95 for i in iou.argmax(dim=1))
    assert len(faces) == 4, [(f.box, f.score) for f in faces]


def test_sha256_mismatch_message(tmp_path):
    p = tmp_path / "w.pth"
    p.write_bytes(b"abc")
    good = sha256_file(p)
    assert verify_sha256(p, good) == good
    with pytest.raises(WeightsIntegrityError) as e:
        verify_sha256(p, "f" * 64)
    assert f"file corrupted or replaced; expected sha256 {'f' * 64} got {good}" in str(e.value)


def test_fp16_storage_keeps_batchnorm_statistics_in_fp32(tmp_path):
    from maskface.model_zoo.registry import _store_weights

    src = tmp_path / "bn.pth"
    torch.save({"model": {"bn.weight": torch.ones(2), "bn.running_var": torch.tensor([1e-8, 2e-6]),
                          "bn.running_mean": torch.tensor([0.5, 1e-7])}}, src)
    _store_weights(str(src), tmp_path / "out.pth", fp16=True)
    sd = torch.load(tmp_path / "out.pth")["model"]
    assert sd["bn.weight"].dtype == torch.float16
    assert sd["bn.running_var"].dtype == torch.float32 and sd["bn.running_var"][0] == 1e-8


def test_register_fp16_and_load(tiny, tmp_path, monkeypatch):
    table = tmp_path / "zoo" / "models.json"
    entry = register_weights("tiny-lite", detector_weights=tiny.detector_weights,
                             attribute_weights=tiny.attribute_weights, detector_config=tiny.detector_config,
                             attribute_config=tiny.attribute_config, fp16=True, models_json=table,
                             description="test")
    assert entry["detector_weights"] == "weights/tiny_lite_detector.pth"
    stored = table.parent / entry["detector_weights"]
    assert entry["detector_sha256"] == sha256_file(stored)
    sd = torch.load(stored, weights_only=False)["model"]
    assert all(v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    assert stored.stat().st_size < 0.6 * Path(tiny.detector_weights).stat().st_size
    e = get_model("tiny-lite", models_json=table)
    assert e.weights_path("detector") == str(stored)
    # fp16 storage is cast back on load; attributes come from the entry
    monkeypatch.setenv("MASKFACE_MODELS_JSON", str(table))
    from maskface.inference.predictor import FacePredictor

    p = FacePredictor("tiny-lite", device="cpu")
    assert p.has_attributes and p.model_info["name"] == "tiny-lite"
    assert next(p.detector.parameters()).dtype == torch.float32
    faces = p(np.zeros((64, 64, 3), np.uint8))
    assert faces and faces[0].age is not None
    # tampering is caught at load
    with open(stored, "ab") as f:
        f.write(b"x")
    with pytest.raises(WeightsIntegrityError, match="file corrupted or replaced"):
        FacePredictor("tiny-lite", device="cpu")
    # updating keeps the other fields
    register_weights("tiny-lite", detector_weights=tiny.detector_weights, models_json=table)
    again = json.loads(table.read_text())["tiny-lite"]
    assert again["description"] == "test" and again["attribute_sha256"] == entry["attribute_sha256"]


def test_missing_weights_message(tmp_path):
    table = tmp_path / "models.json"
    table.write_text(json.dumps({"m": {"detector_config": "configs/maskface_R18_FPN_lite.yaml",
                                       "detector_weights": "weights/absent.pth"}}))
    with pytest.raises(ModelZooError, match="weights/absent.pth .*place the file at") as e:
        get_model("m", models_json=table).weights_path("detector")
    assert str(tmp_path / "weights" / "absent.pth") in str(e.value)


def test_url_download_cache_and_offline(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MASKFACE_CACHE", str(cache))
    src = tmp_path / "remote" / "big_model.pth"
    src.parent.mkdir()
    src.write_bytes(b"weights" * 100)
    sha = sha256_file(src)
    got = fetch_weights("weights/big_model.pth", sha256=sha, url=src.as_uri())
    assert got == str(cache / "big_model.pth") and sha256_file(got) == sha
    src.unlink()  # cached now: no download needed
    assert fetch_weights("weights/big_model.pth", sha256=sha, url=src.as_uri()) == got
    # a download whose content does not match is not kept
    other = tmp_path / "remote" / "other.pth"
    other.write_bytes(b"tampered")
    with pytest.raises(WeightsIntegrityError):
        fetch_weights(None, sha256=sha, url=other.as_uri())
    assert not (cache / "other.pth").exists() and not list(cache.glob("*.part"))
    # offline: tell the user where to put the file
    with pytest.raises(ModelZooError) as e:
        fetch_weights("weights/x.pth", sha256=sha, url="http://127.0.0.1:9/x.pth", timeout=5)
    msg = str(e.value)
    assert "could not download http://127.0.0.1:9/x.pth" in msg and str(cache / "x.pth") in msg
    # a local path always works, URL or not
    local = tmp_path / "local.pth"
    local.write_bytes(b"weights" * 100)
    assert fetch_weights(str(local), sha256=sha, url="http://127.0.0.1:9/x.pth") == str(local)
