"""Shared converter pieces: attribute spellings, the builder's paths and report, mask helpers."""

import numpy as np
import pytest
from PIL import Image

from maskface.data.attributes import EMOTIONS, normalize_age, normalize_emotion, normalize_gender
from maskface.data.converters.common import (
    CocoFacesBuilder,
    ConversionError,
    clip_box,
    collect_attributes,
    image_size,
    keep_main_components,
    mask_to_rle,
    rle_area_bbox,
)


@pytest.mark.parametrize(
    "raw, name",
    [("Happiness", "happy"), (" surprised ", "surprise"), ("ANGER", "angry"), ("fearful", "fear"),
     ("disgusted", "disgust"), ("sadness", "sad"), ("neutral", "neutral"), ("contempt", None), (3, None)],
)  # fmt: skip
def test_normalize_emotion(raw, name):
    assert normalize_emotion(raw) == name
    assert name is None or name in EMOTIONS


def test_normalize_gender_and_age():
    assert [normalize_gender(v) for v in ("F", "Woman", "male", "m", "x", 0, 1)] == [
        "female", "female", "male", "male", None, None, None
    ]  # fmt: skip
    assert [normalize_age(v) for v in (31, "31.5", " 0 ", 120, 121, -1, "abc", True, float("nan"))] == [
        31.0, 31.5, 0.0, 120.0, None, None, None, None, None
    ]  # fmt: skip


def test_collect_attributes():
    attrs, problems = collect_attributes([("gender", "F"), ("gender", "female"), ("age", "x"), ("hair", "red")])
    assert attrs == {"gender": "female"} and problems == ["invalid age 'x'"]
    assert collect_attributes([("emotion", "sad"), ("emotion", "happy")])[1] == [
        "conflicting emotion values ['sad', 'happy']"
    ]


def test_builder_paths_report_and_output(tmp_path):
    builder = CocoFacesBuilder("toy", tmp_path / "root")
    inside = builder.add_image(tmp_path / "root" / "a" / "b.jpg", 40, 30, identity="p1", split=None)
    builder.add_image(tmp_path / "other.jpg", 40, 30)
    builder.add_face(inside, [1, 2, 3.333333, 4], attributes={"age": None, "gender": "male"}, wider_flags={"blur": 1})
    builder.skip("bad line", "f.txt:3", "broken")
    builder.skip("bad line", "f.txt:9", "broken", count=2)
    builder.note("clipped")
    data = builder.to_coco(inputs=[tmp_path])
    assert data["image_root"] == str(tmp_path / "root")
    assert [im["file_name"] for im in data["images"]] == ["a/b.jpg", str(tmp_path / "other.jpg")]
    assert data["images"][0] == {"id": 1, "file_name": "a/b.jpg", "width": 40, "height": 30, "source": "toy",
                                 "identity": "p1"}  # fmt: skip
    (face,) = data["annotations"]
    assert face["bbox"] == [1, 2, 3.33, 4] and face["area"] == 13.32 and face["attributes"] == {"gender": "male"}
    assert "segmentation" not in face and face["wider_flags"] == {"blur": 1}
    assert data["info"]["skipped"] == {"bad line": 3} and data["info"]["notes"] == {"clipped": 1}
    assert data["categories"][0]["name"] == "face" and data["info"]["converter_version"]

    strict = CocoFacesBuilder("toy", tmp_path, strict=True)
    with pytest.raises(ConversionError, match=r"^f\.txt:3: broken$"):
        strict.skip("bad line", "f.txt:3", "broken")


def test_mask_helpers():
    mask = np.zeros((20, 30), bool)
    mask[2:8, 3:13] = True  # 60 px component
    mask[15, 25] = True  # 1 px speck
    kept = keep_main_components(mask, 0.05)
    assert kept.sum() == 60 and not kept[15, 25]
    assert keep_main_components(mask, 0.0).sum() == 61
    area, bbox = rle_area_bbox(mask_to_rle(kept))
    assert area == 60 and bbox == [3, 2, 10, 6]
    assert clip_box([-5, 10, 20, 30], 12, 25) == [0, 10, 12, 15]


def test_image_size_follows_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: OpenCV decodes it as 30 x 40
    Image.new("RGB", (40, 30)).save(tmp_path / "rotated.jpg", exif=exif)
    Image.new("RGB", (40, 30)).save(tmp_path / "plain.jpg")
    assert image_size(tmp_path / "rotated.jpg") == (30, 40)
    assert image_size(tmp_path / "plain.jpg") == (40, 30)
