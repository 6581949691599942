"""``FacePredictor``: images in, :class:`~maskface.inference.results.Face` records out.

    >>> from maskface import FacePredictor
    >>> predictor = FacePredictor("maskface-lite")                 # a model-zoo name
    >>> faces = predictor("photo.jpg")                              # a path -> list[Face]
    >>> faces = predictor(cv2.imread("photo.jpg"))                  # BGR array (OpenCV order)
    >>> faces = predictor(rgb_array, color="rgb")                   # RGB array
    >>> batch = predictor([img1, img2, "c.png"])                    # a batch -> list[list[Face]]
    >>> predictor.timings                                           # per-stage ms of the last call

Pipeline per call (one batch): preprocess (decode, EXIF, colour order, shrink to ``max_size``)
-> face Mask R-CNN on the whole batch -> boxes mapped back to original pixels, masks resampled
to the original size and thresholded -> :func:`extract_face_crops` per image -> **one**
attribute-net forward for all faces of the batch -> ``decode`` -> ``Face`` records.

Without an attribute net (no ``attribute_weights`` and no model-zoo entry providing them, or
``attributes=False``) faces carry ``None`` for every attribute field.

Runtimes: ``runtime="torch"`` (default) runs the PyTorch modules; ``runtime="onnxruntime"`` runs
the exported ONNX graphs (:mod:`maskface.inference.onnx_runtime`; ``pip install -e ".[onnx]"``),
from ``onnx_dir`` or exported on first use into the cache. Both share every step outside the
networks (resize, mask pasting, crops, decoding), so they return the same ``Face`` records up to
float rounding.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from maskface.inference.image_io import load_image, resize_max_side, to_rgb_array
from maskface.inference.masks import paste_masks
from maskface.inference.padding import check_pad, pad_image, unpad_face
from maskface.inference.results import Face, ImageResult

if TYPE_CHECKING:
    from maskface.modeling.read_plan import ReadPlan

logger = logging.getLogger(__name__)

__all__ = ["FacePredictor", "ImageInput", "RUNTIMES", "DETECTOR_BACKENDS"]

#: Values of ``FacePredictor(runtime=...)``.
RUNTIMES = ("torch", "onnxruntime")
#: Values of ``FacePredictor(detector_backend=...)``.
DETECTOR_BACKENDS = ("maskface", "detectron2")

ImageInput = Union[str, Path, np.ndarray]


def _is_single(inputs: Any) -> bool:
    if isinstance(inputs, (str, Path)):
        return True
    if isinstance(inputs, np.ndarray):
        return inputs.ndim != 4
    try:
        from PIL import Image

        if isinstance(inputs, Image.Image):
            return True
    except ImportError:  # pragma: no cover
        pass
    return not isinstance(inputs, (list, tuple))


def _check_max_size(value) -> int:
    if int(value) < 32:
        raise ValueError(f"max_size must be >= 32 px, got {value}")
    return int(value)


class FacePredictor:
    """Face detection + segmentation + age / gender / emotion on images.

    Args:
        model: a model-zoo name (``maskface.model_zoo.list_models()``), or ``None``. When
            ``None`` and no ``detector_*`` argument is given, the default ``"maskface-lite"``
            is used. Explicit arguments below override the entry's files.
        detector_config: detector YAML path, or a ``CfgNode`` (from :func:`maskface.config.get_cfg`).
        detector_weights: detector checkpoint (``{"model": state_dict}``); required without
            ``model``.
        attribute_config: attribute-net YAML path or ``CfgNode`` (:func:`get_attr_cfg`).
        attribute_weights: attribute-net checkpoint; ``None`` without a zoo entry -> faces
            without attributes.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        score_thresh: detections below this score are dropped (default: the config's
            ``MODEL.SCORE_THRESH``).
        mask_thresh: mask probability that makes a pixel part of the face (``MODEL.MASK_THRESH``).
        max_size: longest image side read whole, px. Larger images are shrunk before the
            detector (or, with ``MODEL.TILE``, read in tiles of this size at their own resolution
            plus once shrunk), and boxes / masks mapped back to original pixels. Default: the config's
            ``MODEL.MAX_SIZE``.
        detector_opts / attribute_opts: ``["KEY", "VALUE", ...]`` config overrides.
        attributes: ``False`` skips the attribute net even when weights are available.
        pad: grey border added on each side of every image before detection, as a fraction of
            its width / height (0 = none, the default; ~0.25 for tight face chips that the face
            fills to the edge, see :mod:`maskface.inference.padding`). Results are in the
            original image's pixels; faces found only in the border are dropped.
        retry_pad: when an image gives no face (and ``pad`` is 0), detect once more with a grey
            border of this fraction (default 0.25): a face chip that the face fills to the edge
            is then found without the caller knowing it needs ``pad``. 0 = never retry. Costs a
            second detector call only on images where nothing was found.
        runtime: ``"torch"`` (default) or ``"onnxruntime"`` (the exported ONNX graphs; see the
            module docstring).
        onnx_dir: with ``runtime="onnxruntime"``: a folder written by ``tools/export.py``
            (``manifest.json`` + ONNX files); its configs are used and no PyTorch weights are
            needed (the model arguments are then ignored; thresholds, ``max_size`` and the
            sizes ``MODEL.MIN_SIZE`` / ``MODEL.MAX_SIZE`` still apply: they act outside the
            graphs). Default: export the selected model on first use into
            ``$MASKFACE_CACHE/onnx/<key>`` and reuse it afterwards.
        threads: ONNX Runtime intra-op threads (0 = its default, one per physical core). The
            PyTorch runtime uses ``torch.set_num_threads`` (process-wide), which tools set.
        detector_backend: ``"maskface"`` (default) or ``"detectron2"``: then ``detector_config`` is
            a Detectron2 YAML (or Detectron2 ``CfgNode``; required) and ``detector_weights`` a
            Detectron2 checkpoint (default the config's ``MODEL.WEIGHTS``); ``detector_opts`` are
            Detectron2 overrides. The Detectron2 model finds the faces (preprocessed as its
            ``DefaultPredictor`` does, class 0 = face) and the attribute net reads their masked
            crops; thresholds and sizes come from the Detectron2 config
            (:mod:`maskface.integrations.detectron2.detector`; needs Detectron2 installed). A
            model-zoo ``model`` then only supplies the attribute net. PyTorch runtime only.

    Attributes:
        cfg, attr_cfg: the merged (frozen) configs; ``attr_cfg`` is ``None`` without attributes.
        timings: per-stage milliseconds of the last call (``preprocess_ms``, ``detector_ms``,
            ``attributes_ms``, ``postprocess_ms``, ``total_ms``) plus ``images`` and ``faces``.
        model_info: what was loaded (name, configs, weights, device), as written to results.json.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        detector_config: Any = None,
        detector_weights: Optional[str] = None,
        attribute_config: Any = None,
        attribute_weights: Optional[str] = None,
        device: Optional[str] = "auto",
        score_thresh: Optional[float] = None,
        mask_thresh: Optional[float] = None,
        max_size: Optional[int] = None,
        detector_opts: Optional[Sequence[str]] = None,
        attribute_opts: Optional[Sequence[str]] = None,
        attributes: bool = True,
        pad: float = 0.0,
        retry_pad: float = 0.25,
        runtime: str = "torch",
        onnx_dir: Optional[Union[str, Path]] = None,
        threads: int = 0,
        detector_backend: str = "maskface",
    ):
        from maskface.utils.device import resolve_device

        self.pad = pad
        self.retry_pad = retry_pad
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        if detector_backend not in DETECTOR_BACKENDS:
            raise ValueError(f"detector_backend must be one of {DETECTOR_BACKENDS}, got {detector_backend!r}")
        detectron2 = detector_backend == "detectron2"
        if detectron2 and (runtime != "torch" or onnx_dir is not None):
            raise ValueError("detector_backend='detectron2' runs with runtime='torch' only")
        if detectron2 and detector_config is None:
            raise ValueError("detector_backend='detectron2' needs detector_config: the Detectron2 YAML of the detector "
                             "(e.g. the config.yaml written by tools/convert_weights.py --to detectron2)")
        if onnx_dir is not None and runtime != "onnxruntime":
            raise ValueError("onnx_dir is only used with runtime='onnxruntime'")
        if int(threads) < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self.runtime = runtime
        self.onnx_dir: Optional[str] = None
        if onnx_dir is not None:
            self._init_from_onnx_dir(Path(onnx_dir), device, score_thresh, mask_thresh, max_size, detector_opts,
                                     attribute_opts, attributes, int(threads))
            return

        if model is None and detector_config is None and detector_weights is None:
            from maskface.model_zoo import DEFAULT_MODEL

            model = DEFAULT_MODEL
        elif model is None and detector_weights is None and isinstance(detector_config, (str, Path)) \
                and not detectron2:
            from maskface.model_zoo import model_for_config

            model = model_for_config(detector_config)  # a zoo config (or a variant of one): its weights
            if model is not None:
                logger.info("%s is model %r's config (or based on it): using that model's weights", detector_config,
                            model)
        entry = None
        if model is not None:
            from maskface.model_zoo import get_model

            entry = get_model(model)
            if not detectron2:  # a Detectron2 detector comes with its own files; the entry gives attributes
                detector_config = detector_config if detector_config is not None else entry.config_path("detector")
                if detector_weights is None:
                    detector_weights = entry.weights_path("detector")
            if attributes:
                if attribute_config is None:
                    attribute_config = entry.config_path("attribute")
                if attribute_weights is None and attribute_config is not None:
                    attribute_weights = entry.weights_path("attribute")
        self._loaded_name = model
        if detector_weights is None and not detectron2:
            raise ValueError(f"FacePredictor: no detector weights for {detector_config}: it is no model-zoo config "
                             "nor based on one; pass detector_weights=PATH or a model-zoo name (model='maskface-lite')")
        if not attributes:
            attribute_weights = None
        if attribute_config is not None and attribute_weights is None and attributes and entry is None:
            raise ValueError("FacePredictor: attribute_config given without attribute_weights; pass both, "
                             "or neither to run without attributes")

        # --- detector ----------------------------------------------------------------------------
        if detectron2:
            from maskface.integrations.detectron2.detector import Detectron2Detector

            self.device = resolve_device(device or "auto")
            self.detector = Detectron2Detector.from_files(detector_config, detector_weights, self.device, detector_opts)
            detector_weights = self.detector.cfg.MODEL.WEIGHTS
            self.cfg, self._cfg_min_size = self._detector_cfg(self.detector.maskface_config(), None, score_thresh,
                                                              mask_thresh, max_size)
        else:
            self.cfg, self._cfg_min_size = self._detector_cfg(detector_config, detector_opts, score_thresh,
                                                              mask_thresh, max_size)
            device = self.cfg.MODEL.DEVICE if device in (None, "") and "DEVICE" in self.cfg.MODEL else device
            self.device = resolve_device(device or "auto")
        self.attr_cfg = None
        if attribute_weights is not None:
            self.attr_cfg = self._attribute_cfg(attribute_config, attribute_opts)
        else:
            logger.info("No attribute net: faces will have age/gender/emotion = None")
        self.attribute_net = None
        if runtime == "onnxruntime":
            folder = self._cached_export(str(detector_weights), None if attribute_weights is None
                                         else str(attribute_weights))
            self._load_onnx(folder, int(threads))
        else:
            from maskface.modeling.attributes import load_attribute_net
            from maskface.modeling.face_rcnn import load_detector

            if not detectron2:
                self.detector = load_detector(self.cfg, str(detector_weights), self.device, fast=True)
            if attribute_weights is not None:
                self.attribute_net = load_attribute_net(str(attribute_weights), self.device, cfg=self.attr_cfg,
                                                        fast=True)[0]
        self.score_thresh = float(self.cfg.MODEL.SCORE_THRESH)
        self.mask_thresh = float(self.cfg.MODEL.MASK_THRESH)
        self.max_size = int(self.cfg.MODEL.MAX_SIZE)

        self._loaded: Dict[str, Any] = {
            "name": model,
            "detector_config": None if detector_config is None or not isinstance(detector_config, (str, Path))
            else str(detector_config),
            "detector_weights": str(detector_weights),
            "attribute_config": str(attribute_config) if self.attribute_net is not None
            and isinstance(attribute_config, (str, Path)) else None,
            "attribute_weights": None if attribute_weights is None else str(attribute_weights),
            "device": str(self.device),
            "runtime": runtime,
        }
        if detectron2:
            self._loaded["detector_backend"] = detector_backend
        if runtime == "onnxruntime":
            self._loaded["onnx_dir"] = self.onnx_dir
        self.timings: Dict[str, float] = {}

    # ONNX Runtime ---------------------------------------------------------------------------------
    def _cached_export(self, detector_weights: str, attribute_weights: Optional[str]) -> str:
        """Folder of the ONNX export of these configs + weights, exported now when not cached."""
        from maskface.inference.onnx_runtime import cached_manifest, export_cache_dir, export_key
        from maskface.export.onnx_export import require_onnxruntime

        require_onnxruntime()  # fail before a long export
        folder = export_cache_dir(export_key(self.cfg, detector_weights, self.attr_cfg, attribute_weights))
        if cached_manifest(folder) is None:
            logger.info("Exporting the models to ONNX (first use) into %s", folder)
            self._export_to(folder, detector_weights, attribute_weights)
        return str(folder)

    def _export_to(self, folder, detector_weights: str, attribute_weights: Optional[str]):
        """Load the PyTorch models on the CPU and export them to ``folder`` (:func:`export_models`)."""
        from maskface.export.onnx_export import export_models, sample_image
        from maskface.model_zoo.registry import sha256_file

        from maskface.modeling.attributes import load_attribute_net
        from maskface.modeling.face_rcnn import load_detector

        detector = load_detector(self.cfg, detector_weights, "cpu")
        net = None if attribute_weights is None else load_attribute_net(attribute_weights, "cpu", cfg=self.attr_cfg)[0]
        source = {"model": self._loaded_name, "detector_weights": detector_weights,
                  "detector_sha256": sha256_file(detector_weights),
                  "attribute_weights": attribute_weights,
                  "attribute_sha256": None if attribute_weights is None else sha256_file(attribute_weights)}
        return export_models(folder, detector, self.cfg, sample_image(), net, self.attr_cfg, source=source)

    def _load_onnx(self, folder: str, threads: int) -> None:
        from maskface.export.onnx_export import load_manifest
        from maskface.inference.onnx_runtime import OnnxAttributeNet, OnnxDetector

        manifest = load_manifest(folder)
        self.onnx_dir = str(folder)
        self.manifest = manifest
        dev = str(self.device)
        self.detector = OnnxDetector(Path(folder) / manifest["detector"]["file"], threads, dev)
        self.attribute_net = None
        if self.attr_cfg is not None:
            if not manifest.get("attributes"):
                raise ValueError(f"{folder}: the export has no attribute net; pass attributes=False")
            entry = manifest["attributes"]
            self.attribute_net = OnnxAttributeNet(Path(folder) / entry["file"], entry, threads, dev)
            if bool(self.attr_cfg.TEST.FLIP) != self.attribute_net.flip_test:
                logger.warning("%s was exported with flip_test=%s; TEST.FLIP=%s has no effect on it (export again "
                               "to change it)", folder, self.attribute_net.flip_test, self.attr_cfg.TEST.FLIP)

    def _init_from_onnx_dir(self, folder: Path, device, score_thresh, mask_thresh, max_size, detector_opts,
                            attribute_opts, attributes: bool, threads: int) -> None:
        """``FacePredictor(runtime="onnxruntime", onnx_dir=...)``: configs from the manifest."""
        from maskface.export.onnx_export import load_manifest, require_onnxruntime
        from maskface.utils.device import resolve_device

        require_onnxruntime()
        manifest = load_manifest(folder)
        self.cfg, self._cfg_min_size = self._detector_cfg(manifest["detector"]["config"], detector_opts, score_thresh,
                                                          mask_thresh, max_size)
        self.device = resolve_device(device or "auto")
        entry = manifest.get("attributes")
        self.attr_cfg = None
        if attributes and entry and entry.get("config"):
            self.attr_cfg = self._attribute_cfg(entry["config"], attribute_opts)
        elif attributes and entry:
            self.attr_cfg = self._attribute_cfg(None, attribute_opts)
        self._load_onnx(str(folder), threads)
        self.score_thresh = float(self.cfg.MODEL.SCORE_THRESH)
        self.mask_thresh = float(self.cfg.MODEL.MASK_THRESH)
        self.max_size = int(self.cfg.MODEL.MAX_SIZE)
        source = manifest.get("source", {})
        self._loaded = {"name": source.get("model"), "detector_config": None,
                        "detector_weights": source.get("detector_weights"), "attribute_config": None,
                        "attribute_weights": source.get("attribute_weights") if self.has_attributes else None,
                        "device": str(self.device), "runtime": "onnxruntime", "onnx_dir": str(folder)}
        self.timings = {}

    # construction --------------------------------------------------------------------------------
    @staticmethod
    def _detector_cfg(config, opts, score_thresh, mask_thresh, max_size):
        from maskface.config import CfgNode, get_cfg

        cfg = get_cfg()
        if isinstance(config, CfgNode) or isinstance(config, dict):
            cfg.merge_from_dict(config.to_dict() if isinstance(config, CfgNode) else config)
        elif config is not None:
            cfg.merge_from_file(str(config))
        if opts:
            cfg.merge_from_list(list(opts))
        # Full weights are loaded below: never initialise from (or look for) pretrained files.
        cfg.MODEL.PRETRAINED = ""
        if score_thresh is not None:
            cfg.MODEL.SCORE_THRESH = float(score_thresh)
        if mask_thresh is not None:
            cfg.MODEL.MASK_THRESH = float(mask_thresh)
        min_size = int(cfg.MODEL.MIN_SIZE)
        if max_size is not None:
            cfg.MODEL.MAX_SIZE = _check_max_size(max_size)
            cfg.MODEL.MIN_SIZE = min(min_size, int(max_size))
        return cfg.freeze(), min_size

    @staticmethod
    def _attribute_cfg(config, opts):
        from maskface.config import CfgNode, get_attr_cfg

        cfg = get_attr_cfg()
        if isinstance(config, CfgNode) or isinstance(config, dict):
            cfg.merge_from_dict(config.to_dict() if isinstance(config, CfgNode) else config)
        elif config is not None:
            cfg.merge_from_file(str(config))
        if opts:
            cfg.merge_from_list(list(opts))
        return cfg.freeze()

    # thresholds that may change between calls (the web app applies per-request settings) ----------
    @property
    def score_thresh(self) -> float:
        """Detections below this score are dropped (also applied inside the detector's box head)."""
        return self._score_thresh

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self._score_thresh = float(value)
        heads = getattr(self.detector, "roi_heads", None)
        if heads is not None and hasattr(heads, "score_thresh"):
            heads.score_thresh = self._score_thresh
        elif hasattr(self.detector, "score_thresh"):  # a detector with its own threshold (Detectron2Detector)
            self.detector.score_thresh = self._score_thresh

    @property
    def max_size(self) -> int:
        """Longest image side processed, px (images are shrunk to it; the detector's resize is
        capped by it too)."""
        return self._max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        self._max_size = _check_max_size(value)
        transform = getattr(self.detector, "transform", None)
        if transform is not None and hasattr(transform, "max_size"):
            transform.max_size = self._max_size
            transform.min_size = (min(self._cfg_min_size, self._max_size),)
        elif hasattr(self.detector, "max_size") and hasattr(self.detector, "min_size"):  # Detectron2Detector
            self.detector.max_size = self._max_size
            self.detector.min_size = min(self._cfg_min_size, self._max_size)
        if hasattr(self.detector, "detect_unpasted"):
            self.read_plan()  # a size the reading rule cannot use (tiles smaller than their overlap) fails here

    @property
    def pad(self) -> float:
        """Grey border added around every image before detection, fraction of its size (0 = none)."""
        return self._pad

    @pad.setter
    def pad(self, value: float) -> None:
        self._pad = check_pad(value)

    @property
    def retry_pad(self) -> float:
        """Border (fraction of the image size) of the second look at images with no face; 0 = off."""
        return self._retry_pad

    @retry_pad.setter
    def retry_pad(self, value: float) -> None:
        self._retry_pad = check_pad(value)

    @property
    def model_info(self) -> Dict[str, Any]:
        """What was loaded (name, configs, weights, device) plus ``pad`` when a border is added:
        a fresh dict, so it always reflects the current ``pad``."""
        info = dict(self._loaded)
        if self.pad:
            info["pad"] = self.pad
        elif self.retry_pad:
            info["retry_pad"] = self.retry_pad
        return info

    @property
    def has_attributes(self) -> bool:
        return self.attribute_net is not None

    def crop_kwargs(self) -> Dict[str, Any]:
        """Arguments of :func:`extract_face_crops` the attribute net was trained with."""
        net_kw = getattr(self.attribute_net, "crop_kwargs", None)
        if net_kw:
            return dict(net_kw)
        m = self.attr_cfg.MODEL
        return {"size": int(m.CROP_SIZE), "margin": float(m.CROP_MARGIN)}

    # inference ------------------------------------------------------------------------------------------
    def __call__(self, inputs: Union[ImageInput, Sequence[ImageInput]], color: str = "bgr"):
        """Faces of one image (``list[Face]``) or of a batch (``list[list[Face]]``).

        Args:
            inputs: a path, an ``H x W x 3`` uint8 array, or a list of these (or an
                ``N x H x W x 3`` array). Paths are decoded with EXIF rotation applied.
            color: channel order of array inputs, ``"bgr"`` (OpenCV, default) or ``"rgb"``.
        """
        if _is_single(inputs):
            return self.predict_batch([inputs], color=color)[0]
        return self.predict_batch(list(inputs), color=color)

    def predict_results(self, inputs: Sequence[ImageInput], color: str = "bgr",
                        files: Optional[Sequence[str]] = None,
                        frames: Optional[Sequence[Optional[int]]] = None) -> List[ImageResult]:
        """Like :meth:`predict_batch`, returning :class:`ImageResult` records (file, size,
        frame, faces) ready for the writers. ``files`` default to the paths given, or
        ``"<array N>"``."""
        inputs = list(inputs)
        rgbs = [self._to_rgb(x, color, i) for i, x in enumerate(inputs)]
        faces = self.predict_batch(rgbs, color="rgb")
        out = []
        for i, (x, rgb, fs) in enumerate(zip(inputs, rgbs, faces)):
            name = files[i] if files is not None else (str(x) if isinstance(x, (str, Path)) else f"<array {i}>")
            out.append(ImageResult(file=name, width=rgb.shape[1], height=rgb.shape[0],
                                   frame=None if frames is None else frames[i], faces=fs))
        return out

    @staticmethod
    def _to_rgb(x, color: str, i: int) -> np.ndarray:
        if isinstance(x, (str, Path)):
            return load_image(x)
        return to_rgb_array(x, color, name=f"image {i}")

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[ImageInput], color: str = "bgr",
                      attributes: bool = True) -> List[List[Face]]:
        """Faces of every image of ``images`` (see :meth:`__call__`), one detector call and one
        attribute-net call for the whole batch. ``attributes=False`` skips the attribute net
        (faces without age / gender / emotion; :meth:`predict_attributes` adds them later, e.g.
        only for the new tracks of a video frame)."""
        if color not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        t0 = time.perf_counter()
        cuda = self.device.type == "cuda"

        def sync():
            if cuda:
                torch.cuda.synchronize(self.device)

        # 1.-3. preprocess (optional border), detector (whole batch), postprocess
        originals = [self._to_rgb(x, color, i) for i, x in enumerate(images)]
        rgbs, borders, per_image, (pre_s, det_s, post_s) = self._detect(originals, self.pad)
        if self.retry_pad > 0 and self.pad == 0:
            empty = [i for i, p in enumerate(per_image) if len(p[0]) == 0]
            if empty:  # nothing found: perhaps a face filling the frame; look again with a border
                r_rgbs, r_borders, r_per_image, r_times = self._detect([originals[i] for i in empty], self.retry_pad)
                pre_s, det_s, post_s = pre_s + r_times[0], det_s + r_times[1], post_s + r_times[2]
                for i, rgb, border, p in zip(empty, r_rgbs, r_borders, r_per_image):
                    if len(p[0]):
                        rgbs[i], borders[i], per_image[i] = rgb, border, p
        sync()
        t3 = time.perf_counter()

        # 4. crops of every face of the batch -> one attribute-net call
        n_faces = sum(len(p[0]) for p in per_image)
        attrs: List[Optional[Dict[str, Any]]] = [None] * n_faces
        if attributes and self.attribute_net is not None and n_faces:
            attrs = self._attributes([(rgb, boxes, list(masks_dev)) for rgb, (boxes, masks_dev, _)
                                      in zip(rgbs, per_image) if len(boxes)])
        sync()
        t4 = time.perf_counter()

        # 5. Face records
        results: List[List[Face]] = []
        k = 0
        for boxes, _, (scores, masks_np) in per_image:
            faces = []
            for j in range(len(boxes)):
                f = Face(box=boxes[j].tolist(), score=float(scores[j]), mask=masks_np[j])
                f.set_attributes(attrs[k])
                k += 1
                faces.append(f)
            border = borders[len(results)]
            if border is not None:  # back to the unpadded image's pixels
                faces = [u for u in (unpad_face(f, *border) for f in faces) if u is not None]
            results.append(faces)
        t5 = time.perf_counter()
        self.timings = {
            "preprocess_ms": (t3 - t0 - det_s - post_s) * 1e3,
            "detector_ms": det_s * 1e3,
            "postprocess_ms": (post_s + t5 - t4) * 1e3,
            "attributes_ms": (t4 - t3) * 1e3,
            "total_ms": (t5 - t0) * 1e3,
            "images": len(rgbs),
            "faces": n_faces,
        }
        return results

    def read_plan(self) -> "ReadPlan":
        """How pictures are read now (:mod:`maskface.modeling.read_plan`): the config's rule with
        the current ``max_size`` (``MODEL.MIN_SIZE`` and the extra pass capped by it)."""
        from maskface.modeling.read_plan import ReadPlan

        plan = ReadPlan.from_config(self.cfg, max_size=self.max_size)
        extra = plan.extra_pass_size
        return dataclasses.replace(plan, min_size=min(self._cfg_min_size, self.max_size),
                                   extra_pass_size=None if extra is None else
                                   tuple(min(v, self.max_size) for v in extra))
    @torch.inference_mode()
    def predict_attributes(self, images: Sequence[ImageInput], faces: Sequence[Sequence[Face]],
                           color: str = "bgr") -> None:
        """Age / gender / emotion of ``faces[i]`` (faces of ``images[i]``, e.g. from
        ``predict_batch(..., attributes=False)``), set in place; one attribute-net call for all.

        Each face needs its ``box`` (and its ``mask``, ``H x W`` bool of its image, for the
        masked crop; without one the box is cropped unmasked). No attribute net: nothing changes.
        """
        if self.attribute_net is None:
            return
        if len(images) != len(faces):
            raise ValueError(f"predict_attributes: {len(images)} images but {len(faces)} face lists")
        jobs, todo = [], []
        for i, (x, fs) in enumerate(zip(images, faces)):
            if not fs:
                continue
            rgb = self._to_rgb(x, color, i)
            boxes = np.array([f.box for f in fs], dtype=np.float32).reshape(-1, 4)
            masks = [f.mask if f.mask is not None else np.ones(rgb.shape[:2], bool) for f in fs]
            if self.device.type == "cuda":
                masks = [torch.from_numpy(np.ascontiguousarray(m)).to(self.device) for m in masks]
            jobs.append((rgb, boxes, masks))
            todo.extend(fs)
        if not todo:
            return
        t0 = time.perf_counter()
        for f, a in zip(todo, self._attributes(jobs)):
            f.set_attributes(a)
        self.timings = {"attributes_ms": (time.perf_counter() - t0) * 1e3, "images": len(jobs), "faces": len(todo)}

    def _attributes(self, jobs: Sequence[Tuple[np.ndarray, np.ndarray, list]]) -> List[Dict[str, Any]]:
        """Decoded attributes of every face of ``jobs``: ``[(rgb H x W x 3, boxes (N, 4) px,
        N masks)]`` (images with at least one face), in order."""
        from maskface.modeling.attributes import extract_face_crops

        kw = self.crop_kwargs()
        cuda = self.device.type == "cuda"
        crops = []
        for rgb, boxes, masks in jobs:
            img = torch.from_numpy(rgb).to(self.device) if cuda else rgb
            crops.append(extract_face_crops(img, boxes, masks, **kw))
        raw = self.attribute_net(torch.cat(crops).to(self.device))
        attrs = list(self.attribute_net.decode(raw))
        n_faces = sum(len(b) for _, b, _ in jobs)
        if len(attrs) != n_faces:
            raise RuntimeError(f"attribute net decoded {len(attrs)} faces for {n_faces} crops")
        return attrs

    def _detect(self, originals: List[np.ndarray], pad: float):
        """Detector pass over RGB images, each given a grey border of ``pad`` first when > 0.

        Returns ``(rgbs, borders, per_image, (preprocess_s, detector_s, postprocess_s))``: the
        images the detector saw (padded or not), per image ``(px, py, w, h)`` or ``None`` (no
        border), and :meth:`_postprocess`'s output per image, in the padded image's pixels.
        Pictures are read by :meth:`read_plan` (own size or resized, tiles, a second pass),
        and the faces of all passes merged before their masks are pasted.
        """
        cuda = self.device.type == "cuda"
        unpasted = hasattr(self.detector, "detect_unpasted")
        plan = self.read_plan() if unpasted else None
        t0 = time.perf_counter()
        rgbs, tensors, borders = [], [], []
        for rgb in originals:
            border = None
            if pad > 0:
                h, w = rgb.shape[:2]
                rgb, (px, py) = pad_image(rgb, pad)
                border = (px, py, w, h)
            # tiles read the picture at its own size; otherwise shrink it here first (area filter)
            small = rgb if plan is not None and plan.tile else resize_max_side(rgb, self.max_size)[0]
            t = torch.from_numpy(small).to(self.device, non_blocking=True).permute(2, 0, 1).float().div_(255.0)
            tensors.append(t)
            rgbs.append(rgb)
            borders.append(border)
        if cuda:
            torch.cuda.synchronize(self.device)
        t1 = time.perf_counter()
        if not tensors:
            outputs = []
        elif unpasted:  # the reading plan, shared by both runtimes and the evaluation
            outputs = plan.detect(self.detector.detect_unpasted, tensors, score_thresh=self.score_thresh)
        else:  # any detector with the documented model(images) interface (masks pasted by it)
            outputs = self.detector(tensors)
        if cuda:
            torch.cuda.synchronize(self.device)
        t2 = time.perf_counter()
        per_image = [self._postprocess(rgb, out, rgb.shape[1] / t.shape[-1], rgb.shape[0] / t.shape[-2])
                     for rgb, out, t in zip(rgbs, outputs, tensors)]
        if cuda:
            torch.cuda.synchronize(self.device)
        return rgbs, borders, per_image, (t1 - t0, t2 - t1, time.perf_counter() - t2)

    def _postprocess(self, rgb: np.ndarray, out: Dict[str, torch.Tensor], sx: float, sy: float):
        """Detector output on an image scaled by ``1 / sx, 1 / sy`` -> boxes (N, 4) float32 numpy
        in ``rgb``'s px, masks for the crops (on the device), and (scores, masks as numpy bool).

        Box-sized ``(N, M, M)`` mask probabilities are pasted straight into ``rgb``'s pixels
        (:func:`paste_masks`); full-image ``(N, 1, h, w)`` ones are resampled to it."""
        h, w = rgb.shape[:2]
        keep = out["scores"] >= self.score_thresh
        if "labels" in out:
            keep &= out["labels"] == 1
        boxes = out["boxes"][keep].float()
        scores = out["scores"][keep].float()
        probs = out["masks"][keep] if "masks" in out else None
        if boxes.numel():
            boxes = boxes * torch.tensor([sx, sy, sx, sy], device=boxes.device, dtype=boxes.dtype)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        n = boxes.shape[0]
        boxes_np = boxes.cpu().numpy().astype(np.float32)
        if probs is None:
            masks = [None] * n
            masks_np = [None] * n
        elif probs.dim() == 3:  # box-sized probabilities: paste where the faces are
            masks_np = paste_masks(probs.float().cpu().numpy(), boxes_np, h, w, self.mask_thresh)
            masks = [torch.from_numpy(m).to(self.device) for m in masks_np] if self.device.type == "cuda" else masks_np
        else:
            probs = probs[:, 0] if probs.dim() == 4 else probs
            if probs.shape[-2:] != (h, w):
                chunks = []
                step = max(1, int(2e8 // (4 * h * w)))  # ~200 MB of float masks at a time on huge images
                for s in range(0, n, step):
                    up = torch.nn.functional.interpolate(probs[s:s + step, None].float(), size=(h, w),
                                                         mode="bilinear", align_corners=False)[:, 0]
                    chunks.append(up > self.mask_thresh)
                masks = torch.cat(chunks) if chunks else torch.zeros((0, h, w), dtype=torch.bool, device=probs.device)
            else:
                masks = probs > self.mask_thresh
            masks_np = list(masks.cpu().numpy()) if n else []
        return boxes_np, masks, (scores.cpu().numpy(), masks_np)

    # conveniences -----------------------------------------------------------------------------------------
    def warmup(self, size=(480, 640)) -> None:
        """One forward on a blank image (first-call allocations, cuDNN autotune)."""
        self.predict_batch([np.zeros((*size, 3), np.uint8)], color="rgb")

    def __repr__(self) -> str:
        return (f"FacePredictor(model={self.model_info['name']!r}, runtime={self.runtime}, device={self.device}, "
                f"attributes={self.has_attributes}, score_thresh={self.score_thresh}, max_size={self.max_size})")
