"""Logging set-up for the command-line tools and the trainers (library code only logs)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional


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
