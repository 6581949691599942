"""The public pretrained weight files some tests load (``../shared/weights`` beside the checkout).

A module of its own, not ``conftest``: several test folders have a ``conftest.py``, and
``from conftest import ...`` gets whichever of them was imported last.
"""

import os
from pathlib import Path

import pytest

#: ``../shared/weights`` beside the checkout: the public pretrained files some tests load.
SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"


def shared_weight(name: str) -> Path:
    """Path of a public weight file in ``../shared/weights``. Missing: the test fails on CI (which
    always has it) and is skipped elsewhere, with the reason."""
    path = SHARED_WEIGHTS / name
    if not path.is_file():
        msg = f"{path} not found (the public weights folder ../shared/weights beside the checkout)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path
