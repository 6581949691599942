#!/usr/bin/env python
"""Benchmark MaskFace models. One subcommand per stage:

  detector    inference ms/image (batch 1 and 8) and training images/s of the face Mask R-CNN
  stages      where one detector call's time goes (backbone, RPN, RoIAlign, heads, NMS, pasting), YuNet beside it
  pipeline    end-to-end FacePredictor images/s (batch 1 and 8) with its per-stage split
  attributes  attribute stage (masked crops + net + decode) faces/s (batch 1 and 32), per-trunk cost
  video       frames/s of the video loop (decode, batched prediction, tracking) on a synthetic clip
  anonymize   ms per image of face anonymisation (blur / pixelate / fill x mask / box / ellipse)
  live        the web page's camera mode end to end in headless Chromium: fps, latency, memory
  stream      tools/infer.py on a live MJPEG stream: frames/s, real-time skipping, a drop and reconnect

Adding a stage = one ``add_<name>_parser`` + ``run_<name>`` pair listed in ``SUBCOMMANDS``; the
measurements themselves live in ``maskface.engine.benchmark``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

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


DETECTOR_COLUMNS = [
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


def _table(rows: List[Dict], cols: Optional[List[Tuple[str, str, str]]] = None) -> str:
    """Right-aligned text table; ``cols`` = (header, key, format); a missing value prints '-'."""
    cols = cols or DETECTOR_COLUMNS
    cells = [[h for h, _, _ in cols]]
    for r in rows:
        cells.append([fmt.format(r[k]) if k in r and r[k] is not None else "-" for _, k, fmt in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def _write_json(path: str, obj: Dict) -> None:
    """``--json``: FILE written atomically, or '-' = stdout."""
    if path == "-":
        print(json.dumps(obj, indent=2))
    else:
        from maskface.utils.io import save_json

        save_json(obj, path, indent=2)


def _env_info(device: Optional[str] = None, runtime: str = "torch") -> Dict:
    import os

    import torch

    cuda = device is not None and str(device).startswith("cuda")
    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,  # other jobs on the CPU
        "gpu": torch.cuda.get_device_name(torch.device(device)) if cuda else None,
    }
    if runtime == "onnxruntime":
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    return info


def _env_line(info: Dict) -> str:
    line = f"torch {info['torch']}, {info['threads']} CPU threads"
    if info.get("onnxruntime"):
        line += f", onnxruntime {info['onnxruntime']}"
    if info.get("load_average_1min") is not None:
        line += f", 1-min load average {info['load_average_1min']:.1f} on {info['cpu_count']} CPUs (this run included)"
    return line + (f", {info['gpu']}" if info.get("gpu") else "")


def run_detector(args) -> int:
    import torch

    from maskface.config import get_cfg, setup_cfg
    from maskface.engine.benchmark import benchmark_inference, benchmark_training
    from maskface.modeling.face_rcnn import load_detector

    size = _input_size(args, "detector")
    if size is None:
        return 2
    width, height = size
    try:
        cfg = setup_cfg(get_cfg(), args.config_file, args.opts)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        print(f"benchmark.py detector: bad config: {e}", file=sys.stderr)
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
            model = load_detector(cfg, args.weights, device, fast=True)
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
        _write_json(args.json, {"info": info, "results": rows})
    return 0




# --- shared by pipeline / attributes / video ------------------------------------------------------

THREADS_NOTE = """
On a machine shared with other jobs, compare runs at the same --threads and prefer --threads 1
when the cores are busy: with more torch threads than free cores, OpenMP threads wait on each
other and small ops (the attribute net, batch 1) can become 100x slower, CPU time included.
"""

def _add_model_args(p, detector: bool = True) -> None:
    g = p.add_argument_group("model (default: the model zoo's maskface-lite)")
    g.add_argument("--model", default=None, metavar="NAME", help="model-zoo name (default maskface-lite)")
    if detector:
        g.add_argument("--detector-config", metavar="YAML", help="detector config (overrides the zoo entry's)")
        g.add_argument("--detector-weights", metavar="PTH", help="detector checkpoint (overrides the zoo entry's)")
    g.add_argument("--attribute-config", metavar="YAML", help="attribute-net config (overrides the zoo entry's)")
    g.add_argument("--attribute-weights", metavar="PTH",
                   help="attribute-net checkpoint" + ("" if detector else
                                                      " (alone: its stored config; with --attribute-config only: random init)"))
    if detector:
        g.add_argument("--no-attributes", action="store_true", help="detection + masks only")
        g.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                       help="PyTorch (default) or ONNX Runtime (exported into the cache on first use, or --onnx-dir), "
                            "e.g. --runtime onnxruntime")
        g.add_argument("--onnx-dir", metavar="DIR", help="with --runtime onnxruntime: a tools/export.py folder")
    g.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                   help=("detector" if detector else "attribute-net") + " config overrides, e.g. "
                   + ("MODEL.MIN_SIZE 320" if detector else "MODEL.CROP_SIZE 48"))


def _add_run_args(p, iters: int, warmup: int, iters_help: str) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                   help="where to run; auto = CUDA when available, else CPU (default auto)")
    g.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads of torch and of ONNX Runtime (--runtime onnxruntime); default: each one's default")
    _add_timing_args(g, iters, warmup, iters_help)


def _add_timing_args(g, iters: int, warmup: int, iters_help: str) -> None:
    """``--iters``, ``--warmup``, ``--json``."""
    g.add_argument("--iters", type=int, default=iters, metavar="N", help=f"{iters_help} (default {iters})")
    g.add_argument("--warmup", type=int, default=warmup, metavar="N", help=f"untimed warm-up calls (default {warmup})")
    g.add_argument("--json", default="", metavar="FILE", help="also write the results as JSON to FILE ('-' = stdout)")


def _add_image_args(p) -> None:
    p.add_argument("--image", default=None, metavar="PATH", help="input photo (default samples/faces.jpg)")
    p.add_argument("--input-size", default="640x480", metavar="WxH", help="the photo is resized to this (default 640x480)")


def _prepare(args, prog: str, sizes: List[int]) -> int:
    """Checks the run arguments and applies --threads; returns 0 or an exit code."""
    import torch

    if args.iters < 1 or args.warmup < 0 or any(b < 1 for b in sizes) or args.threads < 0:
        print(f"benchmark.py {prog}: --iters and batch sizes must be >= 1, --warmup and --threads >= 0", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"benchmark.py {prog}: CUDA is not available on this machine", file=sys.stderr)
        return 1
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return 0


def _input_size(args, prog: str) -> Optional[Tuple[int, int]]:
    """(width, height) of --input-size, or None after printing why it is invalid."""
    from maskface.engine.benchmark import parse_size

    try:
        return parse_size(args.input_size)
    except ValueError as e:
        print(f"benchmark.py {prog}: --input-size: {e}", file=sys.stderr)
        return None


def _load_image(args, prog: str, size: Optional[Tuple[int, int]]):
    """(rgb, description) of --image at ``size`` (None = its own size), or None after an error."""
    from maskface.engine.benchmark import benchmark_image
    from maskface.inference.image_io import ImageLoadError

    try:
        return benchmark_image(args.image, *(size or (None, None)))
    except (ImageLoadError, OSError) as e:
        print(f"benchmark.py {prog}: {e}", file=sys.stderr)
        return None


def _load_predictor(args, prog: str):
    from maskface.inference.cli import predictor_from_args

    try:
        return predictor_from_args(args, device=args.device)
    except Exception as e:  # noqa: BLE001 - every load failure is reported the same way
        print(f"benchmark.py {prog}: cannot load the model: {e}", file=sys.stderr)
        return None


def _predictor_info(predictor) -> Dict:
    cfg = predictor.cfg
    mi = predictor.model_info
    return {
        "model": mi["name"],
        "detector_config": mi["detector_config"],
        "detector_weights": mi["detector_weights"],
        "attribute_config": mi["attribute_config"],
        "attribute_weights": mi["attribute_weights"],
        "backbone": cfg.MODEL.BACKBONE,
        "model_input": f"shorter side {cfg.MODEL.MIN_SIZE}, longer <= {cfg.MODEL.MAX_SIZE}",
        "max_size": predictor.max_size,
        "score_thresh": predictor.score_thresh,
        "device": str(predictor.device),
        "runtime": predictor.runtime,
        "onnx_dir": predictor.onnx_dir,
    }


def _predictor_line(info: Dict) -> str:
    name = info["model"] or info["detector_config"] or "detector"
    attrs = f"attributes {info['attribute_config'] or info['attribute_weights']}" if info["attribute_weights"] else "no attributes"
    return (f"{name}: {info['backbone']}, model input {info['model_input']}, score >= {info['score_thresh']:g}, "
            f"{attrs}, on {info['device']} with {info['runtime']}")


STAGE_COLUMNS = [
    ("pre", "preprocess_ms_per_{u}", "{:.1f}"),
    ("det", "detector_ms_per_{u}", "{:.1f}"),
    ("attr", "attributes_ms_per_{u}", "{:.1f}"),
    ("post", "postprocess_ms_per_{u}", "{:.1f}"),
]
MEMORY_COLUMNS = [("RSS MiB", "peak_rss_mb", "{:.0f}"), ("GPU MiB", "peak_gpu_mb", "{:.0f}")]


# --- pipeline -------------------------------------------------------------------------------------

PIPELINE_EPILOG = """\
examples:
  # maskface-lite on CPU, samples/faces.jpg at 640x480, batch 1 and 8
  python tools/benchmark.py pipeline --device cpu --threads 2 --json bench_pipeline.json

  # another input size, more iterations, on the GPU
  python tools/benchmark.py pipeline --device cuda --input-size 1280x720 --iters 50

  # ONNX Runtime (the model exported into the cache on first use); --no-attributes: the det column
  # is the detector alone
  python tools/benchmark.py pipeline --device cpu --threads 2 --runtime onnxruntime --batch-sizes 1
  python tools/benchmark.py pipeline --device cpu --threads 2 --runtime onnxruntime --no-attributes

  # your own photo and checkpoints (files override the zoo entry's)
  python tools/benchmark.py pipeline --image group.jpg --detector-config configs/maskface_R18_FPN_lite.yaml \\
      --detector-weights runs/r18/model_final.pth --attribute-config configs/attributes/attr_resnet.yaml \\
      --attribute-weights runs/attr/model_best.pth

