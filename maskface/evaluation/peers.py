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

Each peer is an ``nn.Module`` with no parameters: ``peer.eval(); peer(images)`` with ``images``
a list of CHW float RGB tensors in 0..1 returns one dict per image with ``boxes`` (N, 4) xyxy px,
``scores`` (N,) and ``labels`` (N,) (all 1), like :class:`~maskface.modeling.face_rcnn.FaceRCNN`.
Nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

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
