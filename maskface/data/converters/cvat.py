"""CVAT for images 1.1 XML -> COCO faces.

Read from each ``<image id name width height>`` of ``<annotations>``:

* ``<polygon label="face" points="x1,y1;x2,y2;...">`` -> a polygon face;
* ``<box label="face" xtl ytl xbr ybr>`` -> a box-only face;
* ``<mask label="face" rle left top width height>`` -> an RLE face (CVAT's ``rle`` is a list of
  run lengths over the ``width x height`` box at ``left, top``, row by row, starting with a run
  of background);
* shapes with the same ``label`` and a non-zero ``group_id`` form one face (with a mask among
  them, everything is merged into one RLE mask; else the polygons are kept);
* ``<attribute name="age|gender|emotion">value</attribute>`` children give the attributes
  (normalised, see :mod:`maskface.data.attributes`); ``crowd`` / ``iscrowd`` = ``true`` or ``1``
  makes the face ``iscrowd: 1``; other attribute names are ignored.

A shape is a face when the first word of its label is ``face`` (case-insensitive); others are
ignored (counted in ``info["notes"]``). Other shape kinds (polyline, points, ellipse, ...) with
a face label are reported and skipped. Image names are relative to ``image_root``. Errors name
the XML file, the image and the shape (ElementTree keeps no line numbers; XML syntax errors
give line and column).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from maskface.data.converters.common import (
    CocoFacesBuilder,
    PathLike,
    collect_attributes,
    image_size,
    is_face_label,
    mask_to_rle,
    polygons_area_bbox,
    rle_area_bbox,
)
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

SHAPE_TAGS = ("box", "polygon", "mask")
OTHER_SHAPE_TAGS = ("polyline", "points", "ellipse", "cuboid", "skeleton")
CROWD_ATTRIBUTES = ("crowd", "iscrowd")


def decode_cvat_mask(element: ET.Element, width: int, height: int) -> np.ndarray:
    """Boolean ``height x width`` image mask of a CVAT ``<mask>`` element.

    Raises ``ValueError`` when the attributes are missing or the runs do not fill the box.
    """
    left, top = int(element.get("left")), int(element.get("top"))
    box_w, box_h = int(element.get("width")), int(element.get("height"))
    runs = [int(v) for v in element.get("rle", "").replace(" ", "").split(",") if v]
    if sum(runs) != box_w * box_h or min(runs, default=0) < 0:
        raise ValueError(f"mask rle covers {sum(runs)} pixels, its {box_w}x{box_h} box has {box_w * box_h}")
    values = np.repeat(np.arange(len(runs)) % 2, runs).astype(bool).reshape(box_h, box_w)
    mask = np.zeros((height, width), dtype=bool)
    x2, y2 = min(left + box_w, width), min(top + box_h, height)
    mask[top:y2, left:x2] = values[: y2 - top, : x2 - left]
    return mask


def _parse_points(text: str) -> List[float]:
    """``"x1,y1;x2,y2;..."`` -> ``[x1, y1, x2, y2, ...]``; ``ValueError`` when malformed."""
    try:
        return [float(v) for pair in text.strip().split(";") for v in _pair(pair)]
    except ValueError:
        raise ValueError(f"points must be 'x1,y1;x2,y2;...', got {text[:60]!r}") from None


def _pair(text: str) -> List[str]:
    values = text.split(",")
    if len(values) != 2:
        raise ValueError(text)
    return values


def _image_header(element: ET.Element) -> Tuple[str, int, int]:
    name = element.get("name")
    if not name:
        raise ValueError("missing 'name'")
    try:
        return name, int(element.get("width")), int(element.get("height"))
    except (TypeError, ValueError):
        got = f"{element.get('width')!r}, {element.get('height')!r}"
        raise ValueError(f"width/height must be integers, got {got}") from None


def convert_cvat(
    xml_files: Sequence[PathLike],
    image_root: PathLike,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Convert CVAT for images 1.1 XML files (rules in the module docstring).

    Args:
        xml_files: the XML exports.
        image_root: folder the ``<image name=...>`` paths are relative to; the output's root.
        strict: raise at the first bad file, image or shape instead of skipping it.
        limit: convert only the first ``limit`` images (over all files).
        progress: show a progress bar.
    """
    image_root = Path(image_root)
    builder = CocoFacesBuilder("cvat", image_root, strict, description="CVAT for images 1.1 annotations")
    elements = []
    for xml_file in map(Path, xml_files):
        try:
            root = ET.parse(xml_file).getroot()
        except ET.ParseError as e:
            line = e.position[0]
            builder.skip("invalid XML", f"{xml_file}:{line}", f"invalid XML: {e}")
            continue
        if root.tag != "annotations":
            builder.skip("invalid XML", str(xml_file), f"root element is <{root.tag}>, expected <annotations>")
            continue
        elements += [(xml_file, image) for image in root.iter("image")]
    for xml_file, element in progress_bar(elements[:limit], desc="cvat", unit="img", disable=not progress):
        where = f"{xml_file}: image {element.get('name')!r} (id {element.get('id')})"
        try:
            name, width, height = _image_header(element)
        except ValueError as e:
            builder.skip("malformed image element", where, str(e))
            continue
        path = image_root / name
        try:
            actual = image_size(path)
        except OSError as e:
            builder.skip("image not found", where, f"cannot read {path}: {e}")
            continue
        if actual != (width, height):
            builder.skip("image size mismatch", where, f"declares {width}x{height}, {path} is {actual[0]}x{actual[1]}")
            continue
        image_id = builder.add_image(path, width, height)
        for group in _group_shapes(element, where, builder, image_id):
            _add_group(builder, image_id, group, width, height)
    return builder.to_coco(inputs=list(xml_files))