Workload: --image (default samples/faces.jpg, 4 faces) decoded once and resized to --input-size
(aspect ratio not kept; the printout says so); each call is FacePredictor.predict_batch on
--batch-size copies of that RGB array, so preprocess = checks + shrink to max_size + to tensor (no
JPEG decoding). Detections are the model's own (its score threshold): the 'faces' columns give how
many faces per image the numbers are for. Stage columns (ms per image): pre(process), det(ector),
attr(ibutes: crops + net + decode), post(process: boxes/masks back to original pixels + records),
from FacePredictor.timings. img/s = images / wall time of the timed calls.
"""


def add_pipeline_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pipeline",
        help="end-to-end FacePredictor images/s with the per-stage split",
        description="Time FacePredictor (detector + masks + attributes) on a photo at batch sizes 1 and 8.",
        epilog=PIPELINE_EPILOG + THREADS_NOTE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_image_args(p)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], metavar="B", help="images per call (default 1 8)")
    _add_model_args(p)
    _add_run_args(p, iters=10, warmup=2, iters_help="timed calls per batch size")
    p.set_defaults(func=run_pipeline)


def run_pipeline(args) -> int:
    from maskface.engine.benchmark import benchmark_pipeline

    prog = "pipeline"
    size = _input_size(args, prog)
    if size is None:
        return 2
    rc = _prepare(args, prog, args.batch_sizes)
    if rc:
        return rc
    loaded = _load_image(args, prog, size)
    predictor = _load_predictor(args, prog) if loaded else None
    if predictor is None:
        return 1
    image, image_desc = loaded
    rows = [benchmark_pipeline(predictor, image, batch=b, iters=args.iters, warmup=args.warmup)
            for b in sorted(args.batch_sizes)]
    info = {**_predictor_info(predictor), "image": image_desc, **_env_info(str(predictor.device), predictor.runtime)}
    print(_predictor_line(info))
    print(f"image: {image_desc}; {_env_line(info)}; stage columns: ms per image")
    cols = [("input", "input", "{}"), ("batch", "batch", "{}"), ("faces", "faces_per_image", "{:.1f}"),
            ("max", "faces_max", "{}"), ("ms/img", "ms_per_image", "{:.1f}"), ("median", "ms_per_image_median", "{:.1f}"),
            ("cpu ms/img", "cpu_ms_per_image", "{:.1f}"), ("img/s", "images_per_s", "{:.2f}")]
    cols += [(h, k.format(u="image"), f) for h, k, f in STAGE_COLUMNS] + MEMORY_COLUMNS
    print(_table(rows, cols))
    if args.json:
        _write_json(args.json, {"info": info, "results": rows})
    return 0


# --- attributes -----------------------------------------------------------------------------------

ATTRIBUTES_EPILOG = """\
examples:
  # maskface-lite's attribute net on CPU, batch 1 and 32, plus every trunk's params and ms/face
  python tools/benchmark.py attributes --device cpu --threads 2 --json bench_attributes.json

  # a trained checkpoint (config stored inside), GPU, no per-trunk table
  python tools/benchmark.py attributes --attribute-weights output/attributes/model_best.pth --device cuda --no-trunks

  # a config at another crop size, random init (speed does not depend on the weights)
  python tools/benchmark.py attributes --attribute-config configs/attributes/attr_resnet.yaml --opts MODEL.CROP_SIZE 48

