"""How the detector reads a picture: the native-size rule, tiles of large pictures and their merge."""

import pytest
import torch

from maskface.config import get_cfg
from maskface.modeling.read_plan import ReadPlan, inner_edge_keep, input_scale, tile_windows


def test_input_scale_rules():
    # torchvision's rule: the shorter side to min_size, up or down, longer side capped
    assert input_scale(480, 640, 480, 640) == 1.0
    assert input_scale(768, 1024, 480, 640) == pytest.approx(0.625)
    assert input_scale(250, 250, 480, 640) == pytest.approx(1.92)
    # native: own size between the bounds, enlarged when small, shrunk when too large
    assert input_scale(768, 1024, 480, 1280, "native") == 1.0
    assert input_scale(250, 250, 480, 1280, "native") == pytest.approx(1.92)
    assert input_scale(3000, 4000, 480, 1280, "native") == pytest.approx(0.32)
    assert input_scale(100, 1000, 480, 1280, "native") == pytest.approx(1.28)  # a strip: longer side caps
    with pytest.raises(ValueError, match="resize mode"):
        input_scale(10, 10, 480, 640, "fit")
    with pytest.raises(ValueError, match="positive"):
        input_scale(0, 10, 480, 640)


def test_tile_windows_cover_the_picture_with_the_overlap():
    windows = tile_windows(3000, 4000, 1280, 256)
    assert len(windows) == 4 * 3
    assert {(x1 - x0, y1 - y0) for x0, y0, x1, y1 in windows} == {(1192, 1171)}  # one size: one batch
    for axis, side, size in ((0, 4000, 1192), (1, 3000, 1171)):
        starts = sorted({w[axis] for w in windows})
        assert starts[0] == 0 and starts[-1] + size == side
        assert all(b - a <= size - 256 for a, b in zip(starts, starts[1:]))  # neighbours overlap by >= 256 px
    covered = torch.zeros(3000, 4000, dtype=torch.bool)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # just over the bound: two windows no larger than needed, not two of 1280 px
    assert tile_windows(1200, 1600, 1280, 256) == [(0, 0, 928, 1200), (672, 0, 1600, 1200)]
    assert tile_windows(500, 2000, 1280, 256) == [(0, 0, 1128, 500), (872, 0, 2000, 500)]  # a panorama strip
    assert tile_windows(400, 600, 1280, 256) == [(0, 0, 600, 400)]
    with pytest.raises(ValueError, match="overlap"):
        tile_windows(100, 100, 64, 64)


def test_faces_cut_by_an_inner_tile_edge_are_dropped():
    boxes = torch.tensor([[10.0, 10, 50, 50], [1270, 100, 1300, 140], [1200, 100, 1279, 140], [0, 0, 30, 30]])
    # a tile in the top-left corner of a larger picture: right and bottom edges are inner edges
    keep = inner_edge_keep(boxes, (0, 0, 1280, 1280), 3000, 4000)
    assert keep.tolist() == [True, False, False, True]  # the picture's own border does not cut
    assert inner_edge_keep(boxes, (0, 0, 4000, 3000), 3000, 4000).all()


def _fake_detector(faces, calls=None):
    """detect_unpasted of a 'detector' that finds the given faces (picture px) wherever they lie
    wholly, or partly, inside its input. Inputs must be crops or rescales of the picture: the
    fake is told how (``calls`` records the input sizes)."""

    def detect(images, score_thresh=None):
        out = []
        for img in images:
            if calls is not None:
                calls.append(tuple(img.shape[-2:]))
            x0, y0, s = img.origin  # set by the test's wrappers below
            boxes = (faces - torch.tensor([x0, y0, x0, y0])) * s
            h, w = img.shape[-2:]
            vis = (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < w) & (boxes[:, 1] < h)
            b = boxes[vis].clone()
            b[:, 0::2] = b[:, 0::2].clamp(0, w)
            b[:, 1::2] = b[:, 1::2].clamp(0, h)
            n = len(b)
            out.append({"boxes": b, "scores": torch.linspace(0.99, 0.9, n) if n else torch.zeros(0),
                        "masks": torch.ones(n, 28, 28) * torch.arange(n)[:, None, None]})
        return out

    return detect


