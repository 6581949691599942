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


@pytest.fixture(autouse=True)
def _restore_maskface_logging():
    """A tool's ``main()`` run in-process calls ``setup_logging``, which binds a handler to the
    ``sys.stderr`` of that moment (a test's capture stream, closed after the test); later log
    lines, for example from a server thread, would then fail with "Logging error". Each test
    gets the ``maskface`` logger back as it found it."""
    import logging

    log = logging.getLogger("maskface")
    handlers, level = list(log.handlers), log.level
    yield
    for h in list(log.handlers):
        if h not in handlers:
            log.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in log.handlers:
            log.addHandler(h)
    log.setLevel(level)