Workload: B synthetic faces (random boxes of 1/8 to 1/3 of the shorter side, 4:5, inscribed-ellipse
masks) on --image resized to --input-size; each call = extract_face_crops of the B faces (the net's
crop size, margin, dilate, feather) + one attribute-net forward + decode, as FacePredictor runs
the stage. Columns crop / fwd / decode: ms per face. The per-trunk table
(maskface.evaluation.attribute_metrics.benchmark_attribute_net) is the net forward alone on
random crops, for each trunk at random init with the other settings of the loaded config;
median of --iters calls.
"""


def add_attributes_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "attributes",
        help="attribute stage faces/s (crops + net + decode) and per-trunk params / ms per face",
        description="Time the attribute stage on synthetic faces at batch sizes 1 and 32, and each trunk's forward.",
        epilog=ATTRIBUTES_EPILOG + THREADS_NOTE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--image", default=None, metavar="PATH", help="photo the faces are cut from (default samples/faces.jpg)")
    p.add_argument("--input-size", default="640x480", metavar="WxH", help="the photo is resized to this (default 640x480)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32], metavar="B", help="faces per call (default 1 32)")
    p.add_argument("--trunks", nargs="+", default=None, metavar="NAME", help="trunks of the per-trunk table (default all)")
    p.add_argument("--no-trunks", action="store_true", help="skip the per-trunk table")
    _add_model_args(p, detector=False)
    _add_run_args(p, iters=10, warmup=2, iters_help="timed calls per batch size")
    p.set_defaults(func=run_attributes)


def run_attributes(args) -> int:
    from maskface.engine.benchmark import benchmark_attribute_stage, load_attribute_stage
    from maskface.evaluation.attribute_metrics import benchmark_attribute_net
    from maskface.modeling.attributes.ensemble import member_configs
    from maskface.modeling.attributes.trunks import TRUNKS
    from maskface.utils.device import resolve_device

    prog = "attributes"
    size = _input_size(args, prog)
    if size is None:
        return 2
    unknown = sorted(set(args.trunks or []) - set(TRUNKS))
    if unknown:
        print(f"benchmark.py {prog}: unknown trunk(s) {unknown}; expected some of {list(TRUNKS)}", file=sys.stderr)
        return 2
    rc = _prepare(args, prog, args.batch_sizes)
    if rc:
        return rc
    device = resolve_device(args.device)
    loaded = _load_image(args, prog, size)
    if loaded is None:
        return 1
    image, image_desc = loaded
    try:
        net, cfg, what = load_attribute_stage(args.model, args.attribute_config, args.attribute_weights, device, args.opts)
    except Exception as e:  # noqa: BLE001
        print(f"benchmark.py {prog}: cannot load the attribute net: {e}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in net.parameters())
    rows = [benchmark_attribute_stage(net, image, device, batch=b, iters=args.iters, warmup=args.warmup)
            for b in sorted(args.batch_sizes)]
    trunk_rows = [] if args.no_trunks else benchmark_attribute_net(
        cfg, trunks=args.trunks, batch_sizes=sorted(args.batch_sizes), device=device, warmup=args.warmup, iters=args.iters)
    m = cfg.MODEL
    members = member_configs(cfg)  # [] for a single net
    arch = f"trunk {m.TRUNK}, width {m.WIDTH}"
    if members:
        arch = f"ensemble of {len(members)} nets (" + ", ".join(
            f"{c.MODEL.TRUNK} width {c.MODEL.WIDTH} at {c.MODEL.CROP_SIZE} px" for c in members) + ")"
    info = {
        "attribute_net": what,
        "trunk": "ensemble" if members else m.TRUNK,
        "width": m.WIDTH,
        "members": [{"trunk": c.MODEL.TRUNK, "width": c.MODEL.WIDTH, "crop_size": c.MODEL.CROP_SIZE} for c in members],
        "params": params,
        "crop": dict(net.crop_kwargs),
        "flip_test": bool(getattr(net, "flip_test", False)),  # each face also read mirrored: 2x net work
        "image": image_desc,
        "faces": "synthetic boxes (1/8 to 1/3 of the shorter side, 4:5) with inscribed-ellipse masks",
        "device": str(device),
        **_env_info(str(device)),
    }
    print(f"{what}: {arch}, {params / 1e6:.2f} M params, "
          f"{net.crop_kwargs['size']} px crops{', flip test' if info['flip_test'] else ''}, on {device}")
    print(f"faces on: {image_desc}; {_env_line(info)}; crop/fwd/decode: ms per face")
    cols = [("batch", "batch", "{}"), ("ms/face", "ms_per_face", "{:.2f}"), ("median", "ms_per_face_median", "{:.2f}"),
            ("cpu ms/face", "cpu_ms_per_face", "{:.2f}"), ("faces/s", "faces_per_s", "{:.1f}"),
            ("crop", "crop_ms_per_face", "{:.2f}"), ("fwd", "forward_ms_per_face", "{:.2f}"),
            ("decode", "decode_ms_per_face", "{:.2f}")] + MEMORY_COLUMNS
    print(_table(rows, cols))
    if trunk_rows:
        print(f"\nper trunk (net forward only, random crops, random init, {m.CROP_SIZE} px, width {m.WIDTH}):")
        for r in trunk_rows:
            r["params_m"] = r["params"] / 1e6
        print(_table(trunk_rows, [("trunk", "trunk", "{}"), ("M params", "params_m", "{:.2f}"), ("batch", "batch", "{}"),
                                  ("ms/batch", "ms_per_batch", "{:.2f}"), ("ms/face", "ms_per_face", "{:.2f}")]))
    if args.json:
        _write_json(args.json, {"info": info, "results": rows, "trunks": trunk_rows})
    return 0


# --- video ----------------------------------------------------------------------------------------

VIDEO_EPILOG = """\
examples:
  # maskface-lite on CPU: a 60-frame 640x480 synthetic clip, batches of 8 frames
  python tools/benchmark.py video --device cpu --threads 2 --json bench_video.json

  # a real clip, without tracking, 4 frames per batch
  python tools/benchmark.py video --video clip.mp4 --batch-size 4 --no-track

