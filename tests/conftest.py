"""Makes the shared test helpers in this folder (``tool_loader``, ``shared_weights``) importable
from every test."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
