"""Shared fixtures of the converter tests: the tool's ``main`` and a loader that checks outputs."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from tool_loader import load_tool

from maskface.data.coco_faces import load_coco_faces


@pytest.fixture(scope="session")
def convert():
    """``convert(*argv) -> exit code``: ``tools/convert_annotations.py``'s ``main``."""
    module = load_tool("convert_annotations")
    return lambda *argv: module.main([str(a) for a in argv])


def _load_checked(path: Path) -> dict:
    """Read a converter output after checking that pycocotools and ``load_coco_faces`` (strict,
    with image files checked) both load it with the same images and faces."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    records = load_coco_faces(path, strict=True)
    data = json.loads(Path(path).read_text())
    assert len(coco.imgs) == len(records) == len(data["images"])
    assert len(coco.anns) == sum(len(r["annotations"]) for r in records) == len(data["annotations"])
    return data


def _faces_of(data: dict, file_name: str) -> list:
    """The faces of the image whose ``file_name`` is ``file_name`` or ends with ``/file_name``."""
    (image,) = [im for im in data["images"] if f"/{im['file_name']}".endswith(f"/{file_name}")]
    return [a for a in data["annotations"] if a["image_id"] == image["id"]]


@pytest.fixture(scope="session")
def load_checked():
    """``load_checked(path) -> dict``: a converter output, checked to load in pycocotools and in
    ``load_coco_faces(strict=True)``."""
    return _load_checked


@pytest.fixture(scope="session")
def faces_of():
    """``faces_of(data, file_name) -> list``: the faces of one image of a COCO dict."""
    return _faces_of
