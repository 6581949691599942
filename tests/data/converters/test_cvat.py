"""CVAT for images 1.1 converter: polygons, boxes, masks, groups, attributes, malformed shapes."""

import cv2
import numpy as np
from pycocotools import mask as mask_utils

XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>faces</name></task></meta>
  <image id="0" name="imgs/a.jpg" width="100" height="80">
    <polygon label="face" occluded="0" source="manual" points="10.00,10.00;30.00,10.00;30.00,30.00;10.00,30.00"
             z_order="0">
      <attribute name="age">31</attribute>
      <attribute name="gender">F</attribute>
      <attribute name="emotion">Happiness</attribute>
      <attribute name="glasses">false</attribute>
    </polygon>
    <box label="face" occluded="1" source="manual" xtl="40" ytl="20" xbr="60" ybr="50" z_order="0">
      <attribute name="crowd">true</attribute>
    </box>
    <mask label="face" source="manual" occluded="0" rle="1, 2, 1, 4, 2, 1, 1" left="70" top="40" width="4"
          height="3" z_order="0"/>
    <box label="car" xtl="0" ytl="0" xbr="5" ybr="5"/>
    <polygon label="face" group_id="2" points="50,60;60,60;60,70"><attribute name="gender">male</attribute></polygon>
    <polygon label="face" group_id="2" points="70,60;80,60;80,70"><attribute name="gender">M</attribute></polygon>
    <tag label="outdoor"/>
  </image>
  <image id="1" name="imgs/b.jpg" width="100" height="80"/>
</annotations>
"""


def make_cvat(root, xml=XML):
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(root / "imgs" / name), np.zeros((80, 100, 3), np.uint8))
    path = root / "annotations.xml"
    path.write_text(xml)
    return path


def test_cvat(tmp_path, convert, load_checked, faces_of):
    xml = make_cvat(tmp_path)
    out = tmp_path / "cvat.json"
    assert convert("cvat", xml, "--image-root", tmp_path, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert [im["file_name"] for im in data["images"]] == ["imgs/a.jpg", "imgs/b.jpg"]
    assert faces_of(data, "imgs/b.jpg") == []
    polygon, box, mask, group = faces_of(data, "imgs/a.jpg")
    assert polygon["segmentation"] == [[10, 10, 30, 10, 30, 30, 10, 30]] and polygon["bbox"] == [10, 10, 20, 20]
    assert polygon["attributes"] == {"age": 31.0, "gender": "female", "emotion": "happy"}
    assert box["bbox"] == [40, 20, 20, 30] and box["iscrowd"] == 1 and "segmentation" not in box
    rle = mask["segmentation"]
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    expected = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 0]], np.uint8)
    assert np.array_equal(decoded[40:43, 70:74], expected) and decoded.sum() == 7
    assert mask["bbox"] == [70, 40, 4, 3] and mask["area"] == 7
    assert len(group["segmentation"]) == 2 and group["attributes"] == {"gender": "male"}
    assert data["info"]["notes"] == {"non-face shape ignored": 1}


def test_cvat_malformed(tmp_path, convert, load_checked, capsys):
    bad = XML.replace('points="50,60;60,60;60,70"', 'points="50,60;60"')
    xml = make_cvat(tmp_path, bad)
    out = tmp_path / "cvat.json"
    assert convert("cvat", xml, "--image-root", tmp_path, "-o", out, "--strict") == 1
    err = capsys.readouterr().err
    assert f"{xml}: image 'imgs/a.jpg' (id 0), <polygon> #4 ('face'): points must be 'x1,y1;x2,y2;...'" in err

    make_cvat(tmp_path, bad.replace('<tag label="outdoor"/>', '<polyline label="face" points="0,0;5,5"/>'))
    assert convert("cvat", xml, "--image-root", tmp_path, "-o", out) == 0
    data = load_checked(out)
    assert len(data["annotations"]) == 3
    assert data["info"]["skipped"] == {"malformed shape": 1, "unsupported shape": 1}


def test_cvat_conflicting_attributes_and_bad_xml(tmp_path, convert, load_checked, capsys):
    xml = make_cvat(tmp_path, XML.replace('name="gender">M<', 'name="gender">F<'))
    out = tmp_path / "cvat.json"
    assert convert("cvat", xml, "--image-root", tmp_path, "-o", out) == 0
    assert load_checked(out)["info"]["skipped"] == {"invalid attributes": 1}

    broken = tmp_path / "broken.xml"
    broken.write_text("<annotations>\n  <image id='0' name='imgs/a.jpg'\n</annotations>\n")
    assert convert("cvat", broken, "--image-root", tmp_path, "-o", out, "--strict") == 1
    assert f"{broken}:3: invalid XML" in capsys.readouterr().err
