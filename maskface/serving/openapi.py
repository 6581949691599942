"""The REST API's OpenAPI 3.0 description, written by hand (Flask has no schema generator).

Served at ``/api/v1/openapi.json`` and rendered by the local docs page ``/api/docs``. The face and
image schemas mirror ``maskface/inference/results.py`` (the one JSON schema of MaskFace); the
tests check real responses against the required keys listed here, so the two cannot drift apart
silently.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional, Tuple

from maskface.inference.anonymize import DEFAULT_MARGIN_FRAC, MAX_MARGIN, METHODS, REGIONS
from maskface.serving.uploads import IMAGE_FORMATS, VIDEO_FORMATS

__all__ = ["openapi_spec", "DEFAULT_BOUNDS"]

# Form-field ranges when no server is at hand; a running server publishes its own
# (AnalysisService.bounds(): the model's score threshold, the server's max_size and frame cap).
DEFAULT_BOUNDS = {
    "score_thresh": (0.0, 1.0),
    "mask_thresh": (0.0, 1.0),
    "max_size": (32, 8192),
    "every_n_frames": (1, 10000),
    "anonymize_margin": (0, MAX_MARGIN),
}

_NUM_OR_NULL = {"type": "number", "nullable": True}

_FACE = {
    "type": "object",
    "required": ["box", "score", "mask", "age", "age_std", "age_group", "age_group_top", "gender", "gender_prob",
                 "emotion", "emotion_probs", "track_id"],
    "properties": {
        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                "description": "[x1, y1, x2, y2] in pixels of the image as displayed (EXIF applied)"},
        "score": {"type": "number", "description": "detector confidence, 0..1"},
        "mask": {"type": "object", "nullable": True, "description": "COCO compressed RLE of the face mask",
                 "properties": {"size": {"type": "array", "items": {"type": "integer"}, "description": "[H, W]"},
                                "counts": {"type": "string"}}},
        "age": dict(_NUM_OR_NULL, description="years"),
        "age_std": dict(_NUM_OR_NULL, description="uncertainty of age, years"),
        "age_group": {"type": "string", "nullable": True, "example": "25-32",
                      "description": "Adience group that holds age"},
        "age_group_top": {"type": "string", "nullable": True, "example": "25-32",
                          "description": "most probable Adience group under the predicted age distribution"},
        "gender": {"type": "string", "nullable": True, "enum": ["female", "male"]},
        "gender_prob": dict(_NUM_OR_NULL, description="probability of the reported gender"),
        "emotion": {"type": "string", "nullable": True,
                    "enum": ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]},
        "emotion_probs": {"type": "object", "nullable": True, "additionalProperties": {"type": "number"}},
        "track_id": {"type": "integer", "nullable": True, "description": "video only: the face's track"},
    },
}

_IMAGE = {
    "type": "object",
    "required": ["file", "width", "height", "frame", "faces"],
    "properties": {
        "file": {"type": "string", "description": "the uploaded file's name"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "frame": {"type": "integer", "nullable": True, "description": "video frame index, null for images"},
        "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
    },
}

_RESULTS = {
    "type": "object",
    "required": ["model", "images", "errors"],
    "description": "The same document `tools/infer.py` writes as results.json.",
    "properties": {
        "model": {"type": "string"},
        "images": {"type": "array", "items": {"$ref": "#/components/schemas/Image"},
                   "description": "one entry for an image; one per processed frame for a video"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "file": {"type": "string"}, "error": {"type": "string"}}}},
        "visualization": {
            "type": "object",
            "description": "only with `?vis=1`: the annotated image (for a video: the processed frame "
                           "with the most faces) as base64 JPEG",
            "properties": {"media_type": {"type": "string", "example": "image/jpeg"},
                           "frame": {"type": "integer", "nullable": True},
                           "data": {"type": "string", "format": "byte"}},
        },
        "anonymized": {
            "type": "object",
            "description": "only with the `anonymize` field: the upload with its faces blurred / pixelated / "
                           "filled, at its original size: an image as base64 JPEG, a video as base64 MP4 "
                           "(mp4v, no audio; a lost face stays covered for a few frames)",
            "properties": {"media_type": {"type": "string", "enum": ["image/jpeg", "video/mp4"]},
                           "frame": {"type": "integer", "nullable": True},
                           "method": {"type": "string", "enum": list(METHODS)},
                           "region": {"type": "string", "enum": list(REGIONS)},
                           "data": {"type": "string", "format": "byte"}},
        },
    },
}

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string", "example": "unsupported file type"},
                   "detail": {"type": "string"}},
}

_HEALTH = {
    "type": "object",
    "required": ["status", "model", "device", "version"],
    "properties": {
        "status": {"type": "string", "example": "ok"},
        "model": {"type": "string", "example": "maskface-lite"},
        "device": {"type": "string", "example": "cpu"},
        "version": {"type": "string", "description": "maskface package version"},
        "limits": {"type": "object", "description": "upload size (bytes), time-out (s), video frames"},
    },
}


def _err(description: str) -> Dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_FIELDS = {  # form field -> (type, description)
    "score_thresh": ("number", "drop faces scored below this; the minimum is the model's own detector threshold"),
    "mask_thresh": ("number", "mask probability that makes a pixel part of the face"),
    "max_size": ("integer", "shrink the image so its longest side is at most this (px); the maximum is the "
                            "server's"),
    "every_n_frames": ("integer", "video: analyse frames 0, n, 2n, ..."),
    "anonymize_margin": ("number", "with anonymize: grow each region by this many pixels (default: "
                                   f"{DEFAULT_MARGIN_FRAC * 100:g} % of the face size)"),
}
# Choice fields: name -> (choices, description)
_CHOICE_FIELDS = {
    "anonymize": (METHODS,
                  "also return the upload with its faces blurred, pixelated or filled (`anonymized`); a missed "
                  "face is not covered: a lower score_thresh covers more faces"),
    "anonymize_region": (REGIONS, "with anonymize: the face's pixel mask (default), its box or "
                                                     "the ellipse inscribed in the box"),
}


_SPEC: Dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "MaskFace API",
        "description": "Face detection, segmentation and age / gender / emotion estimation. "
                       "Upload an image or a short video, get the faces as JSON.",
    },
    "servers": [{"url": "/"}],
    "paths": {
        "/api/v1/analyze": {
            "post": {
                "summary": "Find and describe the faces of an image or a short video",
                "description": (
                    "The file type is decided by the file's content, not its name. Images: "
                    + ", ".join(f.upper() for f in IMAGE_FORMATS) + ". Videos: "
                    + ", ".join(f.upper() for f in VIDEO_FORMATS) + " (frames beyond the server's "
                    "cap are refused). The answer is the results.json document of `tools/infer.py`."
                ),
                "parameters": [{
                    "name": "vis", "in": "query", "required": False,
                    "schema": {"type": "integer", "enum": [0, 1], "default": 0},
                    "description": "1: add `visualization`, the annotated image as base64 JPEG",
                }],
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "image or video"},
                        },
                    }}},
                },
                "responses": {
                    "200": {"description": "the faces",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Results"}}}},
                    "400": _err("no file, empty file or an invalid form field"),
                    "413": _err("upload larger than the server's limit, an image with more pixels than its "
                                "limit (read from the header, before decoding), or a video with too many or too "
                                "large frames"),
                    "415": _err("the content is not a supported image or video"),
                    "422": _err("a supported type that cannot be decoded (corrupt or truncated)"),
                    "503": _err("too many requests are waiting"),
                    "504": _err("the analysis did not finish within the server's time-out"),
                },
            }
        },
        "/api/v1/health": {
            "get": {
                "summary": "Model, device and version of the running server",
                "responses": {"200": {"description": "ok", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}},
            }
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0 JSON"}}}
        },
    },
    "components": {"schemas": {"Face": _FACE, "Image": _IMAGE, "Results": _RESULTS, "Error": _ERROR,
                               "Health": _HEALTH}},
}


def openapi_spec(version: str, bounds: Optional[Mapping[str, Tuple[float, float]]] = None) -> Dict[str, Any]:
    """A fresh copy of the spec with ``info.version`` and the form fields' ranges filled in."""
    spec = copy.deepcopy(_SPEC)
    spec["info"]["version"] = version
    bounds = bounds or DEFAULT_BOUNDS
    props = spec["paths"]["/api/v1/analyze"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"][
        "properties"]
    for name, (kind, description) in _FIELDS.items():
        lo, hi = bounds[name]
        props[name] = {"type": kind, "minimum": lo, "maximum": hi, "description": description}
    for name, (choices, description) in _CHOICE_FIELDS.items():
        props[name] = {"type": "string", "enum": list(choices), "description": description}
    return spec
