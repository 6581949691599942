"""Automatic face annotation with mediapipe: any image folder -> COCO faces with oval polygons.

Each face found by mediapipe's face mesh (``static_image_mode=True``) becomes one face whose
polygon is the face-oval contour (the 36 ``FACEMESH_FACE_OVAL`` landmarks chained in order,
clipped to the image) and whose box is the polygon's tight box. The face mesh gives no score, so
each mesh face is matched to the best-overlapping face *detection* (mediapipe full-range model);
its score is kept as ``score`` and faces below ``score_thresh`` (or without a matching detection)
are dropped. Images where no face is kept stay in the output as images without faces; their
number is reported in ``info["notes"]``: check them, since a missed face there would teach the
detector that it is background.

With ``attributes_from`` (another COCO face file, e.g. a labelled box-only set), each new face
takes the ``attributes`` of the face of the same image (same resolved path, else same base name)
whose box overlaps it best, if that IoU is at least ``min_iou``.

mediapipe is an optional dependency (``pip install -e .[annotate]``), imported on first use.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from maskface.data.converters.common import (
    CocoFacesBuilder,
    PathLike,
    list_images,
    polygons_area_bbox,
)
from maskface.data.converters.ops import image_path, load_coco
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

MESH_DETECTION_IOU = 0.3  # min IoU between a mesh face's box and a detection to take its score


def _import_mediapipe():
    from maskface.utils.optional import import_optional

    return import_optional("mediapipe", "automatic annotation", "pip install -e .[annotate]")


def chain_edges(edges: Sequence[Tuple[int, int]]) -> List[int]:
    """Order the landmark indices of a closed contour given as unordered edges ``(a, b)``.

    Raises ``ValueError`` when the edges do not form a single cycle.
    """
    neighbours: Dict[int, List[int]] = defaultdict(list)
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    if any(len(n) != 2 for n in neighbours.values()):
        raise ValueError("edges do not form a closed contour (a vertex without exactly 2 neighbours)")
    start = min(neighbours)
    order, previous, current = [start], None, start
    while True:
        nxt = neighbours[current][0] if neighbours[current][0] != previous else neighbours[current][1]
        if nxt == start:
            break
        order.append(nxt)
        previous, current = current, nxt
    if len(order) != len(neighbours):
        raise ValueError(f"edges form several cycles ({len(order)} of {len(neighbours)} vertices in the first)")
    return order


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x, y, w, h]`` boxes, in [0, 1]."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class FaceOvalAnnotator:
    """Finds faces and their oval polygons in RGB images with mediapipe.

    Args:
        max_faces: at most this many faces per image (``max_num_faces`` of the face mesh).
        score_thresh: minimum detection score in [0, 1] of a kept face.
        pad: grey border added on every side before detection, as a fraction of the image size
            (e.g. 0.5). mediapipe's detectors miss faces that fill the whole frame (tight crops such
            as UTKFace's); a border makes them findable. Coordinates are returned in the original
            image, clipped to it.

    Call it with an ``H x W x 3`` uint8 RGB image; it returns one dict per face, largest first:
    ``{"polygon": [x1, y1, ...] (px), "bbox": [x, y, w, h] (px), "score": float}``.
    Use as a context manager (or call :meth:`close`) to free the mediapipe graphs.
    """

    def __init__(self, max_faces: int = 10, score_thresh: float = 0.5, pad: float = 0.0):
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        mp = _import_mediapipe()
        self.score_thresh = score_thresh
        self.pad = pad
        self._oval = chain_edges(sorted(mp.solutions.face_mesh.FACEMESH_FACE_OVAL))
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=max_faces, min_detection_confidence=min(score_thresh, 0.5)
        )
        self._detector = mp.solutions.face_detection.FaceDetection(min_detection_confidence=0.1, model_selection=1)

    def __call__(self, image_rgb: np.ndarray) -> List[dict]:
        orig_h, orig_w = image_rgb.shape[:2]
        px, py = int(round(self.pad * orig_w)), int(round(self.pad * orig_h))
        if px or py:
            image_rgb = cv2.copyMakeBorder(image_rgb, py, py, px, px, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        height, width = image_rgb.shape[:2]
        detections = []
        for det in self._detector.process(image_rgb).detections or []:
            box = det.location_data.relative_bounding_box
            xywh = [box.xmin * width, box.ymin * height, box.width * width, box.height * height]
            detections.append((xywh, det.score[0]))
        faces = []
        for landmarks in self._mesh.process(image_rgb).multi_face_landmarks or []:
            points = np.array([[landmarks.landmark[i].x * width, landmarks.landmark[i].y * height] for i in self._oval])
            points = np.clip(points - [px, py], 0, [orig_w, orig_h])
            x1, y1 = points.min(axis=0)
            x2, y2 = points.max(axis=0)
            bbox = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
            ious = [(box_iou(bbox, [box[0] - px, box[1] - py, box[2], box[3]]), score) for box, score in detections]
            iou, score = max(ious, default=(0.0, 0.0))
            if iou >= MESH_DETECTION_IOU and score >= self.score_thresh:
                polygon = [round(float(v), 2) for v in points.reshape(-1)]
                faces.append({"polygon": polygon, "bbox": bbox, "score": float(score)})
        return sorted(faces, key=lambda f: -f["bbox"][2] * f["bbox"][3])

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()

    def __enter__(self) -> "FaceOvalAnnotator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_rgb(path: PathLike) -> np.ndarray:
    """``H x W x 3`` uint8 RGB image (EXIF orientation applied). Raises ``OSError`` if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class AttributeSource:
    """Faces of a COCO face file, looked up by image path, to copy their attributes.

    ``lookup(path, bbox)`` returns the attributes of the best-IoU face of that image (matched by
    resolved path, else by base name) when its IoU with ``bbox`` is at least ``min_iou``.
    """

    def __init__(self, json_file: PathLike, min_iou: float = 0.3):
        data = load_coco(json_file)
        self.min_iou = min_iou
        self._by_path: Dict[str, List[dict]] = defaultdict(list)
        self._by_name: Dict[str, List[dict]] = defaultdict(list)
        paths = {im["id"]: image_path(data, im).resolve() for im in data["images"]}
        for ann in data["annotations"]:
            if ann.get("attributes") and ann["image_id"] in paths:
                path = paths[ann["image_id"]]
                self._by_path[str(path)].append(ann)
                self._by_name[path.name].append(ann)

    def lookup(self, path: PathLike, bbox: Sequence[float]) -> Optional[dict]:
        path = Path(path).resolve()
        candidates = self._by_path.get(str(path)) or self._by_name.get(path.name, [])
        scored = [(box_iou(bbox, ann["bbox"]), ann) for ann in candidates]
        iou, best = max(scored, key=lambda s: s[0], default=(0.0, None))
        return dict(best["attributes"]) if best is not None and iou >= self.min_iou else None


