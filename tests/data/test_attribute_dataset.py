import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskface.data.attribute_dataset import (
    CropCacheError,
    _stored_geometry,
    attribute_faces,
    augment_crops,
    balanced_sampler,
    build_crop_cache,
    cache_meta,
    center_crops,
    check_crop_cache,
    crop_record_faces,
    encode_attributes,
    load_crop_cache,
    load_or_build_crop_cache,
)
from maskface.data.attributes import EMOTIONS
from maskface.data.coco_faces import load_coco_faces
from maskface.data.mapper import read_image_rgb
from maskface.modeling.attributes.crops import DEFAULT_FILL, extract_face_crops

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modeling" / "attributes"))
from synthetic_faces import attribute_face_count, write_faces  # noqa: E402

S, PAD = 24, 3


@pytest.fixture(scope="module")
def colour_json(tmp_path_factory):
    return str(write_faces(tmp_path_factory.mktemp("faces"), "colour", "colour", 8, seed=0))


def test_encode_attributes():
    assert encode_attributes({"age": 31.5, "gender": "male", "emotion": "sad"}) == (31.5, 1, 5)
    age, gender, emotion = encode_attributes({})
    assert math.isnan(age) and gender == -1 and emotion == -1
    assert encode_attributes(None)[1:] == (-1, -1)


def test_attribute_faces_skip_crowd_and_unlabelled(colour_json):
    records = load_coco_faces(colour_json)
    faces = [a for r in records for a in attribute_faces(r)]
    assert len(faces) == attribute_face_count(colour_json)
    assert all(not a["iscrowd"] and a["attributes"] for a in faces)


def test_cache_round_trip(colour_json, tmp_path):
    records = load_coco_faces(colour_json)
    path = tmp_path / "cache" / "train.pt"
    info = build_crop_cache(records, S, 0.2, path, pad=PAD, quality=95, num_workers=2)
    assert info["faces"] == attribute_face_count(colour_json) and info["bytes"] == path.stat().st_size
    assert sorted(p.name for p in path.parent.iterdir()) == ["train.pt"]  # atomic: no temp file left
    cache = load_crop_cache(path)
    assert len(cache) == info["faces"] and cache.images.shape == (info["faces"], 3, S + 2 * PAD, S + 2 * PAD)
    assert cache.images.dtype == torch.uint8 and cache.sources == ["colour"]
    labels = [encode_attributes(a["attributes"]) for r in records for a in attribute_faces(r)]
    assert np.allclose(cache.age.numpy(), [lab[0] for lab in labels], equal_nan=True)
    assert cache.gender.tolist() == [lab[1] for lab in labels]
    assert cache.emotion.tolist() == [lab[2] for lab in labels]
    # The centre of a stored crop is the crop the model gets at inference, up to JPEG noise
    # (large on these tiny, saturated synthetic crops; the geometry itself is exact, see below).
    direct, _ = crop_record_faces(records[0], S, 0.2)
    diff = (center_crops(cache.images[: len(direct)], S).float() - direct.float()).abs().mean()
    assert diff < 6.0


def test_stored_crop_centre_is_exactly_the_model_crop(colour_json):
    record = load_coco_faces(colour_json)[2]  # two faces, one with a polygon mask
    stored_side, stored_margin = _stored_geometry(S, 0.2, PAD)
    model, _ = crop_record_faces(record, S, 0.2)
    stored, _ = crop_record_faces(record, stored_side, stored_margin)
    assert len(model) == 2 and torch.equal(center_crops(stored, S), model)
    with torch.no_grad():  # and crop_record_faces is extract_face_crops on the record's image
        img = read_image_rgb(record["file_name"])
        x, y, w, h = record["annotations"][0]["bbox"]
        again = extract_face_crops(img, [[x, y, x + w, y + h]], size=S, margin=0.2, normalize=False)
    assert torch.equal(again.round().to(torch.uint8)[0], model[0])


