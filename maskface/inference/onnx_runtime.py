"""The ONNX Runtime path of :class:`~maskface.FacePredictor` (``runtime="onnxruntime"``).

The exported graphs (:mod:`maskface.export.onnx_export`) are wrapped so that they answer exactly
like the PyTorch modules the predictor otherwise calls:

* :class:`OnnxDetector` -- ``detect_unpasted(images, score_thresh)`` as
  :meth:`maskface.modeling.face_rcnn.FaceRCNN.detect_unpasted` (one session run per image);
* :class:`OnnxAttributeNet` -- ``net(crops) -> outputs`` and ``decode`` as
  :class:`~maskface.modeling.attributes.AttributeNet` (one run for all faces of a batch).

Everything around them (resize, mask pasting, crops, decoding, ``Face`` records) is shared code,
so the two runtimes differ only by the numerics of the graphs.

Where the files come from: an exported folder (``onnx_dir``, with ``manifest.json``), or else an
export made on first use into the cache, ``$MASKFACE_CACHE/onnx/<key>`` (``~/.cache/maskface``),
keyed by the weights' sha256, the configs and :data:`EXPORT_VERSION`, so a changed model is
exported again and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from maskface.export.onnx_export import (
    ATTRIBUTE_OUTPUTS,
    DETECTOR_OUTPUTS,
    EXPORT_VERSION,
    MANIFEST,
    load_manifest,
    require_onnxruntime,
)

logger = logging.getLogger(__name__)

__all__ = ["OnnxAttributeNet", "OnnxDetector", "export_cache_dir", "make_session"]


def make_session(path: os.PathLike, threads: int = 0, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` for ``path``.

    Args:
        threads: intra-op threads (0 = ONNX Runtime's default, one per physical core). On a
            machine shared with other jobs, fewer threads than busy cores avoids threads waiting
            on each other.
        device: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` (the CUDA provider when this onnxruntime
            build has it, else CPU with a warning).
    """
    ort = require_onnxruntime()
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No busy-waiting between runs: the pipeline alternates ONNX Runtime calls with PyTorch / OpenCV
    # work (crops, mask pasting) on the same cores, and spinning threads starved that work (2 cores:
    # whole pipeline 185 -> 106 ms, crop extraction 38 -> 8 ms; the detector alone is unchanged).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: shape-inference notes on the dynamic graphs are expected
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            index = int(str(device).split(":")[1]) if ":" in str(device) else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            logger.warning("onnxruntime has no CUDA provider here (pip install onnxruntime-gpu); running on CPU")
    if providers == ["CPUExecutionProvider"]:
        return _cpu_session_with_cached_optimization(ort, Path(path), opts)
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def _cpu_session_with_cached_optimization(ort, path: Path, opts):
    """A CPU session, its graph optimisation done once: ONNX Runtime's optimised graph is saved
    next to ``path`` (named after the ONNX Runtime version; it suits this machine's CPU) and later
    sessions load it with optimisation off, which takes ~0.3 s instead of ~2 s for the detector:
    most of a short run's start-up. A folder that cannot be written just optimises each time."""
    optimized = path.with_name(f"{path.stem}.ort{ort.__version__}.opt.onnx")
    if optimized.is_file() and optimized.stat().st_mtime >= path.stat().st_mtime:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(optimized), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # a damaged copy: optimise from the original again (and rewrite it)
            logger.warning("%s: %s; optimising %s again", optimized, e, path.name)
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    tmp = optimized.with_name(f".{optimized.name}.{os.getpid()}.tmp")
    if os.access(path.parent, os.W_OK):
        opts.optimized_model_filepath = str(tmp)
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    if tmp.exists():
        os.replace(tmp, optimized)  # atomic: a cut run leaves no half-written graph under the real name
    return session