def test_plan_detect_tiles_a_large_picture_and_merges_each_face_once(monkeypatch):
    import maskface.modeling.read_plan as rp

    h, w = 1500, 2600
    faces = torch.tensor([[100.0, 100, 120, 120],       # 20 px: tiles only
                          [1250, 600, 1262, 612],       # 12 px in a tile overlap
                          [1100, 900, 1190, 990],       # 90 px (band): tiles and the whole picture compete
                          [500, 300, 1100, 900]])       # 600 px: too large for the tiles' band
    calls = []
    # The fake detector needs each input's origin and scale: track them through the plan's two
    # operations, a crop (tiles) and a resize (the whole-picture pass).
    real_resize = rp.resize_image

    def resize(img, scale, antialias=False):
        out = real_resize(img, scale, antialias)
        out.origin = (0, 0, out.shape[-1] / w)
        return out

    monkeypatch.setattr(rp, "resize_image", resize)
    plan = ReadPlan(min_size=480, max_size=1280, resize="native", tile=True, merge_band=(64, 128),
                    nms_thresh=0.4, max_detections=100)
    image = torch.zeros(3, h, w)
    windows = plan.tiles(h, w)
    assert windows is not None and len(windows) == 3 * 2

    def detect(images, score_thresh=None):
        for img in images:
            if not hasattr(img, "origin"):  # a tile: find which window it is by identity of storage offset
                off = img.storage_offset()
                y0, x0 = divmod(off, w)
                img.origin = (x0, y0, 1.0)
        return _fake_detector(faces, calls)(images)

    out = plan.detect(detect, [image])[0]
    got = sorted(out["boxes"].tolist())
    assert len(got) == len(faces)  # each face once ...
    for b, f in zip(got, sorted(faces.tolist())):  # ... and whole (1 px: the shrunk pass's rounding)
        assert b == pytest.approx(f, abs=1.0)
    assert out["masks"].shape == (4, 28, 28)  # per-face tensors follow their faces
    assert calls[0] == (round(h * 1280 / w), 1280)  # the whole picture, shrunk to MAX_SIZE
    assert set(calls[1:]) == {(878, 1038)}  # 2 rows x 3 columns of equal tiles, as small as the overlap allows
    assert plan.megapixels_read(h, w) == pytest.approx((round(h * 1280 / w) * 1280 + 6 * 878 * 1038) / 1e6)


def test_plan_reads_a_normal_picture_once_at_its_own_size():
    plan = ReadPlan(min_size=480, max_size=1280, resize="native", tile=True)
    calls = []

    def detect(images, score_thresh=None):
        calls.extend(tuple(i.shape[-2:]) for i in images)
        return [{"boxes": torch.tensor([[10.0, 10, 50, 50]]), "scores": torch.tensor([0.9]),
                 "masks": torch.ones(1, 28, 28)} for _ in images]

    out = plan.detect(detect, [torch.zeros(3, 768, 1024), torch.zeros(3, 200, 300)])
    assert calls == [(768, 1024)] + [(480, 720)]  # own size; a small picture enlarged
    assert out[0]["boxes"].tolist() == [[10, 10, 50, 50]]
    assert out[1]["boxes"].tolist() == [pytest.approx([10 / 2.4, 10 / 2.4, 50 / 2.4, 50 / 2.4])]  # picture px
    assert plan.tiles(768, 1024) is None


def test_plan_from_config_and_bad_combinations():
    cfg = get_cfg()
    cfg.merge_from_file("configs/maskface_MV1_SSH_native.yaml")
    plan = ReadPlan.from_config(cfg)
    assert plan.resize == "native" and plan.tile and plan.max_size == cfg.MODEL.MAX_SIZE
    assert ReadPlan.from_config(cfg, max_size=800).max_size == 800
    with pytest.raises(ValueError, match="MODEL.TILE needs"):
        ReadPlan(min_size=480, max_size=640, resize="shorter_side", tile=True)
    with pytest.raises(ValueError, match="overlap"):
        ReadPlan(min_size=480, max_size=256, resize="native", tile=True, merge_band=(64, 128))
    with pytest.raises(ValueError, match="MODEL.RESIZE"):
        ReadPlan(min_size=480, max_size=640, resize="fit")
    with pytest.raises(ValueError, match="MIN_SIZE / MAX_SIZE"):
        ReadPlan(min_size=480, max_size=0)