def test_cache_checks(colour_json, tmp_path):
    records = load_coco_faces(colour_json)
    path = tmp_path / "c.pt"
    build_crop_cache(records, S, 0.2, path, pad=PAD)
    cache = load_crop_cache(path)
    check_crop_cache(cache, cache_meta(S, 0.2, PAD), ["colour"])
    with pytest.raises(CropCacheError, match="margin"):
        check_crop_cache(cache, cache_meta(S, 0.3, PAD))
    with pytest.raises(CropCacheError, match="datasets"):
        check_crop_cache(cache, cache_meta(S, 0.2, PAD), ["other"])
    with pytest.raises(CropCacheError, match="ellipse_union"):
        check_crop_cache(cache, cache_meta(S, 0.2, PAD, ellipse_union=True))
    # caches written before the ellipse_union key existed were built without it
    del cache.meta["ellipse_union"]
    check_crop_cache(cache, cache_meta(S, 0.2, PAD))
    with pytest.raises(CropCacheError, match="ellipse_union"):
        check_crop_cache(cache, cache_meta(S, 0.2, PAD, ellipse_union=True))
    (tmp_path / "bad.pt").write_bytes(b"not a cache")
    with pytest.raises(CropCacheError, match="cannot read"):
        load_crop_cache(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        load_crop_cache(tmp_path / "missing.pt")
    # a cache from an older version of the crop code is refused, with what to do about it
    data = torch.load(path, weights_only=True)
    data["version"] = 2
    torch.save(data, tmp_path / "old.pt")
    with pytest.raises(CropCacheError, match="version 2, expected 3; rebuild it"):
        load_crop_cache(tmp_path / "old.pt")


def test_load_or_build_reuses_existing_cache(colour_json, tmp_path):
    path = tmp_path / "train.pt"
    meta = cache_meta(S, 0.2, PAD)
    first = load_or_build_crop_cache(path, [colour_json], meta)
    stamp = path.stat().st_mtime_ns
    again = load_or_build_crop_cache(path, [colour_json], meta)  # no rebuild
    assert path.stat().st_mtime_ns == stamp and torch.equal(first.images, again.images)
    assert len(load_or_build_crop_cache(path, [], meta)) == len(first)  # the cache alone is enough
    with pytest.raises(CropCacheError, match="size"):
        load_or_build_crop_cache(path, [colour_json], cache_meta(S + 8, 0.2, PAD))
    with pytest.raises(FileNotFoundError, match="no datasets"):
        load_or_build_crop_cache(tmp_path / "none.pt", [], meta)


def test_augment_crops_geometry_colour_and_determinism():
    g = torch.Generator().manual_seed(0)
    stored = torch.randint(0, 256, (6, 3, S + 2 * PAD, S + 2 * PAD), dtype=torch.uint8)
    plain = augment_crops(stored, S, g, hflip_prob=0.0, jitter_scale=0, jitter_shift=0, color_jitter=0,
                          grayscale_prob=0)
    assert torch.allclose(plain, center_crops(stored, S).float(), atol=1e-3)
    flipped = augment_crops(stored, S, g, hflip_prob=1.0, jitter_scale=0, jitter_shift=0, color_jitter=0,
                            grayscale_prob=0)
    assert torch.allclose(flipped, center_crops(stored, S).float().flip(-1), atol=1e-3)
    grey = augment_crops(stored, S, g, grayscale_prob=1.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    # Background (fill grey) stays the fill value under any jitter, and out-of-crop samples are fill.
    bg = torch.full((4, 3, S + 2 * PAD, S + 2 * PAD), int(DEFAULT_FILL[0]), dtype=torch.uint8)
    out = augment_crops(bg, S, g, jitter_scale=0.5, jitter_shift=0.3, color_jitter=0.5, grayscale_prob=0.5)
    assert torch.allclose(out, torch.full_like(out, DEFAULT_FILL[0]), atol=1e-3)
    a = augment_crops(stored, S, torch.Generator().manual_seed(5))
    b = augment_crops(stored, S, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (6, 3, S, S) and a.min() >= 0 and a.max() <= 255


def test_augment_crops_rotation_turns_about_the_centre():
    side = S + 2 * PAD
    yy, xx = torch.meshgrid(torch.arange(side) - (side - 1) / 2, torch.arange(side) - (side - 1) / 2, indexing="ij")
    fill = int(DEFAULT_FILL[0])  # the background, as outside the stored crop: corners turned in show it too
    disk = torch.where((yy**2 + xx**2).sqrt() < S / 3, 230, fill).to(torch.uint8).expand(2, 3, side, side).contiguous()
    bar = torch.where(yy.abs() < 3, 230, fill).to(torch.uint8).expand(2, 3, side, side).contiguous()
    still = dict(hflip_prob=0.0, jitter_scale=0, jitter_shift=0, color_jitter=0, grayscale_prob=0)
    g = torch.Generator().manual_seed(1)
    # A disk about the centre looks the same at any angle; a horizontal bar does not.
    turned_disk = augment_crops(disk, S, g, rotate=45, **still)
    plain_disk = augment_crops(disk, S, g, **still)
    radius = (yy**2 + xx**2).sqrt()[PAD:-PAD, PAD:-PAD]
    changed = ((turned_disk - plain_disk).abs() > 5).any(dim=1)  # (B, S, S)
    assert ((radius - S / 3).abs()[changed.nonzero()[:, 1:].unbind(1)] < 1.5).all()  # only the rim (interpolation)
    turned_bar = augment_crops(bar, S, torch.Generator().manual_seed(1), rotate=45, **still)
    plain_bar = augment_crops(bar, S, g, **still)
    assert ((turned_bar - plain_bar).abs() > 5).float().mean() > 0.03
    c = S // 2
    assert torch.allclose(turned_bar[:, :, c, c], plain_bar[:, :, c, c], atol=1.0)  # the centre stays put


def test_augment_crops_random_erasing_greys_one_rectangle():
    stored = torch.zeros(16, 3, S + 2 * PAD, S + 2 * PAD, dtype=torch.uint8)
    still = dict(hflip_prob=0.0, jitter_scale=0, jitter_shift=0, color_jitter=0, grayscale_prob=0)
    out = augment_crops(stored, S, torch.Generator().manual_seed(3), erase_prob=1.0, **still)
    erased = (out == DEFAULT_FILL[0]).all(dim=1)  # (B, S, S): the fill grey in every channel
    for m in erased:
        rows, cols = m.any(dim=1).nonzero().flatten(), m.any(dim=0).nonzero().flatten()
        assert len(rows) and len(cols), "every crop gets a rectangle at erase_prob=1"
        box = m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert bool(box.all()) and int(box.sum()) == int(m.sum())  # one solid rectangle
        assert 0.005 * S * S <= int(m.sum()) <= 0.3 * S * S
    untouched = augment_crops(stored, S, torch.Generator().manual_seed(3), erase_prob=0.0, **still)
    assert float(untouched.max()) == 0.0


def test_balanced_sampler_mixes_sources_at_the_given_ratio():
    source = torch.tensor([0] * 90 + [1] * 10)
    draws = torch.tensor(list(balanced_sampler(source, [1.0, 1.0], 4000, torch.Generator().manual_seed(0))))
    share = (source[draws] == 1).float().mean().item()
    assert 0.45 < share < 0.55
    uniform = torch.tensor(list(balanced_sampler(source, [], 4000, torch.Generator().manual_seed(0))))
    assert (source[uniform] == 1).float().mean().item() < 0.15
    with pytest.raises(ValueError, match="2 datasets"):
        balanced_sampler(source, [1.0], 10)


def test_cache_keeps_emotion_votes(colour_json, tmp_path):
    """FER+ vote shares travel through the cache into the training targets; a cache whose faces
    have no votes stores none."""
    records = load_coco_faces(colour_json)
    anns = [a for r in records for a in attribute_faces(r)]
    anns[0]["attributes"]["emotion_votes"] = {"happy": 6, "sad": 2, "not_face": 2}
    path = tmp_path / "votes.pt"
    build_crop_cache(records, S, 0.2, path, pad=PAD, num_workers=1)
    cache = load_crop_cache(path)
    assert cache.emotion_votes.shape == (len(anns), 7)
    happy, sad = EMOTIONS.index("happy"), EMOTIONS.index("sad")
    assert cache.emotion_votes[0, happy].item() == pytest.approx(0.75)
    assert cache.emotion_votes[0, sad].item() == pytest.approx(0.25)
    assert cache.emotion_votes[1:].abs().sum() == 0
    targets = cache.targets(torch.tensor([0, 1]))
    assert targets["emotion_votes"].shape == (2, 7)
    del anns[0]["attributes"]["emotion_votes"]
    build_crop_cache(records, S, 0.2, path, pad=PAD, num_workers=1)
    cache = load_crop_cache(path)
    assert cache.emotion_votes is None and "emotion_votes" not in cache.targets(torch.tensor([0]))


def test_cache_keeps_teacher_gender(colour_json, tmp_path):
    """A teacher's gender probability travels through the cache into the training targets; a face
    with only a teacher label is a sample; a cache without teacher labels stores none."""
    records = load_coco_faces(colour_json)
    anns = [a for r in records for a in attribute_faces(r)]
    anns[1]["attributes"]["gender_soft"] = 0.25
    extra = dict(records[0]["annotations"][0], id=999, attributes={"gender_soft": 0.75, "age_teacher": 40.0})
    records[0]["annotations"].append(extra)
    assert extra in attribute_faces(records[0])
    path = tmp_path / "teacher.pt"
    build_crop_cache(records, S, 0.2, path, pad=PAD, num_workers=1)
    cache = load_crop_cache(path)
    assert len(cache) == len(anns) + 1 and cache.gender_soft.shape == (len(cache),)
    known = torch.isfinite(cache.gender_soft)
    assert sorted(cache.gender_soft[known].tolist()) == [0.25, 0.75] and int(known.sum()) == 2
    only_teacher = known & (cache.gender == -1) & cache.age.isnan() & (cache.emotion == -1)
    assert int(only_teacher.sum()) == 1
    assert "gender_soft" in cache.to("cpu").targets(torch.tensor([0, 1]))
    records[0]["annotations"].pop()
    del anns[1]["attributes"]["gender_soft"]
    build_crop_cache(records, S, 0.2, path, pad=PAD, num_workers=1)
    cache = load_crop_cache(path)
    assert cache.gender_soft is None and "gender_soft" not in cache.targets(torch.tensor([0]))