class OnnxDetector:
    """``detector.onnx`` behind :meth:`FaceRCNN.detect_unpasted`'s interface.

    Args:
        path: the ONNX file; ``threads`` / ``device``: see :func:`make_session`.
    """

    def __init__(self, path: os.PathLike, threads: int = 0, device: str = "cpu"):
        self.path = str(path)
        self.session = make_session(path, threads, device)
        names = [o.name for o in self.session.get_outputs()]
        if tuple(names) != DETECTOR_OUTPUTS:
            raise ValueError(f"{path}: outputs {names}, expected {list(DETECTOR_OUTPUTS)}; "
                             "not a MaskFace detector export")

    def detect_unpasted(self, images: List[torch.Tensor], score_thresh: float = 0.5) -> List[Dict[str, torch.Tensor]]:
        """``images``: ``(3, h, w)`` float RGB 0..1 at the detector's input scale -> per image
        ``boxes`` ``(N, 4)`` px of that image, ``scores`` ``(N,)``, ``masks`` ``(N, 28, 28)``
        probabilities (CPU tensors)."""
        thresh = np.asarray(score_thresh, dtype=np.float32)
        out = []
        for img in images:
            x = np.ascontiguousarray(img.detach().cpu().numpy(), dtype=np.float32)
            boxes, scores, masks = self.session.run(None, {"image": x, "score_thresh": thresh})
            out.append({"boxes": torch.from_numpy(boxes), "scores": torch.from_numpy(scores),
                        "masks": torch.from_numpy(masks)})
        return out


class OnnxAttributeNet:
    """``attributes.onnx`` behind :class:`AttributeNet`'s interface (``net(crops)``, ``decode``,
    ``crop_kwargs``, ``flip_test``).

    Args:
        path: the ONNX file; ``entry``: its manifest entry (crop settings).
    """

    def __init__(self, path: os.PathLike, entry: Dict[str, Any], threads: int = 0, device: str = "cpu"):
        from maskface.modeling.attributes import AttributeNet

        self.path = str(path)
        self.session = make_session(path, threads, device)
        crop = entry["crop"]
        self.crop_kwargs = {k: crop[k] for k in ("size", "margin", "dilate", "feather", "ellipse_union")}
        self.flip_test = bool(entry.get("flip_test", False))
        self.decode = AttributeNet.decode

    def __call__(self, crops: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Normalised crops ``(N, 3, S, S)`` -> the :data:`ATTRIBUTE_OUTPUTS` as CPU tensors."""
        size = self.crop_kwargs["size"]
        if crops.dim() != 4 or tuple(crops.shape[1:]) != (3, size, size):
            raise ValueError(f"expected crops of shape (N, 3, {size}, {size}), got {tuple(crops.shape)}")
        x = np.ascontiguousarray(crops.detach().cpu().numpy(), dtype=np.float32)
        return {k: torch.from_numpy(v) for k, v in zip(ATTRIBUTE_OUTPUTS, self.session.run(None, {"crops": x}))}


# --- the export cache --------------------------------------------------------------------------------


def export_key(detector_cfg, detector_weights: str, attribute_cfg=None, attribute_weights: Optional[str] = None) -> str:
    """Cache key of an export: the weights' sha256, the configs that shape the graphs, the
    export format version and the torch version (16 hex digits)."""
    from maskface.model_zoo.registry import sha256_file

    parts = {
        "v": EXPORT_VERSION,
        "torch": torch.__version__,
        "detector": [detector_cfg.to_dict(), sha256_file(detector_weights)],
        "attributes": None if attribute_weights is None else [attribute_cfg.to_dict(), sha256_file(attribute_weights)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def export_cache_dir(key: str) -> Path:
    """``$MASKFACE_CACHE/onnx/<key>`` (default cache ``~/.cache/maskface``)."""
    from maskface.model_zoo.registry import cache_dir

    return cache_dir() / "onnx" / key


def cached_manifest(folder: Path) -> Optional[Dict[str, Any]]:
    """The manifest of a complete export in ``folder``, or ``None`` (absent, or failing its checks:
    then it is exported again)."""
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return load_manifest(folder)
    except (OSError, ValueError, RuntimeError) as e:
        logger.warning("Ignoring the cached ONNX export in %s (%s); exporting again", folder, e)
        return None