def convert_auto(
    image_folder: PathLike,
    max_faces: int = 10,
    score_thresh: float = 0.5,
    attributes_from: Optional[PathLike] = None,
    min_iou: float = 0.3,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
    pad: float = 0.0,
) -> dict:
    """Annotate every image under ``image_folder`` (recursive) with mediapipe face ovals.

    Args:
        image_folder: images to annotate; also the output's image root.
        max_faces: at most this many faces per image.
        score_thresh: minimum detection score in [0, 1].
        attributes_from: optional COCO face file to copy attributes from (see module docstring).
        min_iou: minimum box IoU for copying attributes.
        strict: raise at the first unreadable image instead of skipping it.
        limit: annotate only the first ``limit`` images (sorted by path).
        progress: show a progress bar.
        pad: border added before detection, as a fraction of the image size (see
            :class:`FaceOvalAnnotator`); use ~0.5 for tight face crops.
    """
    image_folder = Path(image_folder)
    builder = CocoFacesBuilder("auto", image_folder, strict, description="mediapipe face-oval auto-annotation")
    source = AttributeSource(attributes_from, min_iou) if attributes_from else None
    with FaceOvalAnnotator(max_faces, score_thresh, pad) as annotator:
        for path in progress_bar(list_images(image_folder)[:limit], desc="auto", unit="img", disable=not progress):
            try:
                image = read_rgb(path)
            except OSError as e:
                builder.skip("unreadable image", str(path), str(e))
                continue
            height, width = image.shape[:2]
            image_id = builder.add_image(path, width, height)
            faces = annotator(image)
            if not faces:
                builder.note("image without a detected face", str(path), "no face kept")
            for face in faces:
                attributes = source.lookup(path, face["bbox"]) if source else None
                if source:
                    builder.note("attributes copied" if attributes else "no attribute match")
                area, bbox = polygons_area_bbox([face["polygon"]], height, width)
                builder.add_face(
                    image_id, bbox, [face["polygon"]], area, attributes=attributes, score=round(face["score"], 4)
                )
    inputs = [image_folder] + ([attributes_from] if attributes_from else [])
    return builder.to_coco(inputs=inputs, max_faces=max_faces, score_thresh=score_thresh, pad=pad)
