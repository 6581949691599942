"""Checkpoints: atomic saves, a ``last_checkpoint`` pointer for exact resume, and loading with
clear errors for missing files or mismatched architectures.

Reading a weights file and fitting it to a model (:func:`load_checkpoint_file`,
:func:`load_model_weights`) live in :mod:`maskface.utils.checkpoint`, below modeling and the
model zoo that use them too; they are re-exported here for existing imports."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

import torch

from maskface.utils.checkpoint import load_checkpoint_file, load_model_weights
from maskface.utils.io import atomic_write

__all__ = ["Checkpointer", "load_checkpoint_file", "load_model_weights"]

logger = logging.getLogger(__name__)


class Checkpointer:
    """Saves ``{"model", "optimizer", "scheduler", "scaler", "iteration", ...}`` to ``save_dir``.

    Args:
        model: the module (a DistributedDataParallel wrapper is unwrapped).
        save_dir: where ``model_XXXXXXX.pth``, ``model_final.pth`` and ``last_checkpoint`` live.
        **checkpointables: other objects with ``state_dict``/``load_state_dict`` (optimizer, ...).
    """

    def __init__(self, model: torch.nn.Module, save_dir: str, **checkpointables: Any):
        self.model = model.module if hasattr(model, "module") else model
        self.save_dir = save_dir
        self.checkpointables = {k: v for k, v in checkpointables.items() if v is not None}

    def save(self, name: str, **extra: Any) -> str:
        """Write ``save_dir/name.pth`` atomically and point ``last_checkpoint`` at it."""
        os.makedirs(self.save_dir, exist_ok=True)
        data: Dict[str, Any] = {"model": self.model.state_dict()}
        data.update({k: v.state_dict() for k, v in self.checkpointables.items()})
        data.update(extra)
        path = os.path.join(self.save_dir, f"{name}.pth")
        with atomic_write(path, "wb") as f:
            torch.save(data, f)
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint")) as f:
            f.write(f"{name}.pth")
        logger.info("Saved checkpoint %s", path)
        return path

    def last_checkpoint(self) -> Optional[str]:
        p = os.path.join(self.save_dir, "last_checkpoint")
        if not os.path.isfile(p):
            return None
        with open(p, encoding="utf-8") as f:
            name = f.read().strip()
        path = os.path.join(self.save_dir, name)
        return path if os.path.isfile(path) else None

    def load(self, path: str, resume: bool = True) -> Dict[str, Any]:
        """Load weights (and, if ``resume``, optimizer/scheduler state); returns the rest."""
        data = load_checkpoint_file(path)
        load_model_weights(self.model, data.get("model", data), source=path)
        if resume:
            for k, obj in self.checkpointables.items():
                if k in data:
                    obj.load_state_dict(data[k])
        return {k: v for k, v in data.items() if k != "model" and k not in self.checkpointables}

