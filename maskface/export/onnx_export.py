"""Export the face Mask R-CNN and the attribute net to ONNX, with a JSON manifest.

Two graphs, both opset 17, exported with torch's TorchScript-based exporter (``dynamo=False``):

``detector.onnx``
    inputs ``image`` float32 ``(3, H, W)`` RGB in 0..1, **already resized** to the detector's
    input scale (shorter side ``min_size``, longer side at most ``max_size``; bilinear,
    ``align_corners=False``: :func:`maskface.modeling.face_rcnn.resize_for_detector`), any
    ``H x W``; ``score_thresh`` float32 scalar (detections scoring at most this are dropped
    before the mask head). Normalisation (``image_mean`` / ``image_std`` of the manifest, on
    0..1 values) and padding to a multiple of 32 happen inside the graph.
    outputs ``boxes`` ``(N, 4)`` xyxy px of the input image, ``scores`` ``(N,)``, ``masks``
    ``(N, 28, 28)`` face probabilities over each box (pasted outside the graph, see
    :func:`maskface.inference.masks.paste_masks`: pasting inside ONNX is slow).

``attributes.onnx``
    input ``crops`` float32 ``(N, 3, S, S)``, dynamic ``N``: normalised masked crops of
    :func:`maskface.modeling.attributes.extract_face_crops` with the manifest's ``crop`` settings.
    outputs ``age`` ``(N,)`` years, ``age_std`` ``(N,)`` years, ``age_group_probs`` ``(N, 8)``,
    ``gender_probs`` ``(N, 2)``, ``emotion_probs`` ``(N, 7)`` (class names in the manifest). An
    ensemble's members, their crop downsampling and test-time flips are inside the graph.

``manifest.json``
    what a deployer needs without reading this code: inputs, outputs, normalisation, resize
    rule, thresholds, crop settings, class names, the source weights and configs, and the sha256
    of each ONNX file (checked when :mod:`maskface.inference.onnx_runtime` loads them).
"""

from __future__ import annotations

import io
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskface.utils.io import atomic_write, load_json, save_json

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTE_OUTPUTS",
    "DETECTOR_OUTPUTS",
    "EXPORT_VERSION",
    "MANIFEST",
    "OPSET",
    "AttributeGraph",
    "DetectorGraph",
    "export_attributes",
    "export_detector",
    "export_models",
    "load_manifest",
    "require_onnxruntime",
    "sample_image",
]

#: Bumped whenever the graphs' inputs / outputs change (part of the export cache key).
EXPORT_VERSION = 1
OPSET = 17
MANIFEST = "manifest.json"
DETECTOR_FILE = "detector.onnx"
ATTRIBUTE_FILE = "attributes.onnx"
DETECTOR_OUTPUTS = ("boxes", "scores", "masks")
ATTRIBUTE_OUTPUTS = ("age", "age_std", "age_group_probs", "gender_probs", "emotion_probs")

_INSTALL_HINT = 'pip install -e ".[onnx]"  (or: pip install onnx onnxruntime)'


def require_onnxruntime():
    """The ``onnxruntime`` module, or an ImportError saying how to install the optional extra."""
    from maskface.utils.optional import import_optional

    return import_optional("onnxruntime", "the ONNX Runtime path (optional packages onnx and onnxruntime)", _INSTALL_HINT)


# --- graphs ------------------------------------------------------------------------------------------


class DetectorGraph(nn.Module):
    """``FaceRCNN.detect_unpasted`` on one image, as a module with tensor inputs and outputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.eval()  # the exporter restores the wrapper's mode afterwards: eval, not nn.Module's train

    def forward(self, image: torch.Tensor, score_thresh: torch.Tensor):
        out = self.model.detect_unpasted([image], score_thresh=score_thresh)[0]
        return out["boxes"], out["scores"], out["masks"]


def resample_matrix(src: int, dst: int) -> torch.Tensor:
    """``(dst, src)`` matrix ``R`` with ``R @ x == F.interpolate(x, bilinear, antialias=True)`` along one
    axis: the ensemble's crop downsampling as two matmuls (ONNX opset 17 has no antialiased Resize)."""
    # image k: row k all ones; its resampled first column is column k of R (an image that is constant
    # along the width stays constant; a width-1 image would take another code path in torch)
    rows = torch.eye(src).view(src, 1, src, 1).expand(src, 1, src, src)
    out = F.interpolate(rows, size=(dst, dst), mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0, :, 0].t().contiguous()


