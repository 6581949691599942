"""CelebAMask-HQ converter: both layouts, face classes only, mask scaling, gender file."""

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from maskface.data.converters.celebamask import CLASSES

# A 32 x 32 parsing map: skin, eyes, nose, lips, ears, hair, neck, cloth in known rectangles.
REGIONS = {
    "skin": (8, 4, 24, 26),  # x1, y1, x2, y2 (exclusive)
    "l_eye": (11, 10, 14, 12),
    "r_eye": (18, 10, 21, 12),
    "nose": (15, 12, 17, 17),
    "u_lip": (13, 19, 19, 20),
    "l_lip": (13, 20, 19, 21),
    "l_ear": (6, 10, 8, 16),
    "r_ear": (24, 10, 26, 16),
    "hair": (8, 0, 24, 4),
    "neck": (12, 26, 20, 30),
    "cloth": (0, 30, 32, 32),
}
FACE_PIXELS = 16 * 22  # skin rectangle; eyes / nose / lips lie inside it
EAR_PIXELS = 2 * 2 * 6


def label_map():
    label = np.zeros((32, 32), np.uint8)
    for name, (x1, y1, x2, y2) in REGIONS.items():
        label[y1:y2, x1:x2] = CLASSES.index(name)
    return label


def palette_png(label, path):
    image = Image.fromarray(label, mode="P")
    image.putpalette([v for i in range(256) for v in (i * 13 % 256, i * 71 % 256, i * 29 % 256)])
    image.save(path)


def decode(face):
    rle = face["segmentation"]
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def test_celebamask_labels_layout(tmp_path, convert, load_checked, faces_of):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for n in (0, 1, 10):
        cv2.imwrite(str(tmp_path / "images" / f"{n}.jpg"), np.zeros((64, 64, 3), np.uint8))  # 2x the label maps
        palette_png(label_map(), tmp_path / "labels" / f"{n}.png")
    palette_png(np.zeros((32, 32), np.uint8), tmp_path / "labels" / "1.png")  # no face pixels: skipped
    attributes = tmp_path / "CelebAMask-HQ-attribute-anno.txt"
    attributes.write_text("3\nAttractive Male Smiling\n0.jpg 1 -1 1\n10.jpg -1 1 1\n1.jpg 1 1 1\n")
    out = tmp_path / "celeba.json"
    argv = ["celebamask", tmp_path, "-o", out, "--no-progress"]
    assert convert(*argv, "--attributes-file", attributes) == 0
    data = load_checked(out)
    assert [im["file_name"] for im in data["images"]] == ["0.jpg", "10.jpg"]
    assert data["info"]["skipped"] == {"empty face mask": 1}
    (face,) = faces_of(data, "0.jpg")
    mask = decode(face)
    assert mask.shape == (64, 64) and face["area"] == 4 * FACE_PIXELS  # scaled 2x, hair/neck/cloth/ears out
    assert face["bbox"] == [16, 8, 32, 44]
    assert face["attributes"] == {"gender": "female"}
    assert faces_of(data, "10.jpg")[0]["attributes"] == {"gender": "male"}

    assert convert(*argv, "--include-ears") == 0
    data = load_checked(out)
    assert faces_of(data, "0.jpg")[0]["area"] == 4 * (FACE_PIXELS + EAR_PIXELS)
    assert "attributes" not in faces_of(data, "0.jpg")[0]  # no attribute file: gender unknown


def test_celebamask_parts_layout(tmp_path, convert, load_checked):
    label = label_map()
    (tmp_path / "CelebA-HQ-img").mkdir()
    cv2.imwrite(str(tmp_path / "CelebA-HQ-img" / "2001.jpg"), np.zeros((96, 96, 3), np.uint8))
    parts = tmp_path / "CelebAMask-HQ-mask-anno" / "1"  # k = 2001 // 2000
    parts.mkdir(parents=True)
    for name in REGIONS:
        binary = (label == CLASSES.index(name)).astype(np.uint8) * 255
        cv2.imwrite(str(parts / f"02001_{name}.png"), np.repeat(binary[..., None], 3, axis=2))
    out = tmp_path / "parts.json"
    assert convert("celebamask", tmp_path, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    (face,) = data["annotations"]
    assert data["info"]["layout"] == "parts"
    assert face["area"] == 9 * FACE_PIXELS and face["bbox"] == [24, 12, 48, 66]  # 32 -> 96 px: 3x


def test_celebamask_malformed_attribute_file(tmp_path, convert, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    attributes = tmp_path / "attrs.txt"
    attributes.write_text("1\nMale Smiling\n0.jpg 1\n")
    assert convert("celebamask", tmp_path, "--attributes-file", attributes, "-o", tmp_path / "o.json") == 1
    assert f"{attributes}:3: expected a file name and 2 values of 1/-1" in capsys.readouterr().err
