"""Engine utilities shared by the detector and attribute trainers: seeding and a JSON-lines +
TensorBoard metrics writer.

:func:`resolve_device` (:mod:`maskface.utils.device`), :func:`setup_logging`
(:mod:`maskface.utils.logger`) and :func:`save_config` (:mod:`maskface.config`) live below the
layers that use them and are re-exported here for existing imports."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Dict

import numpy as np
import torch

from maskface.config.config import save_config
from maskface.utils.device import resolve_device
from maskface.utils.logger import setup_logging

__all__ = ["MetricsWriter", "read_metrics", "resolve_device", "save_config", "seed_all", "setup_logging"]

logger = logging.getLogger(__name__)


def seed_all(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch (each rank gets ``seed + rank`` so augmentations differ)."""
    s = int(seed) + int(rank)
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)


class MetricsWriter:
    """Appends one JSON object per call to ``metrics.json`` (JSON lines) and mirrors scalars to
    TensorBoard when the ``tensorboard`` package is installed (extra ``train``)."""

    def __init__(self, output_dir: str, tensorboard: bool = True):
        os.makedirs(output_dir, exist_ok=True)
        self.path = os.path.join(output_dir, "metrics.json")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(os.path.join(output_dir, "tb"))
            except ImportError:
                logger.info("tensorboard not installed (pip install -e .[train]); logging to metrics.json only")

    def write(self, iteration: int, scalars: Dict[str, float]) -> None:
        row = {"iteration": int(iteration), "time": round(time.time(), 3)}
        row.update({k: float(v) for k, v in scalars.items()})
        # One short line per append: a crash can at worst cut the last line, which readers skip.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, float(v), iteration)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str) -> list:
    """Rows of a ``metrics.json`` file, skipping a truncated last line."""
    rows = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
