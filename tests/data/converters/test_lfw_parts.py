"""LFW Part Labels converter: skin region -> exact RLE mask, identity, .ppm and .png masks."""

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def colour_mask(size=250, speck=True):
    """An RGB LFW Parts label: blue background, red hair, a green face and a green neck that the
    hair cuts off, plus (optionally) a 1-pixel green speck. Returns ``(rgb, expected skin mask)``."""
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[:] = BLUE
    cv2.ellipse(rgb, (125, 110), (50, 65), 0, 0, 360, GREEN, -1)
    rgb[30:60, 70:180] = RED  # hair over the forehead
    rgb[180:200, 100:150] = RED  # beard separating the neck
    rgb[200:240, 105:145] = GREEN  # neck: a second component, kept
    expected = (rgb == GREEN).all(axis=2)
    if speck:
        rgb[5, 5] = GREEN  # annotation speck: dropped
    return rgb, expected


def make_lfw(root):
    images, masks = root / "lfw_funneled", root / "parts_lfw_funneled_gt_images"
    masks.mkdir(parents=True)
    for name in ("Jane_Doe_0001", "Jane_Doe_0002", "John_Roe_0001"):
        person = name.rsplit("_", 1)[0]
        (images / person).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(images / person / f"{name}.jpg"), np.full((250, 250, 3), 90, np.uint8))
    rgb, expected = colour_mask()
    Image.fromarray(rgb).save(masks / "Jane_Doe_0001.ppm")  # the original release's format
    Image.fromarray(rgb).save(masks / "Jane_Doe_0002.png")  # the lossless PNG re-encoding
    Image.fromarray(rgb[::2, ::2]).save(masks / "John_Roe_0001.png")  # half resolution: scaled up
    Image.fromarray(rgb).save(masks / "Nobody_0001.png")  # mask without an image: skipped
    return expected


def decode(face):
    rle = face["segmentation"]
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def test_lfw_parts(tmp_path, convert, load_checked, faces_of, caplog):
    expected = make_lfw(tmp_path / "lfw")
    out = tmp_path / "lfw.json"
    assert convert("lfw-parts", tmp_path / "lfw", "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert [im["identity"] for im in data["images"]] == ["Jane_Doe", "Jane_Doe", "John_Roe"]
    assert [im["file_name"] for im in data["images"]][0] == "Jane_Doe/Jane_Doe_0001.jpg"
    for name in ("Jane_Doe_0001.jpg", "Jane_Doe_0002.jpg"):
        (face,) = faces_of(data, name)
        mask = decode(face)
        assert np.array_equal(mask, expected)  # exact: speck dropped, neck kept
        ys, xs = np.nonzero(expected)
        assert face["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert face["area"] == expected.sum() and face["iscrowd"] == 0 and "attributes" not in face
    (scaled,) = faces_of(data, "John_Roe_0001.jpg")
    assert decode(scaled).shape == (250, 250)
    assert abs(scaled["area"] - expected.sum()) < 0.03 * expected.sum()
    assert data["info"]["skipped"] == {"unreadable image or mask": 1}
    assert "Nobody_0001.png" in caplog.text


def test_lfw_parts_strict_fails_on_missing_image(tmp_path, convert, capsys):
    make_lfw(tmp_path)
    out = tmp_path / "lfw.json"
    assert convert("lfw-parts", tmp_path, "-o", out, "--strict", "--no-progress") == 1
    err = capsys.readouterr().err
    assert "Nobody_0001.png" in err and "Nobody/Nobody_0001.jpg" in err
    assert not out.exists()


def test_lfw_parts_gender_file(tmp_path, convert, load_checked, faces_of, capsys):
    make_lfw(tmp_path / "lfw")
    genders = tmp_path / "gender.csv"
    genders.write_text("file,gender\nJane_Doe_0001.jpg,female\nJohn_Roe_0001.jpg,Male\n")
    out = tmp_path / "lfw.json"
    assert convert("lfw-parts", tmp_path / "lfw", "-o", out, "--gender-file", genders, "--no-progress") == 0
    data = load_checked(out)
    assert faces_of(data, "Jane_Doe/Jane_Doe_0001.jpg")[0]["attributes"] == {"gender": "female"}
    assert faces_of(data, "John_Roe/John_Roe_0001.jpg")[0]["attributes"] == {"gender": "male"}
    assert "attributes" not in faces_of(data, "Jane_Doe/Jane_Doe_0002.jpg")[0] or \
        not faces_of(data, "Jane_Doe/Jane_Doe_0002.jpg")[0]["attributes"]
    assert data["info"]["notes"]["no gender in the gender file"] == 1

    genders.write_text("Jane_Doe_0001.jpg,female\nJohn_Roe_0001.jpg,robot\n")
    assert convert("lfw-parts", tmp_path / "lfw", "-o", tmp_path / "bad.json", "--gender-file", genders) == 1
    assert f"{genders}:2: unknown gender 'robot'; expected female or male" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()
