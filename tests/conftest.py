"""Makes the shared test helpers in this folder (``tool_loader``) importable from every test."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os  # noqa: E402

import pytest  # noqa: E402

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


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    """Tiny random-weight detector + attribute net files, written once per session."""
    from maskface.inference.testing import session_tiny_models

    return session_tiny_models(tmp_path_factory)
