"""MaskFace: face detection, segmentation and attributes (age, gender, emotion) on Mask R-CNN.

Heavy modules (torch models, OpenCV) are imported lazily so ``import maskface`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["FacePredictor", "Face", "__version__"]


def __getattr__(name):
    # Lazy import: keeps `import maskface` free of torch/cv2 import cost and side effects.
    if name == "FacePredictor":
        from maskface.inference.predictor import FacePredictor

        return FacePredictor
    if name == "Face":
        from maskface.inference.results import Face

        return Face
    raise AttributeError(f"module 'maskface' has no attribute {name!r}")
