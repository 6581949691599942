"""Helpers shared by the detector tests: a tiny config and synthetic COCO face files.

Import with ``sys.path.insert(0, <this folder>)``; tiny means resnet18 with a 32-channel FPN on
~100 px images, a few proposals and slim heads, so a training step takes well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from maskface.config import get_cfg, setup_cfg
from maskface.data.synthetic import make_synthetic_coco

TINY_YAML = """\
MODEL:
  DEVICE: cpu
  BACKBONE: resnet18
  FPN_CHANNELS: 32
  MIN_SIZE: 96
  MAX_SIZE: 128
  RPN_PRE_NMS_TOP_N_TRAIN: 200
  RPN_POST_NMS_TOP_N_TRAIN: 100
  RPN_PRE_NMS_TOP_N_TEST: 100
  RPN_POST_NMS_TOP_N_TEST: 50
  BOX_BATCH_SIZE_PER_IMAGE: 64
  BOX_HEAD_DIM: 64
  MASK_HEAD_DIM: 16
INPUT:
  MIN_SIZE_TRAIN: [80, 96]
  MAX_SIZE_TRAIN: 128
  COLOR_JITTER: 0.2
SOLVER:
  IMS_PER_BATCH: 2
  BASE_LR: 0.01
  MAX_ITER: 3
  STEPS: [3]
  WARMUP_ITERS: 2
  CHECKPOINT_PERIOD: 2
  LOG_PERIOD: 1
DATALOADER:
  NUM_WORKERS: 0
"""


def write_tiny_config(folder: Path) -> str:
    path = Path(folder) / "tiny.yaml"
    path.write_text(TINY_YAML, encoding="utf-8")
    return str(path)


def tiny_cfg(tmp_path: Path, opts: List[str] = ()):
    """A frozen tiny config (OUTPUT_DIR inside ``tmp_path``)."""
    return setup_cfg(get_cfg(), write_tiny_config(tmp_path), ["OUTPUT_DIR", str(tmp_path / "out"), *opts])


def make_dataset(folder: Path, num_images: int = 6, **kw) -> str:
    """Synthetic COCO face file with masked, box-only and crowd faces; returns the JSON path."""
    kw.setdefault("box_only_fraction", 0.3)
    kw.setdefault("crowd_fraction", 0.1)
    return make_synthetic_coco(str(folder), num_images=num_images, size=(96, 128), **kw)
