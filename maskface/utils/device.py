"""Choosing the torch device from a user's ``--device`` / ``MODEL.DEVICE`` string."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise a checked ``torch.device``.

    Raises ``RuntimeError`` when a CUDA device is asked for on a machine without CUDA.
    """
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available on this machine; use --device cpu")
    return dev
