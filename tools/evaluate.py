#!/usr/bin/env python
"""Evaluate MaskFace models. One subcommand per model stage:

  detection   face boxes + masks: COCO bbox/segm AP, recall and mask IoU by face size

Adding a stage = one ``add_<name>_parser(subparsers)`` function that registers its arguments and
sets ``func`` to a ``run_<name>(args) -> int`` function, listed in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

DETECTION_EPILOG = """\
examples:
  # a trained run: its config and final weights, on a validation file
  python tools/evaluate.py detection --config-file runs/lite/config.yaml \\
      --weights runs/lite/model_final.pth --dataset /data/coco/celebamask_hq_val.json --output runs/lite/eval_celeb

  # box-only ground truth (WIDER): segm metrics are skipped with a note
  python tools/evaluate.py detection --config-file runs/lite/config.yaml --weights runs/lite/model_final.pth \\
      --dataset /data/coco/wider_val_val.json --output runs/lite/eval_wider MODEL.MIN_SIZE 640

Writes into --output: metrics.json (all numbers + notes), coco_instances_results.json (COCO results,
RLE masks), config.yaml (the merged config used). AP uses every detection with score >= 0.05;
recall and mask IoU use the operating threshold MODEL.SCORE_THRESH.
"""


def add_detection_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "detection",
        help="COCO bbox/segm AP, recall and mask IoU of the face detector",
        description="Run a detector checkpoint on a COCO face file and report COCO bbox and segm AP "
        "(AP, AP50, AP75, APs/APm/APl), recall at IoU 0.5 by face size, and mean mask IoU of matched faces.",
        epilog=DETECTION_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config-file", required=True, metavar="FILE", help="detector config, e.g. the config.yaml saved in a training run")
    p.add_argument("--weights", default=None, metavar="PTH", help="checkpoint (default: MODEL.WEIGHTS, else OUTPUT_DIR/model_final.pth)")
    p.add_argument(
        "--dataset",
        action="append",
        default=None,
        metavar="NAME_OR_JSON",
        help="COCO face JSON or registered dataset name; repeat for several (default: DATASETS.TEST)",
    )
    p.add_argument("--output", default=None, metavar="DIR", help="where results go (default: OUTPUT_DIR/eval); one subfolder per dataset when several")
    p.add_argument("--device", default=None, metavar="DEV", help="cpu | cuda | cuda:N (default: MODEL.DEVICE)")
    p.add_argument("--max-images", type=int, default=0, metavar="N", help="evaluate only the first N images (quick checks; 0 = all)")
    p.add_argument("--num-workers", type=int, default=None, metavar="N", help="image-loading workers (default: DATALOADER.NUM_WORKERS)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. MODEL.MIN_SIZE 640")
    p.set_defaults(func=run_detection)


def run_detection(args) -> int:
    import logging

    from maskface.config import get_cfg, setup_cfg
    from maskface.engine.trainer import load_detector
    from maskface.engine.utils import resolve_device, save_config, setup_logging
    from maskface.evaluation.coco_evaluation import evaluate_model_on_dataset, format_metrics_table

    try:
        cfg = setup_cfg(get_cfg(), args.config_file, args.opts)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        print(f"evaluate.py detection: config error: {e}", file=sys.stderr)
        return 2
    weights = args.weights or cfg.MODEL.WEIGHTS or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    datasets = args.dataset or list(cfg.DATASETS.TEST)
    if not datasets:
        print("evaluate.py detection: no dataset: give --dataset or set DATASETS.TEST", file=sys.stderr)
        return 2
    output = args.output or os.path.join(cfg.OUTPUT_DIR, "eval")
    setup_logging(output)
    log = logging.getLogger("maskface.tools.evaluate")
    try:
        device = resolve_device(args.device or cfg.MODEL.DEVICE)
        model = load_detector(cfg, weights, device)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"evaluate.py detection: {e}", file=sys.stderr)
        return 1
    save_config(cfg, output)
    for name in datasets:
        out_dir = output if len(datasets) == 1 else os.path.join(output, Path(name).stem)
        try:
            metrics = evaluate_model_on_dataset(
                model, name, cfg, output_dir=out_dir, device=device, max_images=args.max_images, num_workers=args.num_workers
            )
        except (FileNotFoundError, KeyError, ValueError, OSError) as e:
            print(f"evaluate.py detection: {name}: {e}", file=sys.stderr)
            return 1
        log.info("Results in %s", out_dir)
        print(f"== {name}  ({int(metrics['num_images'])} images, weights {weights})")
        print(format_metrics_table(metrics))
    return 0


SUBCOMMANDS: List[Callable] = [add_detection_parser]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Evaluate MaskFace models; see 'evaluate.py COMMAND --help' for each command.",
        epilog="example:\n  python tools/evaluate.py detection --config-file runs/lite/config.yaml "
        "--weights runs/lite/model_final.pth --dataset val.json --output runs/lite/eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
