"""Makes the shared test helpers in this folder (``tool_loader``, ``shared_weights``) importable from every
test; the session fixture ``tiny_files``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

from shared_weights import SHARED_WEIGHTS, shared_weight  # noqa: E402,F401  (also importable from here)


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    """Tiny random-weight detector + attribute net files, written once per session."""
    from maskface.inference.testing import session_tiny_models

    return session_tiny_models(tmp_path_factory)
