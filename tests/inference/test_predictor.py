"""FacePredictor on tiny random-weight models: input forms, colour order, batching (one
attribute call per batch), max-size mapping back to original pixels, checkpoint errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from maskface.inference.predictor import FacePredictor
from maskface.inference.results import Face

ATTR_FIELDS = ("age", "age_std", "age_group", "gender", "gender_prob", "emotion", "emotion_probs")


def _img(seed=0, h=96, w=128):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_single_batch_and_colour(tiny_predictor):
    img = _img()
    faces = tiny_predictor(img)
    assert isinstance(faces, list) and faces and all(isinstance(f, Face) for f in faces)
    f = faces[0]
    assert f.mask.shape == (96, 128) and f.mask.dtype == bool
    assert 0 <= f.box[0] <= f.box[2] <= 128 and 0 <= f.box[1] <= f.box[3] <= 96
    assert all(getattr(f, k) is not None for k in ATTR_FIELDS)
    assert f.gender in ("female", "male") and 0.5 <= f.gender_prob <= 1
    rgb_faces = tiny_predictor(img[:, :, ::-1].copy(), color="rgb")  # same pixels, told it is RGB
    assert np.allclose([g.box for g in rgb_faces], [g.box for g in faces], atol=1e-3)
    batch = tiny_predictor([img, _img(1, 64, 80)])
    assert len(batch) == 2 and batch[1][0].mask.shape == (64, 80)
    stacked = tiny_predictor(np.stack([img, img]))
    assert len(stacked) == 2
    t = tiny_predictor.timings
    assert {"preprocess_ms", "detector_ms", "attributes_ms", "postprocess_ms", "total_ms"} <= set(t)
    assert t["images"] == 2 and t["faces"] == sum(len(x) for x in stacked)


def test_one_attribute_call_per_batch(tiny_predictor, monkeypatch):
    calls = []
    net = tiny_predictor.attribute_net
    orig = net.forward

    def counting(crops):
        calls.append(crops.shape[0])
        return orig(crops)

    monkeypatch.setattr(net, "forward", counting)
    out = tiny_predictor([_img(2), _img(3), _img(4)])
    assert calls == [sum(len(x) for x in out)]


def test_path_input_with_exif(tiny_predictor, tmp_path):
    arr = _img(5, 60, 100)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif)
    faces = tiny_predictor(str(p))
    assert faces and faces[0].mask.shape == (100, 60)  # rotated: 60 wide, 100 high
    res = tiny_predictor.predict_results([str(p)])[0]
    assert (res.width, res.height, res.file) == (60, 100, str(p))


def test_bad_inputs(tiny_predictor):
    with pytest.raises(ValueError, match=r"expected a 3-channel image, got shape \(20, 30\)"):
        tiny_predictor(np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match="color"):
        tiny_predictor(_img(), color="yuv")
    with pytest.raises(TypeError):
        tiny_predictor(torch.zeros(3, 10, 10))


class _FakeDetector(torch.nn.Module):
    """Returns one face covering the box [w/4, h/4, w/2, 3h/4] of whatever it is given."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, images):
        outs = []
        for im in images:
            h, w = im.shape[-2:]
            self.seen.append((h, w))
            m = torch.zeros(1, 1, h, w)
            m[..., h // 4: 3 * h // 4, w // 4: w // 2] = 1.0
            outs.append({"boxes": torch.tensor([[w / 4, h / 4, w / 2, 3 * h / 4]]), "scores": torch.tensor([0.9]),
                         "labels": torch.tensor([1]), "masks": m})
        return outs


def test_max_size_maps_back_to_original_pixels(tiny_files):
    p = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", max_size=100)
    p.detector = _FakeDetector()
    faces = p(np.zeros((300, 400, 3), np.uint8))
    assert p.detector.seen == [(75, 100)]  # processed at 100 px longest side
    f = faces[0]
    assert f.box == pytest.approx([100, 75, 200, 225], abs=0.5)
    assert f.mask.shape == (300, 400)
    assert abs(int(f.mask.sum()) - 100 * 150) < 0.05 * 100 * 150
    ys, xs = np.nonzero(f.mask)
    assert abs(xs.min() - 100) <= 3 and abs(xs.max() - 199) <= 3 and abs(ys.min() - 75) <= 3
    small = p(np.zeros((60, 80, 3), np.uint8))[0]  # never enlarged
    assert p.detector.seen[-1] == (60, 80) and small.box == pytest.approx([20, 15, 40, 45])


def _faces_match_the_detectors_forward(p, img):
    """The predictor's faces of ``img`` (uint8 RGB) are the detector's own forward's on the float
    picture (boxes in the picture's pixels, full-picture masks); returns them."""
    faces = p(img, color="rgb")
    with torch.no_grad():
        ref = p.detector([torch.from_numpy(img).permute(2, 0, 1).float() / 255])[0]
    keep = ref["scores"] >= p.score_thresh
    assert len(faces) == int(keep.sum()) > 0
    assert np.allclose([f.box for f in faces], ref["boxes"][keep].numpy(), atol=1e-2)
    assert all(f.mask.shape == img.shape[:2] for f in faces)
    return faces


def test_two_pass_setting_matches_the_detector_and_adds_the_second_pass(tiny_files):
    """MODEL.EXTRA_PASS_SIZE: the predictor (its own resize, unpasted masks) finds the same faces as
    the detector's own two-pass forward, and they include faces of the second pass."""
    opts = ["MODEL.EXTRA_PASS_SIZE", "[64, 96]", "MODEL.MERGE_BAND", "[8, 40]", "MODEL.DETECTIONS_PER_IMAGE", "6"]
    p = FacePredictor(**tiny_files.predictor_kwargs(attributes=False), device="cpu", detector_opts=opts)
    one = FacePredictor(**tiny_files.predictor_kwargs(attributes=False), device="cpu",
                        detector_opts=["MODEL.DETECTIONS_PER_IMAGE", "6"])
    img = _img(7, 120, 160)
    faces = _faces_match_the_detectors_forward(p, img)
    single = {tuple(np.round(f.box, 1)) for f in one(img, color="rgb")}
    assert {tuple(np.round(f.box, 1)) for f in faces} != single  # the second pass changed the faces


def test_native_tiled_setting_matches_the_detector_and_reads_tiles(tiny_files):
    """MODEL.RESIZE native + MODEL.TILE: a picture larger than MAX_SIZE is read in tiles at its own
    size plus once shrunk; the predictor (uint8 picture, unpasted masks) finds the same faces as the
    detector's own forward on the float picture, in the picture's pixels."""
    opts = ["MODEL.RESIZE", "native", "MODEL.TILE", "True", "MODEL.MIN_SIZE", "64", "MODEL.MAX_SIZE", "96",
            "MODEL.MERGE_BAND", "[8, 24]", "MODEL.DETECTIONS_PER_IMAGE", "20"]
    p = FacePredictor(**tiny_files.predictor_kwargs(attributes=False), device="cpu", detector_opts=opts)
    img = _img(7, 150, 200)
    plan = p.read_plan()
    assert len(plan.tiles(150, 200)) == 4 * 3  # 96 px tiles overlapping by 48 px
    faces = _faces_match_the_detectors_forward(p, img)
    shrunk = FacePredictor(**tiny_files.predictor_kwargs(attributes=False), device="cpu",
                           detector_opts=opts[:3] + ["False"] + opts[4:])  # TILE False: shrunk to 96 px
    assert {tuple(np.round(f.box, 1)) for f in faces} != {tuple(np.round(f.box, 1)) for f in shrunk(img, color="rgb")}
    with pytest.raises(ValueError, match="overlap"):
        p.max_size = 40  # tiles smaller than their overlap (2 x MERGE_BAND[1] = 48 px)


def test_without_attribute_net(tiny_files):
    p = FacePredictor(detector_config=tiny_files.detector_config, detector_weights=tiny_files.detector_weights,
                      device="cpu", score_thresh=0.0)
    assert not p.has_attributes and p.attr_cfg is None
    faces = p(_img())
    assert faces and all(getattr(f, k) is None for f in faces for k in ATTR_FIELDS)
    assert faces[0].to_dict()["age"] is None


def test_checkpoint_errors(tiny_files, tmp_path):
    with pytest.raises(ValueError, match="no detector weights"):
        FacePredictor(detector_config=tiny_files.detector_config, device="cpu")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        FacePredictor(detector_config=tiny_files.detector_config, detector_weights=str(tmp_path / "x.pth"),
                      device="cpu")
    with pytest.raises(RuntimeError, match="does not match the model"):
        FacePredictor(detector_config=tiny_files.detector_config, detector_weights=tiny_files.attribute_weights,
                      device="cpu")
    with pytest.raises(RuntimeError, match="does not match the model"):  # wrong config for the weights
        FacePredictor(detector_config=tiny_files.detector_config, detector_weights=tiny_files.detector_weights,
                      detector_opts=["MODEL.FPN_CHANNELS", "64"], device="cpu")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        FacePredictor(detector_config=tiny_files.detector_config, detector_weights=str(junk), device="cpu")


def test_thresholds_settable_between_calls(tiny_files):
    p = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", score_thresh=0.0)
    img = _img(6)
    n_all = len(p(img))
    p.score_thresh = 0.99  # random weights score ~0.5
    assert p.detector.roi_heads.score_thresh == 0.99 and p(img) == []
    p.score_thresh = 0.0
    assert len(p(img)) == n_all
    p.max_size = 64
    assert p.detector.transform.max_size == 64 and p.detector.transform.min_size == (64,)
    faces = p(img)
    assert faces and faces[0].mask.shape == img.shape[:2]
    p.max_size = 192
    assert p.detector.transform.min_size == (128,)
    with pytest.raises(ValueError, match="max_size"):
        p.max_size = 8


def test_pad_detects_on_a_bordered_image_and_maps_back(tiny_files):
    p = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", pad=0.25, max_size=400)
    p.detector = _FakeDetector()
    img = np.full((100, 200, 3), 200, np.uint8)
    (f,) = p(img)
    assert p.detector.seen == [(150, 300)]  # 25 px top / bottom, 50 px left / right
    # the fake face [75, 37.5, 150, 112.5] of the padded image, in original pixels
    assert f.box == pytest.approx([25, 12.5, 100, 87.5])
    assert f.mask.shape == (100, 200)
    ys, xs = np.nonzero(f.mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (12, 86, 25, 99)
    assert f.age is not None and f.to_dict()["mask"]["size"] == [100, 200]
    assert p.model_info["pad"] == 0.25
    p.pad = 0.0  # settable; 0 = the image as it is
    assert p(img)[0].box == pytest.approx([50, 25, 100, 75]) and p.detector.seen[-1] == (100, 200)
    assert "pad" not in p.model_info  # results.json records the border actually used
    with pytest.raises(ValueError, match="pad must be in"):
        p.pad = 3.0


def test_unpad_face_clips_and_drops_border_faces():
    from maskface.inference.padding import pad_image, unpad_face

    padded, (px, py) = pad_image(np.zeros((10, 20, 3), np.uint8), 0.5)
    assert padded.shape == (20, 40, 3) and (px, py) == (10, 5) and padded[0, 0].tolist() == [128, 128, 128]
    mask = np.zeros((20, 40), bool)
    mask[2:12, 5:15] = True
    f = unpad_face(Face(box=[5.0, 2.0, 15.0, 12.0], score=0.9, mask=mask), px, py, 20, 10)
    assert f.box == [0.0, 0.0, 5.0, 7.0] and f.mask.shape == (10, 20) and f.mask.sum() == 7 * 5
    in_border = np.zeros((20, 40), bool)
    in_border[0:4, 0:8] = True
    assert unpad_face(Face(box=[0.0, 0.0, 8.0, 4.0], score=0.9, mask=in_border), px, py, 20, 10) is None


class _BorderOnlyDetector(_FakeDetector):
    """Finds its face only when the image has a grey border (the corner pixel is the pad grey)
    and a bright centre (a dark image has no face at all)."""

    def forward(self, images):
        outs = super().forward(images)
        for im, out in zip(images, outs):
            h, w = im.shape[-2:]
            if abs(float(im[0, 0, 0]) * 255 - 128) > 1 or float(im[0, h // 2, w // 2]) < 0.5:
                out.update(boxes=out["boxes"][:0], scores=out["scores"][:0], labels=out["labels"][:0], masks=out["masks"][:0])
        return outs


def test_retry_pad_finds_a_frame_filling_face_and_maps_back(tiny_files):
    p = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", max_size=400)
    p.detector = _BorderOnlyDetector()
    img = np.full((100, 200, 3), 200, np.uint8)
    blank = np.full((60, 80, 3), 10, np.uint8)  # no face, with or without a border
    faces, faces_blank = p.predict_batch([img, blank])
    # first pass: both images as they are (nothing); the retry: both again with a 25 % border
    assert p.detector.seen == [(100, 200), (60, 80), (150, 300), (90, 120)]
    (f,) = faces
    assert f.box == pytest.approx([25, 12.5, 100, 87.5]) and f.mask.shape == (100, 200)
    assert faces_blank == [] and p.model_info["retry_pad"] == 0.25
    p.retry_pad = 0.0  # off: one pass, nothing found
    p.detector.seen.clear()
    assert p(img) == [] and p.detector.seen == [(100, 200)]
    with pytest.raises(ValueError, match="pad must be in"):
        FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", retry_pad=-1)


def test_retry_pad_not_used_when_faces_are_found_or_pad_is_set(tiny_files):
    p = FacePredictor(**tiny_files.predictor_kwargs(), device="cpu", max_size=400)
    p.detector = _FakeDetector()
    assert len(p(np.zeros((100, 200, 3), np.uint8))) == 1 and p.detector.seen == [(100, 200)]
    p.pad, p.detector = 0.5, _BorderOnlyDetector()
    assert len(p(np.full((100, 200, 3), 200, np.uint8))) == 1 and p.detector.seen == [(200, 400)]


def test_attributes_later_equal_attributes_at_once(tiny_predictor_for_split):
    """predict_batch(attributes=False) + predict_attributes == predict_batch: the split that live
    video uses to run the attribute net only for some faces."""
    from skimage import data

    pred = tiny_predictor_for_split
    img = np.ascontiguousarray(data.astronaut()[::2, ::2])
    full = pred.predict_batch([img], color="rgb")[0]
    bare = pred.predict_batch([img], color="rgb", attributes=False)[0]
    assert len(full) == len(bare) > 0 and not any(f.has_attributes for f in bare)
    pred.predict_attributes([img], [bare[:1]], color="rgb")
    assert bare[0].age == pytest.approx(full[0].age, abs=1e-4) and bare[0].emotion == full[0].emotion
    assert not bare[1].has_attributes
    with pytest.raises(ValueError, match="2 images but 1 face lists"):
        pred.predict_attributes([img, img], [bare], color="rgb")


@pytest.fixture(scope="module")
def tiny_predictor_for_split(tmp_path_factory):
    from maskface.inference.predictor import FacePredictor
    from maskface.inference.testing import write_tiny_models

    files = write_tiny_models(tmp_path_factory.mktemp("split"))
    return FacePredictor(device="cpu", **files.predictor_kwargs())
