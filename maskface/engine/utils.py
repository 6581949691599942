"""Engine utilities shared by the detector and attribute trainers: seeding, devices, logging,
run folders (merged config saved next to every output) and a JSON-lines + TensorBoard writer."""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from maskface.utils.io import atomic_write

logger = logging.getLogger(__name__)


def seed_all(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch (each rank gets ``seed + rank`` so augmentations differ)."""
    s = int(seed) + int(rank)
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise a checked ``torch.device``."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available on this machine; use --device cpu")
    return dev


def setup_logging(output_dir: Optional[str] = None, rank: int = 0, level: int = logging.INFO) -> None:
    """Log to stderr (rank 0 only) and to ``output_dir/log.txt`` (rank 0) or ``log.txt.rankN``."""
    root = logging.getLogger("maskface")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s", "%m/%d %H:%M:%S")
    if rank == 0:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        root.addHandler(sh)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        name = "log.txt" if rank == 0 else f"log.txt.rank{rank}"
        fh = logging.FileHandler(os.path.join(output_dir, name))
        fh.setFormatter(fmt)
        root.addHandler(fh)


def save_config(cfg, output_dir: str, name: str = "config.yaml") -> str:
    """Write the merged config next to the run's outputs (atomically); returns its path."""
    path = Path(output_dir) / name
    with atomic_write(path) as f:
        f.write(cfg.dump())
    return str(path)


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