def _group_shapes(image: ET.Element, where: str, builder: CocoFacesBuilder,
                  image_id: int) -> List[List[Tuple[str, ET.Element]]]:
    """Face shapes of an image grouped into faces: ``[[(where, element), ...], ...]``."""
    groups: "OrderedDict[object, List[Tuple[str, ET.Element]]]" = OrderedDict()
    for index, shape in enumerate(image):
        label = shape.get("label", "")
        shape_where = f"{where}, <{shape.tag}> #{index} ({label!r})"
        if shape.tag not in SHAPE_TAGS + OTHER_SHAPE_TAGS:
            continue  # <tag> and other non-shape children
        if not is_face_label(label):
            builder.note("non-face shape ignored", shape_where, "ignored")
            continue
        if shape.tag in OTHER_SHAPE_TAGS:
            detail = f"<{shape.tag}> is not a face shape; use polygon, box or mask"
            builder.skip_face(image_id, "unsupported shape", shape_where, detail)
            continue
        group_id = shape.get("group_id", "0")
        key = (label.split()[0].lower(), group_id) if group_id not in ("", "0") else index
        groups.setdefault(key, []).append((shape_where, shape))
    return list(groups.values())


def _add_group(builder: CocoFacesBuilder, image_id: int, group, width: int, height: int) -> None:
    where = group[0][0]
    polygons, boxes, masks, values = [], [], [], []
    crowd = False
    try:
        for shape_where, shape in group:
            where = shape_where
            if shape.tag == "polygon":
                polygon = _parse_points(shape.get("points", ""))
                if len(polygon) < 6:
                    raise ValueError(f"a polygon needs >= 3 points, got {len(polygon) // 2}")
                polygons.append([min(max(v, 0.0), width if i % 2 == 0 else height) for i, v in enumerate(polygon)])
            elif shape.tag == "box":
                x1, y1, x2, y2 = (float(shape.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
                boxes.append([max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height)])
            else:
                masks.append(decode_cvat_mask(shape, width, height))
            for attribute in shape.iter("attribute"):
                key, text = attribute.get("name", "").strip().lower(), (attribute.text or "").strip()
                if key in CROWD_ATTRIBUTES:
                    crowd = crowd or text.lower() in ("true", "1")
                else:
                    values.append((key, text))
    except (TypeError, ValueError) as e:
        builder.skip_face(image_id, "malformed shape", where, str(e))
        return
    attributes, problems = collect_attributes(values)
    if problems:
        builder.skip_face(image_id, "invalid attributes", where, "; ".join(problems))
        return
    if masks:
        mask = np.logical_or.reduce(masks)
        if polygons:
            coded = mask_utils.frPyObjects(polygons, height, width)
            mask |= mask_utils.decode(mask_utils.merge(coded)).astype(bool)
        rle = mask_to_rle(mask)
        area, bbox = rle_area_bbox(rle)
        builder.add_face(image_id, bbox, rle, area, iscrowd=int(crowd), attributes=attributes, where=where)
    elif polygons:
        area, bbox = polygons_area_bbox(polygons, height, width)
        builder.add_face(image_id, bbox, polygons, area, iscrowd=int(crowd), attributes=attributes, where=where)
    else:
        x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x2, y2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        builder.add_face(image_id, [x1, y1, x2 - x1, y2 - y1], iscrowd=int(crowd), attributes=attributes, where=where)
