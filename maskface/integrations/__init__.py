"""Bridges to other frameworks. Each sub-package imports its framework lazily: nothing in the rest of
MaskFace imports one, and importing a bridge without its framework installed fails only when a
function that needs it is called, with a message saying how to install it.

``detectron2``: MaskFace datasets, backbones, checkpoints and configs inside Detectron2, and
Detectron2 detectors inside :class:`~maskface.inference.predictor.FacePredictor`.
"""
