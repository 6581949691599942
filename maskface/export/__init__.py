"""Deployment export: ONNX graphs of the detector and the attribute net, a manifest, and checks
that ONNX Runtime gives the same faces as PyTorch (:mod:`.onnx_export`, :mod:`.check`)."""

from maskface.export.onnx_export import (
    ATTRIBUTE_OUTPUTS,
    DETECTOR_OUTPUTS,
    EXPORT_VERSION,
    MANIFEST,
    export_models,
    load_manifest,
    require_onnxruntime,
)

__all__ = ["ATTRIBUTE_OUTPUTS", "DETECTOR_OUTPUTS", "EXPORT_VERSION", "MANIFEST", "export_models", "load_manifest",
           "require_onnxruntime"]
