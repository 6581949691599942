"""Square crops, close-ups and copy-paste of masked faces (maskface.data.face_augment) and the
mapper that applies them: boxes, masks and ignore regions stay consistent, and the result is a
function of the seed."""

import numpy as np
import pytest

from maskface.data import face_augment as A
from maskface.data.coco_faces import load_coco_faces
from maskface.data.mapper import DatasetMapper
from maskface.data.synthetic import make_synthetic_coco


def test_square_crop_holds_a_face_and_closeups_frame_one():
    boxes = np.array([[100, 100, 160, 170], [10, 10, 20, 22]], np.float32)
    for seed in range(30):
        x0, y0, side = A.choose_square_crop(boxes, 300, 400, np.random.default_rng(seed), scales=(0.3, 1.0))
        assert 0 <= x0 <= 400 - side and 0 <= y0 <= 300 - side and 90 <= side <= 300
        kept, moved, _ = A.crop_targets(boxes, np.zeros((0, 4), np.float32), (x0, y0, side))
        assert kept.any() and (moved >= 0).all() and (moved <= side).all()
    for seed in range(30):
        x0, y0, side = A.choose_square_crop(boxes, 300, 400, np.random.default_rng(seed), closeup_prob=1.0)
        assert 70 <= side <= 70 * 1.4 + 1  # only the 70 px face is large enough for a close-up
        assert x0 <= 100 + 0.1 * side + 1 and x0 + side >= 160 - 0.1 * side - 1
    assert A.choose_square_crop(np.zeros((0, 4), np.float32), 300, 400, np.random.default_rng(0)) is None


def test_crop_targets_turns_cut_faces_into_ignore_regions():
    boxes = np.array([[10, 10, 50, 50], [90, 10, 130, 50], [40, 60, 140, 160]], np.float32)
    crowd = np.array([[0, 0, 5, 5]], np.float32)
    kept, moved, ign = A.crop_targets(boxes, crowd, (0, 0, 100))
    # face 0 inside; faces 1 and 2 have their centres inside but only 25 % / 40 % of their boxes
    assert kept.tolist() == [True, False, False]
    np.testing.assert_allclose(moved, [[10, 10, 50, 50]])
    np.testing.assert_allclose(ign, [[0, 0, 5, 5], [90, 10, 100, 50], [40, 60, 100, 100]])
    kept, moved, ign = A.crop_targets(boxes, crowd, (20, 0, 140))
    assert kept.tolist() == [True, True, True]  # >= 60 % of each box inside
    np.testing.assert_allclose(moved[0], [0, 10, 30, 50])
    assert len(ign) == 0  # the crowd region fell outside


@pytest.fixture(scope="module")
def mask_records(tmp_path_factory):
    d = tmp_path_factory.mktemp("paste")
    path = make_synthetic_coco(str(d), num_images=4, size=(160, 160), faces_per_image=(1, 1), seed=3, min_face=60)
    return load_coco_faces(path)


def test_paste_faces_avoid_occupied_boxes_and_carry_masks(mask_records):
    pool = A.FacePastePool(mask_records, min_face=48)
    assert len(pool) == 4
    rgb, alpha, fmask, box = pool.patch(0)
    assert rgb.shape[:2] == alpha.shape == fmask.shape and rgb.shape[0] == rgb.shape[1]
    assert alpha[rgb.shape[0] // 2, rgb.shape[0] // 2] == 1.0 and alpha[0, 0] == 0.0
    image = np.full((240, 320, 3), 40, np.uint8)
    occupied = np.array([[0, 0, 160, 240]], np.float32)  # left half is taken
    out, boxes, masks = A.paste_faces(image, occupied, pool, np.random.default_rng(0), count=(6, 6), sizes=(10, 40))
    assert len(boxes) >= 3 and masks.shape == (len(boxes), 240, 320)
    assert (out[:, :160] == 40).all()  # nothing pasted over the occupied half
    assert (boxes[:, 0] >= 160).all()
    for b, m in zip(boxes, masks):
        ys, xs = np.nonzero(m)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(b.astype(int))
        assert 5 <= max(b[2] - b[0], b[3] - b[1]) <= 45
    out2, boxes2, _ = A.paste_faces(image, occupied, pool, np.random.default_rng(0), count=(6, 6), sizes=(10, 40))
    assert (out2 == out).all() and (boxes2 == boxes).all()


def test_mapper_with_crops_and_paste_is_consistent_and_seeded(mask_records):
    mapper = DatasetMapper(
        True, min_sizes=(128,), max_size=128, crop_prob=1.0, closeup_prob=0.5,
        paste_pool=A.FacePastePool(mask_records), paste_prob=1.0, paste_count=(2, 4), paste_sizes=(8, 30),
    )
    pasted_total = 0
    for seed in range(6):
        image, t = mapper(mask_records[seed % 4], np.random.default_rng(seed))
        assert image.shape == (3, 128, 128)
        assert len(t["boxes"]) == len(t["masks"]) == len(t["has_mask"]) == len(t["attributes"]["age"]) >= 1
        for b, m, hm in zip(t["boxes"], t["masks"], t["has_mask"]):
            assert hm  # every face here has a mask: the original's and the pasted ones
            ys, xs = np.nonzero(m.numpy())
            assert len(xs) and xs.min() >= b[0] - 1 and xs.max() <= b[2] + 1 and ys.min() >= b[1] - 1 and ys.max() <= b[3] + 1
        pasted_total += int((~t["attributes"]["age_known"]).sum())  # pasted faces carry no attributes
        again, t2 = mapper(mask_records[seed % 4], np.random.default_rng(seed))
        assert (again == image).all() and (t2["boxes"] == t["boxes"]).all()
    assert pasted_total >= 4  # close-ups leave little room, the other crops some


def test_mapper_checks_its_augmentation_options():
    with pytest.raises(ValueError, match="crop_prob"):
        DatasetMapper(True, crop_prob=1.5)
    with pytest.raises(ValueError, match="crop_scales"):
        DatasetMapper(True, crop_scales=(0.0, 1.0))
    with pytest.raises(ValueError, match="paste_pool"):
        DatasetMapper(True, paste_prob=0.5)