Workload: a clip of --frames frames of --input-size at --fps, written (mp4v) to a temporary folder,
that pans across --image (default samples/faces.jpg) while zooming 1x -> 1.3x -> 1x, so faces move
and change size; or --video. Each pass = maskface.inference.video.process_video over the whole
clip (video decoding, FacePredictor.predict_batch on --batch-size frames, tracking and attribute
smoothing unless --no-track). fps = frames / wall time of the timed passes. Stage columns (ms
per frame) from FacePredictor.timings; other = decoding + tracking + smoothing.
"""


def add_video_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "video",
        help="frames/s of the video loop on a synthetic (or given) clip",
        description="Time maskface.inference.video.process_video on a short clip, with the per-stage split.",
        epilog=VIDEO_EPILOG + THREADS_NOTE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--video", default=None, metavar="PATH", help="benchmark this clip instead of a synthetic one")
    p.add_argument("--image", default=None, metavar="PATH", help="photo the synthetic clip pans over (default samples/faces.jpg)")
    p.add_argument("--input-size", default="640x480", metavar="WxH", help="synthetic clip frame size (default 640x480)")
    p.add_argument("--frames", type=int, default=60, metavar="N", help="synthetic clip length (default 60)")
    p.add_argument("--fps", type=float, default=30.0, help="synthetic clip frame rate (default 30)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="frames per predictor call (default 8)")
    p.add_argument("--no-track", action="store_true", help="no tracking / attribute smoothing")
    _add_model_args(p)
    _add_run_args(p, iters=1, warmup=1, iters_help="timed passes over the clip")
    p.set_defaults(func=run_video)


def run_video(args) -> int:
    import tempfile

    from maskface.engine.benchmark import benchmark_video, write_synthetic_video
    from maskface.inference.video import VideoOpenError

    prog = "video"
    size = _input_size(args, prog)
    if size is None:
        return 2
    width, height = size
    if args.frames < 1 or args.fps <= 0:
        print(f"benchmark.py {prog}: --frames must be >= 1 and --fps > 0", file=sys.stderr)
        return 2
    rc = _prepare(args, prog, [args.batch_size])
    if rc:
        return rc
    loaded = None
    if args.video is None:
        loaded = _load_image(args, prog, None)
        if loaded is None:
            return 1
    predictor = _load_predictor(args, prog)
    if predictor is None:
        return 1
    with tempfile.TemporaryDirectory(prefix="maskface_bench_") as tmp:
        try:
            if args.video is None:
                image, image_desc = loaded
                path = write_synthetic_video(str(Path(tmp) / "synthetic.mp4"), image, width, height, args.frames, args.fps)
                clip = (f"synthetic clip, {args.frames} frames {width}x{height} at {args.fps:g} fps, panning and "
                        f"zooming (1x-1.3x) over {image_desc}")
            else:
                path, clip = args.video, args.video
            row = benchmark_video(predictor, path, batch_size=args.batch_size, iters=args.iters, warmup=args.warmup,
                                  track=not args.no_track)
        except VideoOpenError as e:
            print(f"benchmark.py {prog}: {e}", file=sys.stderr)
            return 1
    info = {**_predictor_info(predictor), "video": clip, **_env_info(str(predictor.device), predictor.runtime)}
    print(_predictor_line(info))
    print(f"video: {clip}; {_env_line(info)}; stage columns: ms per frame")
    cols = [("input", "input", "{}"), ("frames", "frames", "{}"), ("batch", "batch_size", "{}"),
            ("faces/frame", "faces_per_frame", "{:.1f}"), ("fps", "frames_per_s", "{:.2f}"),
            ("ms/frame", "ms_per_frame", "{:.1f}"), ("cpu ms/frame", "cpu_ms_per_frame", "{:.1f}")]
    cols += [(h, k.format(u="frame"), f) for h, k, f in STAGE_COLUMNS] + [("other", "other_ms_per_frame", "{:.1f}")]
    print(_table([row], cols + MEMORY_COLUMNS))
    if args.json:
        _write_json(args.json, {"info": info, "results": [row]})
    return 0

# --- anonymize ------------------------------------------------------------------------------------

ANONYMIZE_EPILOG = """\
examples:
  # the default: samples/faces.jpg at 640x480 with 4 synthetic faces, every method x region, 1 thread
  python tools/benchmark.py anonymize --json bench_anonymize.json
  # more faces, bigger image, a fixed margin
  python tools/benchmark.py anonymize --input-size 1920x1080 --faces 12 --margin 8

