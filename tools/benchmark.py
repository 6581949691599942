#!/usr/bin/env python
"""Benchmark MaskFace models. One subcommand per stage:

  detector    inference ms/image (batch 1 and 8) and training images/s of the face Mask R-CNN

Adding a stage (attribute net, end-to-end) = one ``add_<name>_parser`` + ``run_<name>`` pair
listed in ``SUBCOMMANDS``; the measurements themselves live in ``maskface.engine.benchmark``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

DETECTOR_EPILOG = """\
examples:
  # the CPU recipe at the default 640x480 input, batch 1 and 8, 10 faces per image
  python tools/benchmark.py detector --config-file configs/maskface_R18_FPN_lite.yaml

  # GPU only, trained weights, JSON for the record
  python tools/benchmark.py detector --config-file configs/maskface_R50_FPN.yaml --device cuda \\
      --weights runs/r50/model_final.pth --json bench_r50.json

  # a quick look at the effect of a smaller inference size
  python tools/benchmark.py detector --config-file configs/maskface_R18_FPN_lite.yaml --skip-train MODEL.MIN_SIZE 320

Workload: synthetic face-like images of --input-size (W x H); the model is made to return exactly
--faces detections per image (mask-head cost grows with faces). The model resizes inputs to
MODEL.MIN_SIZE / MODEL.MAX_SIZE internally, as in real use. Training: full SGD steps on
synthetic images at the middle INPUT.MIN_SIZE_TRAIN (4:3), SOLVER.IMS_PER_BATCH images unless
--train-batch. CPU memory: peak RSS of the process so far; GPU: max_memory_allocated per phase.
"""


def add_detector_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "detector",
        help="inference ms/image and training images/s of the face detector",
        description="Time the face Mask R-CNN of a config: inference at batch sizes 1 and 8 and training steps.",
        epilog=DETECTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config-file", required=True, metavar="FILE", help="detector config, e.g. configs/maskface_R18_FPN_lite.yaml")
    p.add_argument("--weights", default="", metavar="PTH", help="checkpoint to load (default: random init; speed does not depend on it)")
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"], help="where to run; 'all' = CPU, then CUDA when available (default all)")
    p.add_argument("--input-size", default="640x480", metavar="WxH", help="inference input image size (default 640x480)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], metavar="B", help="inference batch sizes (default 1 8)")
    p.add_argument("--faces", type=int, default=10, metavar="K", help="detections per image forced during inference (default 10; 0 = model's own)")
    p.add_argument("--iters", type=int, default=10, metavar="N", help="timed inference iterations per batch size (default 10)")
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed warm-up iterations (default 2)")
    p.add_argument("--train-iters", type=int, default=5, metavar="N", help="timed training iterations (default 5)")
    p.add_argument("--train-batch", type=int, default=0, metavar="B", help="training images per step (default SOLVER.IMS_PER_BATCH)")
    p.add_argument("--skip-train", action="store_true", help="inference only")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch CPU threads (default: torch's default)")
    p.add_argument("--json", default="", metavar="FILE", help="also write the results as JSON to FILE ('-' = stdout)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. MODEL.MIN_SIZE 320")
    p.set_defaults(func=run_detector)


def _table(rows: List[Dict]) -> str:
    cols = [
        ("device", "device", "{}"),
        ("phase", "phase", "{}"),
        ("input", "input", "{}"),
        ("batch", "batch", "{}"),
        ("faces", "faces_per_image", "{:.0f}"),
        ("ms/img", "ms_per_image", "{:.1f}"),
        ("median", "ms_per_image_median", "{:.1f}"),
        ("cpu ms/img", "cpu_ms_per_image", "{:.1f}"),
        ("img/s", "images_per_s", "{:.2f}"),
        ("RSS MiB", "peak_rss_mb", "{:.0f}"),
        ("GPU MiB", "peak_gpu_mb", "{:.0f}"),
    ]
    cells = [[h for h, _, _ in cols]]
    for r in rows:
        cells.append([fmt.format(r[k]) if k in r and r[k] is not None else "-" for _, k, fmt in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def run_detector(args) -> int:
    import torch

    from maskface.config import get_cfg, setup_cfg
    from maskface.engine.benchmark import benchmark_inference, benchmark_training
    from maskface.engine.trainer import load_detector

    try:
        cfg = setup_cfg(get_cfg(), args.config_file, args.opts)
        width, height = (int(v) for v in args.input_size.lower().split("x"))
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        print(f"benchmark.py detector: bad config or --input-size: {e}", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu", "cuda"]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            print("benchmark.py detector: CUDA is not available on this machine", file=sys.stderr)
            return 1
        devices.remove("cuda")
    torch.manual_seed(0)
    rows: List[Dict] = []
    for dev_name in devices:
        device = torch.device(dev_name)
        try:
            model = load_detector(cfg, args.weights, device)
        except (FileNotFoundError, RuntimeError) as e:
            print(f"benchmark.py detector: {e}", file=sys.stderr)
            return 1
        for b in sorted(args.batch_sizes):
            r = benchmark_inference(model, device, batch=b, width=width, height=height, faces=args.faces, iters=args.iters, warmup=args.warmup)
            rows.append({"device": dev_name, "phase": "inference", **r})
        del model
        if not args.skip_train:
            r = benchmark_training(cfg, device, batch=args.train_batch or None, iters=args.train_iters, warmup=1)
            rows.append({"device": dev_name, "phase": "train", **r})
    info = {
        "config": args.config_file,
        "backbone": cfg.MODEL.BACKBONE,
        "model_input": f"shorter side {cfg.MODEL.MIN_SIZE}, longer <= {cfg.MODEL.MAX_SIZE}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else None,
    }
    print(
        f"{info['config']}: {info['backbone']}, model input {info['model_input']}, "
        f"torch {info['torch']}, {info['threads']} CPU threads" + (f", {info['gpu']}" if info["gpu"] else "")
    )
    print(_table(rows))
    if args.json:
        text = json.dumps({"info": info, "results": rows}, indent=2)
        if args.json == "-":
            print(text)
        else:
            from maskface.utils.io import atomic_write

            with atomic_write(args.json) as f:
                f.write(text + "\n")
    return 0


SUBCOMMANDS: List[Callable] = [add_detector_parser]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py",
        description="Benchmark MaskFace models; see 'benchmark.py COMMAND --help' for each command.",
        epilog="example:\n  python tools/benchmark.py detector --config-file configs/maskface_R18_FPN_lite.yaml --json bench.json",
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
