"""Fixtures of the Detectron2 integration tests (helpers in d2_testing.py). Tests that need Detectron2
call ``pytest.importorskip("detectron2")``; the others (checkpoint and config conversion in the
MaskFace -> Detectron2 direction, argument checks) run without it."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from d2_testing import random_maskface_model  # noqa: E402


@pytest.fixture(scope="session")
def random_models():
    """``kind -> (cfg, model)`` for resnet, resnet_frozenbn, ssh and ssh_s4, built once."""
    return {k: random_maskface_model(k, seed=i) for i, k in enumerate(("resnet", "resnet_frozenbn", "ssh", "ssh_s4"))}


@pytest.fixture(scope="session")
def test_image():
    """(96, 160, 3) uint8 RGB: synthetic "faces" on texture; at the tiny configs' size (no resize), and
    its padded size (96 x 160) does not divide by 64, so P6 anchors use torchvision's stride rule."""
    from maskface.data.synthetic import make_synthetic_image

    return make_synthetic_image(np.random.default_rng(3), (96, 160), 3, min_face=24)[0]


@pytest.fixture(scope="session")
def astronaut_bgr():
    """scikit-image's astronaut (512 x 512, public domain; one face), BGR as OpenCV reads."""
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def converted_lite(tmp_path_factory):
    """The shipped maskface-lite detector converted by tools/convert_weights.py: its output folder
    (model_final.pth + config.yaml). Needs no Detectron2."""
    from tool_loader import load_tool

    out = tmp_path_factory.mktemp("d2_lite")
    assert load_tool("convert_weights").main(["--to", "detectron2", "--model", "maskface-lite", "--output", str(out),
                                              "--quiet"]) == 0
    return out