Workload: --image (default samples/faces.jpg) resized to --input-size, with --faces synthetic faces
(boxes of 1/8 to 1/3 of the shorter side, 4:5, inscribed-ellipse masks, fixed seed), so no model
is loaded: the figure is the anonymisation alone (image copy, regions, dilation, feathering,
effect, blend), which tools/infer.py --anonymize adds per image on top of the prediction. OpenCV
runs with --threads threads (default 1: the tools run it next to the model).
"""


def add_anonymize_parser(subparsers) -> None:
    from maskface.inference.anonymize import METHODS, REGIONS

    p = subparsers.add_parser(
        "anonymize",
        help="ms per image of face anonymisation (blur / pixelate / fill x mask / box / ellipse)",
        description="Time maskface.inference.anonymize.Anonymizer on a photo with synthetic faces.",
        epilog=ANONYMIZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_image_args(p)
    p.add_argument("--faces", type=int, default=4, metavar="K", help="synthetic faces per image (default 4)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods to time (default all)")
    p.add_argument("--regions", nargs="+", choices=REGIONS, default=list(REGIONS), help="regions to time (default all)")
    p.add_argument("--margin", default="auto", metavar="PX|N%",
                   help="dilation margin, px or %% of the face size (default auto: 3%%), e.g. --margin 8")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="OpenCV threads (default 1; 0 = OpenCV's default)")
    _add_timing_args(p, iters=50, warmup=3, iters_help="timed calls per setting")
    p.set_defaults(func=run_anonymize)


def run_anonymize(args) -> int:
    import cv2
    import numpy as np

    from maskface.engine.benchmark import benchmark_anonymize, synthetic_face_regions
    from maskface.inference.anonymize import Anonymizer, parse_margin
    from maskface.inference.results import Face

    prog = "anonymize"
    size = _input_size(args, prog)
    if size is None:
        return 2
    if args.iters < 1 or args.warmup < 0 or args.faces < 0 or args.threads < 0:
        print(f"benchmark.py {prog}: --iters must be >= 1, --warmup, --faces and --threads >= 0", file=sys.stderr)
        return 2
    loaded = _load_image(args, prog, size)
    if loaded is None:
        return 1
    rgb, image_desc = loaded
    if args.threads:
        cv2.setNumThreads(args.threads)
    width, height = size
    boxes, masks = synthetic_face_regions(height, width, args.faces)
    faces = [Face(box=b.tolist(), score=1.0, mask=m.numpy()) for b, m in zip(boxes, masks)]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    try:
        margin, frac = parse_margin(args.margin)
        rows = [benchmark_anonymize(Anonymizer(method=m, region=r, margin=margin, margin_frac=frac), bgr, faces,
                                    iters=args.iters, warmup=args.warmup)
                for m in args.methods for r in args.regions]
    except ValueError as e:
        print(f"benchmark.py {prog}: {e}", file=sys.stderr)
        return 2
    info = {"image": image_desc, "faces": args.faces, "margin": args.margin, "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(), "cpu": platform.processor() or platform.machine()}
    sizes = [round(float(np.sqrt((b[2] - b[0]) * (b[3] - b[1])))) for b in boxes]
    print(f"anonymize: {image_desc}, {args.faces} synthetic faces (sizes {sizes} px), margin {args.margin}; "
          f"OpenCV {cv2.__version__}, "
          f"{cv2.getNumThreads()} thread(s)")
    cols = [("method", "method", "{}"), ("region", "region", "{}"), ("input", "input", "{}"), ("faces", "faces", "{}"),
            ("ms/img", "ms_per_image", "{:.2f}"), ("median", "ms_per_image_median", "{:.2f}"),
            ("min", "ms_per_image_min", "{:.2f}"), ("cpu ms/img", "cpu_ms_per_image", "{:.2f}")]
    print(_table(rows, cols))
    if args.json:
        _write_json(args.json, {"info": info, "results": rows})
    return 0


STAGES_EPILOG = """\
examples:
  # the shipped detector on the sample at 640x480, YuNet on the same picture in the same run
  python tools/benchmark.py stages --threads 2 --yunet ../shared/weights/yunet_n_dynamic.onnx
  # a 1024x768 group photo read at its own size (the native setting): ms and ms per megapixel
  python tools/benchmark.py stages --detector-config configs/maskface_MV1_SSH_native.yaml \\
      --image group.jpg --input-size 1024x768 --threads 2

