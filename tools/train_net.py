#!/usr/bin/env python
"""Train the face Mask R-CNN (detector + segmenter) from a config.

Thin CLI: parses arguments, merges the config and hands over to
:func:`maskface.engine.trainer.train_worker` through :func:`maskface.engine.launch.launch`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from maskface.config import get_cfg, setup_cfg  # noqa: E402

EPILOG = """\
examples:
  # CPU-sized model on one machine
  python tools/train_net.py --config-file configs/maskface_R18_FPN_lite.yaml \\
      DATASETS.TRAIN "['/data/celebamask_hq_train.json', '/data/wider_val_train.json']" \\
      DATASETS.TRAIN_WEIGHTS "[1.0, 2.0]" OUTPUT_DIR runs/lite

  # continue an interrupted run exactly where OUTPUT_DIR/last_checkpoint left it
  python tools/train_net.py --config-file configs/maskface_R18_FPN_lite.yaml --resume OUTPUT_DIR runs/lite

  # 8 GPUs on one machine; or 2 machines x 8 GPUs (run on each, with its --machine-rank)
  python tools/train_net.py --config-file configs/maskface_R50_FPN.yaml --num-gpus 8
  python tools/train_net.py --config-file configs/maskface_R50_FPN.yaml --num-gpus 8 \\
      --num-machines 2 --machine-rank 0 --dist-url tcp://10.0.0.1:29500

  # or let torchrun start the processes (it sets RANK / WORLD_SIZE / LOCAL_RANK)
  torchrun --nproc-per-node 8 tools/train_net.py --config-file configs/maskface_R50_FPN.yaml

Outputs in OUTPUT_DIR: config.yaml (merged config), log.txt, metrics.json (JSON lines),
tb/ (TensorBoard), model_XXXXXXX.pth every SOLVER.CHECKPOINT_PERIOD iterations, model_final.pth,
last_checkpoint, eval/ (COCO evaluation of DATASETS.TEST every TEST.EVAL_PERIOD and at the end).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_net.py",
        description="Train the MaskFace face detector/segmenter (Mask R-CNN).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config-file", required=True, metavar="FILE", help="YAML config (may use _BASE_), e.g. configs/maskface_R18_FPN_lite.yaml")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT_DIR/last_checkpoint (model, optimizer, LR schedule, iteration, RNG); "
        "without a checkpoint there, start from scratch",
    )
    p.add_argument("--num-gpus", type=int, default=1, metavar="N", help="processes (GPUs) per machine; on a CPU-only machine N CPU processes with gloo (default 1)")
    p.add_argument("--num-machines", type=int, default=1, metavar="M", help="number of machines (default 1)")
    p.add_argument("--machine-rank", type=int, default=0, metavar="R", help="rank of this machine, 0..M-1 (default 0)")
    p.add_argument(
        "--dist-url",
        default="auto",
        metavar="URL",
        help="rendezvous of the process group, e.g. tcp://10.0.0.1:29500 (machine 0's address); "
        "'auto' = a free local port (one machine only)",
    )
    p.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides, e.g. SOLVER.MAX_ITER 1000 OUTPUT_DIR runs/x (applied after the file)",
    )
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = setup_cfg(get_cfg(), args.config_file, args.opts)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        print(f"train_net.py: config error: {e}", file=sys.stderr)
        return 2
    if not cfg.DATASETS.TRAIN:
        print("train_net.py: DATASETS.TRAIN is empty: give COCO face JSON paths or registered names", file=sys.stderr)
        return 2
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        print("train_net.py: need --num-gpus >= 1, --num-machines >= 1, 0 <= --machine-rank < --num-machines", file=sys.stderr)
        return 2

    from maskface.engine.launch import launch
    from maskface.engine.trainer import train_worker

    launch(
        train_worker,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(cfg, args.resume),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
