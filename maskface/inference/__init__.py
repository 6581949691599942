"""Inference: :class:`FacePredictor` (images -> :class:`Face` records), the result schema and
writers, visualisation, tracking and video I/O. ``tools/infer.py`` runs
:class:`~maskface.inference.runner.InferenceRunner`. Schema: ``maskface/inference/SCHEMA.md``.

Imports are lazy so ``import maskface.inference`` does not load torch.
"""

_EXPORTS = {
    "FacePredictor": "maskface.inference.predictor",
    "Face": "maskface.inference.results",
    "ImageResult": "maskface.inference.results",
    "draw_faces": "maskface.inference.visualize",
    "FaceTracker": "maskface.inference.tracking",
    "AttributeSmoother": "maskface.inference.tracking",
    "load_image": "maskface.inference.image_io",
    "ImageLoadError": "maskface.inference.image_io",
    "InferenceRunner": "maskface.inference.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'maskface.inference' has no attribute {name!r}")