class AttributeGraph(nn.Module):
    """An :class:`AttributeNet` or :class:`AttributeEnsemble` as one graph: crops in, the
    :data:`ATTRIBUTE_OUTPUTS` that :meth:`AttributeNet.decode` reads out (same values as the
    module's ``forward`` in eval mode)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        from maskface.modeling.attributes import AttributeEnsemble

        members = list(net.members) if isinstance(net, AttributeEnsemble) else [net]
        self.members = nn.ModuleList(members)
        self.size = int(net.crop_kwargs["size"])
        self.flips = [bool(m.flip_test) for m in members]
        for i, m in enumerate(members):
            s = int(m.crop_kwargs["size"])
            self.register_buffer(f"resample{i}", resample_matrix(self.size, s) if s != self.size else torch.zeros(0),
                                 persistent=False)
            self.register_buffer(f"flip{i}", torch.arange(s - 1, -1, -1), persistent=False)  # mirror: reversed columns
        self.eval()

    def forward(self, crops: torch.Tensor):
        from maskface.modeling.attributes.net import average_outputs

        outs = []
        for i, m in enumerate(self.members):
            r = getattr(self, f"resample{i}")
            x = crops if r.numel() == 0 else torch.matmul(torch.matmul(r, crops), r.t())
            # the mirror image (reversed columns) by index_select, which every ONNX runtime has
            outs.append(m.read_with_mirror(x, x.index_select(3, getattr(self, f"flip{i}"))) if self.flips[i]
                        else m._forward(x))
        merged = outs[0] if len(outs) == 1 else average_outputs(outs)
        return tuple(merged[k] for k in ATTRIBUTE_OUTPUTS)


def _onnx_bytes(module: nn.Module, args: Tuple, input_names, output_names, dynamic_axes, opset: int) -> bytes:
    buf = io.BytesIO()
    with torch.no_grad(), _quiet_tracer():
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, do_constant_folding=True)
    return buf.getvalue()


class _quiet_tracer:
    """Silence the tracer's expected warnings (shape arithmetic turned into constants it can prove)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _write_bytes(data: bytes, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def export_detector(model: nn.Module, path: os.PathLike, sample: torch.Tensor, opset: int = OPSET) -> None:
    """Write ``model`` (a :class:`FaceRCNN`) as ``detector.onnx`` (see the module docstring).

    Args:
        sample: ``(3, H, W)`` float RGB 0..1 at the detector's input scale, traced once; a photo
            with faces is best (every branch of the heads runs). Other sizes work at run time.
    """
    if sample.dim() != 3 or sample.shape[0] != 3:
        raise ValueError(f"sample must be a (3, H, W) image tensor, got {tuple(sample.shape)}")
    graph = DetectorGraph(model)
    faces = {0: "faces"}
    data = _onnx_bytes(graph, (sample, torch.tensor(0.0)), ["image", "score_thresh"], DETECTOR_OUTPUTS,
                       {"image": {1: "height", 2: "width"}, "boxes": faces, "scores": faces, "masks": faces}, opset)
    _write_bytes(data, Path(path))


def export_attributes(net: nn.Module, path: os.PathLike, opset: int = OPSET) -> None:
    """Write an attribute net / ensemble as ``attributes.onnx`` (dynamic batch of crops)."""
    graph = AttributeGraph(net.eval())
    crops = torch.randn(2, 3, graph.size, graph.size)
    batch = {0: "faces"}
    data = _onnx_bytes(graph, (crops,), ["crops"], ATTRIBUTE_OUTPUTS,
                       {"crops": batch, **{k: batch for k in ATTRIBUTE_OUTPUTS}}, opset)
    _write_bytes(data, Path(path))


# --- the pair + manifest -----------------------------------------------------------------------------


