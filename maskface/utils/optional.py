"""Optional dependencies: one way to import them and to say how to install them when missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(name: str, needed_for: str, install: str) -> ModuleType:
    """``importlib.import_module(name)``, or an :class:`ImportError` naming what needs the module
    (``needed_for``, e.g. ``"MaskFace on Ray"``) and how to install it (``install``)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(f"{needed_for} needs {name}, which is not installed ({e}); install it with: {install}") from None