Stages (median ms over --iters calls, batch 1): preprocess (resize, uint8 -> float), backbone, rpn
(objectness, anchor decoding, proposal NMS), box / mask RoIAlign, box / mask heads and predictors,
other (normalisation, padding, box decoding and NMS), paste (box-sized masks -> picture masks).
Faces under the score threshold never reach the mask head. PyTorch only: the ONNX graph runs as
one call (benchmark.py pipeline --runtime onnxruntime times it).
"""


def add_stages_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "stages",
        help="where the detector's time goes (backbone, RPN, RoIAlign, heads, NMS, pasting); YuNet beside it",
        description="Time each stage of one detector call on a picture, with the optimisations the predictor "
        "uses (folded norms, channels-last), and optionally YuNet on the same picture.",
        epilog=STAGES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--detector-config", default=None, metavar="YAML",
                   help="detector config (default: the zoo's maskface-lite), e.g. configs/maskface_MV1_SSH_native.yaml")
    p.add_argument("--weights", default=None, metavar="PTH",
                   help="detector checkpoint (default: the zoo model's weights for a zoo config)")
    p.add_argument("--image", default=None, metavar="PATH", help="picture (default samples/faces.jpg)")
    p.add_argument("--input-size", default="640x480", metavar="WxH",
                   help="resize the picture to W x H first, or 'own' to keep its size (default 640x480)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu | cuda (default cpu)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch CPU threads (default: torch's default)")
    p.add_argument("--iters", type=int, default=20, metavar="N", help="timed calls (default 20)")
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed calls first (default 3)")
    p.add_argument("--score-thresh", type=float, default=None, metavar="S", help="operating threshold (default: the config's)")
    p.add_argument("--no-optimize", action="store_true", help="time the model as trained (norms not folded, NCHW)")
    p.add_argument("--yunet", default=None, metavar="ONNX",
                   help="also time YuNet (OpenCV) on the same picture, e.g. ../shared/weights/yunet_n_dynamic.onnx")
    p.add_argument("--json", default="", metavar="FILE", help="also write the results as JSON to FILE ('-' = stdout)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. MODEL.RPN_SCORE_THRESH_TEST 0.3")
    p.set_defaults(func=run_stages)


def run_stages(args) -> int:
    import torch

    from maskface.config import get_cfg, setup_cfg
    from maskface.engine.benchmark import benchmark_image, detector_stage_times, parse_size, peer_times
    from maskface.model_zoo import DEFAULT_MODEL, get_model, model_for_config
    from maskface.modeling.face_rcnn import load_detector

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        config = args.detector_config or get_model(DEFAULT_MODEL).config_path("detector")
        weights = args.weights
        if weights is None:
            name = model_for_config(config)
            if name is None:
                print(f"benchmark.py stages: {config} is no zoo config; give --weights", file=sys.stderr)
                return 2
            weights = get_model(name).weights_path("detector")
        cfg = setup_cfg(get_cfg(), config, list(args.opts))
        size = None if args.input_size == "own" else parse_size(args.input_size)
        rgb, shown = benchmark_image(args.image, *(size or (None, None)))
        model = load_detector(cfg, weights, args.device, fast=not args.no_optimize)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as e:
        print(f"benchmark.py stages: {e}", file=sys.stderr)
        return 1
    thresh = float(cfg.MODEL.SCORE_THRESH if args.score_thresh is None else args.score_thresh)
    r = detector_stage_times(model, rgb, score_thresh=thresh, mask_thresh=float(cfg.MODEL.MASK_THRESH),
                             iters=args.iters, warmup=args.warmup)
    mp = rgb.shape[0] * rgb.shape[1] / 1e6
    print(f"{config}: {shown}, read at {r['input']}, {r['faces']} faces >= {thresh:g}, {r['proposals']} proposals; "
          + _env_line(_env_info(args.device)))
    rows = [{"stage": k, "ms": v, "share": 100 * v / r["total_ms"]} for k, v in r["stages"].items()]
    rows.append({"stage": "total", "ms": r["total_ms"], "share": 100.0})
    result = {"config": config, "weights": str(weights), "image": shown, **r, "ms_per_megapixel": r["total_ms"] / mp,
              "ms_per_megapixel_read": r["total_ms"] / r["megapixels_read"]}
    if args.yunet:
        from maskface.evaluation.peers import build_peer

        try:
            y = peer_times(build_peer("yunet", args.yunet), rgb, iters=args.iters, warmup=args.warmup)
        except (FileNotFoundError, RuntimeError) as e:
            print(f"benchmark.py stages: {e}", file=sys.stderr)
            return 1
        rows.append({"stage": "YuNet (same picture)", "ms": y["total_ms"], "share": None})
        result["yunet"] = {**y, "ms_per_megapixel": y["total_ms"] / mp}
    print(_table(rows, [("stage", "stage", "{}"), ("ms", "ms", "{:.1f}"), ("%", "share", "{:.0f}")]))
    print(f"MaskFace detector: {r['total_ms'] / mp:.0f} ms per megapixel of the picture "
          f"({r['megapixels_read']:.2f} MP read: {result['ms_per_megapixel_read']:.0f} ms per megapixel read)"
          + (f"; YuNet {result['yunet']['ms_per_megapixel']:.0f}" if args.yunet else ""))
    if args.json:
        _write_json(args.json, {"info": _env_info(args.device), "results": result})
    return 0


LIVE_EPILOG = """\
examples:
  # the page's camera mode at 640x480 on 2 CPU threads with ONNX Runtime, 30 s
  python tools/benchmark.py live --runtime onnxruntime --threads 2 --seconds 30
  # PyTorch; the attribute net on every frame instead of every 5th per face
  python tools/benchmark.py live --threads 2 --attributes-every 1
  # memory over 5 minutes
  python tools/benchmark.py live --runtime onnxruntime --threads 2 --seconds 300 --json live_5min.json