def sample_image() -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB photo traced through the detector at export: the repository's
    ``samples/faces.jpg``, or a synthetic image with face-like blobs when it is not there."""
    from maskface.model_zoo.registry import REPO_ROOT

    path = REPO_ROOT / "samples" / "faces.jpg"
    if path.is_file():
        from maskface.inference.image_io import load_image

        return load_image(path)
    logger.info("%s not found: tracing the detector on a synthetic image", path)
    rng = np.random.default_rng(0)
    img = np.full((480, 640, 3), 128, np.uint8)
    yy, xx = np.mgrid[:480, :640]
    for cx, cy, r in ((160, 200, 60), (330, 220, 70), (500, 190, 55)):
        img[((xx - cx) / r) ** 2 + ((yy - cy) / (1.25 * r)) ** 2 < 1] = rng.integers(150, 230, 3)
    return img


def export_models(out_dir: os.PathLike, detector: nn.Module, detector_cfg, sample_rgb: np.ndarray,
                  attribute_net: Optional[nn.Module] = None, attribute_cfg=None,
                  source: Optional[Dict[str, Any]] = None, opset: int = OPSET) -> Dict[str, Any]:
    """Export the detector (and the attribute net, when given) into ``out_dir`` with ``manifest.json``.

    Args:
        detector: a loaded :class:`FaceRCNN`; ``detector_cfg`` its (merged) config.
        sample_rgb: ``(H, W, 3)`` uint8 RGB photo traced through the detector.
        attribute_net / attribute_cfg: the attribute model and its config, or ``None``.
        source: what the files were exported from (model name, weights paths and sha256s), copied
            into the manifest.

    Returns:
        The manifest (also written, atomically, as ``out_dir/manifest.json``, last: a folder with
        a manifest is complete).
    """
    from maskface.data.attributes import EMOTIONS, GENDERS
    from maskface.model_zoo.registry import sha256_file
    from maskface.modeling.attributes.crops import DEFAULT_FILL, PIXEL_MEAN, PIXEL_STD
    from maskface.modeling.attributes.heads import AGE_GROUP_NAMES
    from maskface.modeling.face_rcnn import resize_for_detector

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = detector_cfg.MODEL
    detector = detector.eval()
    t0 = time.perf_counter()
    image = torch.from_numpy(np.ascontiguousarray(sample_rgb)).permute(2, 0, 1).float().div(255.0)
    sample = resize_for_detector(image, int(m.MIN_SIZE), int(m.MAX_SIZE))
    export_detector(detector, out / DETECTOR_FILE, sample, opset=opset)
    transform = detector.transform
    manifest: Dict[str, Any] = {
        "format": "maskface-onnx",
        "export_version": EXPORT_VERSION,
        "opset": opset,
        "exported_with": {"torch": torch.__version__, "python": platform.python_version()},
        "source": dict(source or {}),
        "detector": {
            "file": DETECTOR_FILE,
            "sha256": sha256_file(out / DETECTOR_FILE),
            "inputs": {"image": "float32 (3, H, W) RGB in 0..1, resized: scale = min(min_size / shorter side, "
                                "max_size / longer side), bilinear, align_corners=False",
                       "score_thresh": "float32 scalar; detections scoring <= it are dropped"},
            "outputs": {"boxes": "float32 (N, 4) xyxy px of the input image", "scores": "float32 (N,)",
                        "masks": "float32 (N, 28, 28) face probability over each box"},
            "min_size": int(m.MIN_SIZE),
            "max_size": int(m.MAX_SIZE),
            "size_divisible": int(transform.size_divisible),
            "image_mean": [float(v) for v in transform.image_mean],
            "image_std": [float(v) for v in transform.image_std],
            "normalisation": "(image - image_mean) / image_std on 0..1 RGB, inside the graph",
            "score_thresh": float(m.SCORE_THRESH),
            "mask_thresh": float(m.MASK_THRESH),
            "class_names": ["face"],
            "config": detector_cfg.to_dict(),
        },
    }
    if attribute_net is not None:
        export_attributes(attribute_net, out / ATTRIBUTE_FILE, opset=opset)
        manifest["attributes"] = {
            "file": ATTRIBUTE_FILE,
            "sha256": sha256_file(out / ATTRIBUTE_FILE),
            "inputs": {"crops": "float32 (N, 3, S, S) RGB, (pixel / 255 - pixel_mean) / pixel_std"},
            "outputs": {"age": "float32 (N,) years", "age_std": "float32 (N,) years",
                        "age_group_probs": "float32 (N, 8)", "gender_probs": "float32 (N, 2)",
                        "emotion_probs": "float32 (N, 7)"},
            "crop": {**{k: v for k, v in attribute_net.crop_kwargs.items()}, "fill": list(DEFAULT_FILL),
                     "pixel_mean": list(PIXEL_MEAN), "pixel_std": list(PIXEL_STD),
                     "rule": "maskface.modeling.attributes.extract_face_crops"},
            "flip_test": bool(getattr(attribute_net, "flip_test", False)),
            "class_names": {"gender": list(GENDERS), "emotion": list(EMOTIONS), "age_group": list(AGE_GROUP_NAMES)},
            "config": attribute_cfg.to_dict() if attribute_cfg is not None else None,
        }
    save_json(manifest, out / MANIFEST, indent=2)
    logger.info("Exported ONNX models to %s in %.1f s", out, time.perf_counter() - t0)
    return manifest


def load_manifest(folder: os.PathLike, verify: bool = True) -> Dict[str, Any]:
    """``folder/manifest.json``, with every listed ONNX file present (and its sha256 matching when
    ``verify``). Raises FileNotFoundError / ValueError naming the problem."""
    from maskface.model_zoo.registry import WeightsIntegrityError, sha256_file

    folder = Path(folder)
    manifest = load_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != "maskface-onnx":
        raise ValueError(f"{folder / MANIFEST}: not a MaskFace ONNX manifest")
    if manifest.get("export_version") != EXPORT_VERSION:
        raise ValueError(f"{folder / MANIFEST}: export version {manifest.get('export_version')}, this code reads "
                         f"{EXPORT_VERSION}; export again with tools/export.py")
    for part in ("detector", "attributes"):
        entry = manifest.get(part)
        if entry is None:
            continue
        path = folder / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {folder / MANIFEST} but missing")
        if verify and sha256_file(path) != entry["sha256"]:
            raise WeightsIntegrityError(f"{path}: sha256 differs from {folder / MANIFEST} (modified or truncated)")
    return manifest


def manifest_files(manifest: Dict[str, Any]) -> List[str]:
    """Names of the ONNX files a manifest lists."""
    return [manifest[p]["file"] for p in ("detector", "attributes") if manifest.get(p)]