The server (waitress + the camera WebSocket) runs in this process; headless Chromium's fake
camera plays a clip of two real faces moving (skimage's astronaut, matplotlib's grace_hopper).
Figures are the page's own: fps = analysed frames drawn per second; latency = frame captured by
the page -> its overlay drawn (median of the page's running median, sampled every second).
Browser and server share the CPUs, as on a laptop running both. Needs chromium + chromedriver +
selenium (sh tools/setup_test_deps.sh).
"""

STREAM_EPILOG = """\
examples:
  # real-time mode (newest frame, drop the rest) on a 30 fps 640x480 stream, ONNX Runtime, 2 threads
  python tools/benchmark.py stream --runtime onnxruntime --threads 2 --realtime
  # every frame, every 2nd / 3rd frame
  python tools/benchmark.py stream --threads 2 --every-n-frames 1 2 3
  # a 10 s outage after 100 frames: reconnected, the run goes on
  python tools/benchmark.py stream --runtime onnxruntime --threads 2 --realtime --outage-after 100 --outage-s 10 --seconds 30

The stream is MJPEG over HTTP on 127.0.0.1 from a thread of this process (two real faces moving),
read by the runner of tools/infer.py (no video written). processed fps = frames analysed per
second; covered fps = source frames per second the results span (with skipping); cpu ms/frame =
CPU time of this process per analysed frame (all threads; meaningful on a shared machine).
"""


def _warm_predictor(args, prog: str, sizes: List[int], size: Tuple[int, int]):
    """--threads applied, the predictor loaded and run once at ``size`` (W, H); or an exit code."""
    rc = _prepare(args, prog, sizes)
    if rc:
        return rc
    predictor = _load_predictor(args, prog)
    if predictor is None:
        return 1
    predictor.warmup(size[::-1])
    return predictor


def _report(args, predictor, workload: str, rows: List[Dict], cols: List[Tuple[str, str, str]]) -> None:
    """The model and machine lines, the table, and --json."""
    info = {**_predictor_info(predictor), **_env_info(str(predictor.device), predictor.runtime)}
    print(_predictor_line(info))
    print(f"{workload}; {_env_line(info)}")
    print(_table(rows, cols))
    if args.json:
        _write_json(args.json, {"info": info, "results": rows})


def add_live_parser(subparsers) -> None:
    from maskface.inference.anonymize import METHODS

    p = subparsers.add_parser(
        "live", help="the web page's camera mode in headless Chromium: fps, latency, memory",
        description="Measure the camera mode of the web app end to end (page figures).",
        epilog=LIVE_EPILOG + THREADS_NOTE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="measured time (default 30)")
    p.add_argument("--warmup-s", type=float, default=5.0, help="unmeasured seconds after the first results (default 5)")
    p.add_argument("--input-size", default="640x480", metavar="WxH", help="camera frame size (default 640x480)")
    p.add_argument("--camera-fps", type=int, default=30, help="fake camera frame rate (default 30)")
    p.add_argument("--attributes-every", type=int, nargs="+", default=[5], metavar="K",
                   help="attribute net every K frames per face; several values = several runs (default 5), "
                        "e.g. --attributes-every 1 5")
    p.add_argument("--anonymize", choices=("",) + METHODS, default="", help="anonymise live (default: no)")
    _add_model_args(p)
    _add_run_args(p, iters=1, warmup=0, iters_help="(unused)")
    p.set_defaults(func=run_live)


def run_live(args) -> int:
    from maskface.engine.benchmark import benchmark_live_page
    from maskface.serving.browser import BrowserUnavailable, find_chromium

    size = _input_size(args, "live")
    if size is None:
        return 2
    if args.seconds <= 0 or args.warmup_s < 0 or min(args.attributes_every) < 1:
        print("benchmark.py live: --seconds must be > 0, --warmup-s >= 0, --attributes-every >= 1", file=sys.stderr)
        return 2
    try:
        find_chromium()
    except BrowserUnavailable as e:
        print(f"benchmark.py live: {e}", file=sys.stderr)
        return 1
    predictor = _warm_predictor(args, "live", [1], size)
    if isinstance(predictor, int):  # an exit code
        return predictor
    rows = [benchmark_live_page(predictor, seconds=args.seconds, warmup_s=args.warmup_s, attributes_every=k,
                                width=size[0], height=size[1], camera_fps=args.camera_fps, anonymize=args.anonymize)
            for k in args.attributes_every]
    _report(args, predictor, f"web page camera mode, headless Chromium fake camera at {args.camera_fps} fps", rows,
            cols=[("input", "input", "{}"), ("attr every", "attributes_every", "{}"), ("anon", "anonymize", "{}"),
                  ("s", "seconds", "{:.0f}"), ("fps", "fps", "{:.1f}"),
                  ("latency ms (median)", "latency_ms_median", "{:.0f}"), ("p90", "latency_ms_p90", "{:.0f}"),
                  ("server cpu ms/frame", "server_cpu_ms_per_frame", "{:.0f}"), ("skipped %", "dropped_pct", "{:.0f}"),
                  ("faces", "faces", "{:.0f}"), ("RSS MiB start", "rss_mb_start", "{:.0f}"), ("half", "rss_mb_half", "{:.0f}"),
                  ("end", "rss_mb_end", "{:.0f}"),
                  ("JS heap MiB start", "js_heap_mb_start", "{:.1f}"), ("end", "js_heap_mb_end", "{:.1f}"),
                  ("max waiting", "max_worker_pending", "{}")])
    return 0


def add_stream_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "stream", help="tools/infer.py on a live MJPEG stream: frames/s, skipping, reconnect",
        description="Measure the stream input of tools/infer.py on a local MJPEG stream.",
        epilog=STREAM_EPILOG + THREADS_NOTE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0, help="run length per setting (default 20)")
    p.add_argument("--input-size", default="640x480", metavar="WxH", help="stream frame size (default 640x480)")
    p.add_argument("--stream-fps", type=float, default=30.0, help="stream frame rate (default 30)")
    p.add_argument("--realtime", action="store_true", help="process the newest frame, drop the rest (infer.py --realtime)")
    p.add_argument("--every-n-frames", type=int, nargs="+", default=[1], metavar="N",
                   help="process every N-th frame; several values = several runs (default 1), e.g. 1 2 3")
    p.add_argument("--attributes-every", type=int, default=1, metavar="K", help="infer.py --attributes-every (default 1)")
    p.add_argument("--batch-size", type=int, default=1, metavar="B", help="frames per call without --realtime (default 1)")
    p.add_argument("--outage-after", type=int, default=None, metavar="N",
                   help="the stream goes away after N frames (default: never), e.g. --outage-after 100")
    p.add_argument("--outage-s", type=float, default=10.0, help="length of that outage, s (default 10)")
    _add_model_args(p)
    _add_run_args(p, iters=1, warmup=0, iters_help="(unused)")
    p.set_defaults(func=run_stream)


def run_stream(args) -> int:
    from maskface.engine.benchmark import benchmark_stream

    size = _input_size(args, "stream")
    if size is None:
        return 2
    if args.seconds <= 0 or args.stream_fps <= 0 or min(args.every_n_frames) < 1 or args.attributes_every < 1:
        print("benchmark.py stream: --seconds and --stream-fps must be > 0, --every-n-frames and --attributes-every "
              ">= 1", file=sys.stderr)
        return 2
    predictor = _warm_predictor(args, "stream", [args.batch_size], size)
    if isinstance(predictor, int):  # an exit code
        return predictor
    rows = [benchmark_stream(predictor, seconds=args.seconds, fps=args.stream_fps, width=size[0], height=size[1],
                             realtime=args.realtime, every_n_frames=n, attributes_every=args.attributes_every,
                             batch_size=args.batch_size, outage_after=args.outage_after, outage_s=args.outage_s)
            for n in args.every_n_frames]
    _report(args, predictor, f"MJPEG stream on 127.0.0.1 at {args.stream_fps:g} fps", rows,
            cols=[("input", "input", "{}"), ("realtime", "realtime", "{}"), ("every n", "every_n_frames", "{}"),
                  ("attr every", "attributes_every", "{}"), ("s", "seconds", "{:.0f}"),
                  ("processed fps", "processed_fps", "{:.1f}"), ("covered fps", "covered_fps", "{:.1f}"),
                  ("cpu ms/frame", "cpu_ms_per_frame", "{:.0f}"), ("faces/frame", "faces_per_frame", "{:.1f}"),
                  ("reconnects", "reconnects", "{}"), ("largest gap (frames)", "largest_gap_frames", "{}")])
    for r in rows:
        for e in r["errors"]:
            print(f"  error: {e}")
    return 0


SUBCOMMANDS: List[Callable] = [add_detector_parser, add_stages_parser, add_pipeline_parser, add_attributes_parser,
                               add_video_parser, add_anonymize_parser, add_live_parser, add_stream_parser]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py",
        description="Benchmark MaskFace models; see 'benchmark.py COMMAND --help' for each command.",
        epilog="examples:\n"
        "  python tools/benchmark.py detector --config-file configs/maskface_R18_FPN_lite.yaml --json bench.json\n"
        "  python tools/benchmark.py stages --threads 2 --yunet ../shared/weights/yunet_n_dynamic.onnx\n"
        "  python tools/benchmark.py pipeline --device cpu --json bench_pipeline.json\n"
        "  python tools/benchmark.py attributes --device cpu --json bench_attributes.json\n"
        "  python tools/benchmark.py video --device cpu --batch-size 8 --json bench_video.json\n"
        "  python tools/benchmark.py anonymize --json bench_anonymize.json",
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
