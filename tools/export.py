#!/usr/bin/env python
"""Export a MaskFace model to ONNX (detector + attribute net + manifest.json) and check it.

Examples:
    # the default zoo model into deploy/maskface-lite, then the parity check on the sample
    python tools/export.py --output deploy/maskface-lite

    # a detector being trained and the shipped attribute net
    python tools/export.py --output deploy/ssh --detector-config configs/maskface_MV1_SSH_lite.yaml \\
        --detector-weights runs/ssh1/run/model_final.pth \\
        --attribute-config configs/attributes/maskface_lite_ensemble.yaml \\
        --attribute-weights maskface/model_zoo/weights/maskface_lite_attributes.pth

    # detector only, no check
    python tools/export.py --output deploy/det --no-attributes --no-check

Then run it with ONNX Runtime:
    python tools/infer.py --runtime onnxruntime --onnx-dir deploy/maskface-lite --input photo.jpg --output out/
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from maskface.inference.cli import add_model_arguments  # noqa: E402

EPILOG = """\
outputs (in --output):
  detector.onnx    image (3, H, W) float RGB 0..1 at the detector's input scale + score_thresh ->
                   boxes (N, 4), scores (N,), masks (N, 28, 28) box-sized probabilities
  attributes.onnx  crops (N, 3, S, S) -> age, age_std, age_group_probs, gender_probs, emotion_probs
  manifest.json    resize rule, normalisation, thresholds, crop settings, class names, configs,
                   source weights, sha256 of each ONNX file
  check.json       the parity check (unless --no-check)
full description: maskface/export/onnx_export.py

check: FacePredictor with runtime="torch" and runtime="onnxruntime" (the exported files) on the
--check-images (default samples/faces.jpg, as it is and at 640x480, plus two synthetic images);
it reports the largest differences (box px, mask IoU, attribute probabilities, labels) and fails
(exit status 1) outside boxes 1 px / mask IoU 0.98 / probabilities 0.01.
exit status: 0 exported (and check passed), 1 check failed, 2 bad arguments or load/export error.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Export a MaskFace model to ONNX and check it against PyTorch.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, metavar="DIR", help="folder for the ONNX files + manifest.json, "
                   "e.g. deploy/maskface-lite (created; files in it are replaced)")
    m = p.add_argument_group("model (default: the model zoo's maskface-lite)")
    add_model_arguments(m)
    m.add_argument("--config-file", dest="detector_config_alias", metavar="YAML",
                   help="same as --detector-config (e.g. configs/maskface_MV1_SSH_lite.yaml)")
    m.add_argument("--weights", dest="detector_weights_alias", metavar="PTH",
                   help="same as --detector-weights (e.g. runs/ssh1/run/model_final.pth)")
    e = p.add_argument_group("export")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; 17 or newer)")
    c = p.add_argument_group("check")
    c.add_argument("--no-check", action="store_true", help="skip the PyTorch vs ONNX Runtime comparison")
    c.add_argument("--check-images", nargs="+", metavar="PATH",
                   help="photos to compare on (default samples/faces.jpg + synthetic images)")
    c.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads of both runtimes during the check (default 0: each runtime's default)")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only")
    return p


def _check_images(paths):
    """(name, RGB array) pairs the check runs on."""
    import cv2
    import numpy as np

    from maskface.data.synthetic import make_synthetic_image
    from maskface.export.onnx_export import sample_image
    from maskface.inference.image_io import load_image

    if paths:
        return [(p, load_image(p)) for p in paths]
    sample = sample_image()
    rng = np.random.default_rng(0)
    return [("sample", sample), ("sample 640x480", cv2.resize(sample, (640, 480), interpolation=cv2.INTER_AREA)),
            ("synthetic 480x640", make_synthetic_image(rng, (480, 640), 3, min_face=40)[0]),
            ("synthetic 300x500", make_synthetic_image(rng, (300, 500), 2, min_face=30)[0])]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def fail(msg: str, code: int = 2) -> int:
        print(f"export.py: error: {msg}", file=sys.stderr)
        return code

    args.detector_config = args.detector_config or args.detector_config_alias
    args.detector_weights = args.detector_weights or args.detector_weights_alias
    if args.opset < 17:
        return fail("--opset must be 17 or newer")
    if args.detector_backend != "maskface":
        return fail("ONNX export covers MaskFace detectors: convert the Detectron2 model first "
                    "(tools/convert_weights.py --to maskface), then export that")
    if args.threads < 0:
        return fail("--threads must be >= 0")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")

    import torch

    from maskface.export.onnx_export import export_models, require_onnxruntime, sample_image
    from maskface.inference.cli import predictor_from_args
    from maskface.model_zoo.registry import sha256_file
    from maskface.utils.io import save_json

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        require_onnxruntime()
    except ImportError as e:
        return fail(str(e))
    try:
        torch_predictor = predictor_from_args(args, device="cpu")
    except Exception as e:  # noqa: BLE001 - every load failure is reported the same way
        return fail(f"cannot load the model: {e}")
    info = torch_predictor.model_info
    source = {"model": info["name"], "detector_config": info["detector_config"],
              "detector_weights": info["detector_weights"], "detector_sha256": sha256_file(info["detector_weights"]),
              "attribute_config": info["attribute_config"], "attribute_weights": info["attribute_weights"],
              "attribute_sha256": sha256_file(info["attribute_weights"]) if info["attribute_weights"] else None}
    try:
        manifest = export_models(args.output, torch_predictor.detector, torch_predictor.cfg, sample_image(),
                                 torch_predictor.attribute_net, torch_predictor.attr_cfg, source=source,
                                 opset=args.opset)
    except Exception as e:  # noqa: BLE001
        return fail(f"export failed: {e}")
    for part in ("detector", "attributes"):
        if manifest.get(part):
            path = os.path.join(args.output, manifest[part]["file"])
            print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, sha256 {manifest[part]['sha256']}")
    print(f"{os.path.join(args.output, 'manifest.json')}: inputs, normalisation, crop settings, class names")
    if args.no_check:
        return 0

    from maskface.export.check import PARITY_LIMITS, compare_faces, ParityReport
    from maskface.inference.predictor import FacePredictor

    onnx_predictor = FacePredictor(runtime="onnxruntime", onnx_dir=args.output, device="cpu", threads=args.threads,
                                   attributes=torch_predictor.has_attributes,
                                   score_thresh=torch_predictor.score_thresh, mask_thresh=torch_predictor.mask_thresh)
    try:
        images = _check_images(args.check_images)
    except Exception as e:  # noqa: BLE001
        return fail(f"cannot read the check images: {e}")
    report = ParityReport()
    for name, rgb in images:
        a, b = torch_predictor(rgb, color="rgb"), onnx_predictor(rgb, color="rgb")
        compare_faces(a, b, report)
        print(f"  {name} ({rgb.shape[1]}x{rgb.shape[0]}): {len(a)} faces (torch), {len(b)} (onnxruntime)")
    print("check, PyTorch vs ONNX Runtime: " + report.format())
    save_json({"limits": PARITY_LIMITS, "images": [n for n, _ in images], **report.to_dict()},
              os.path.join(args.output, "check.json"), indent=2)
    if not report.ok():
        print(f"export.py: check FAILED (limits: {PARITY_LIMITS})", file=sys.stderr)
        return 1
    print(f"check passed (limits: boxes <= {PARITY_LIMITS['box_px']} px, mask IoU >= {PARITY_LIMITS['mask_iou']}, "
          f"probabilities <= {PARITY_LIMITS['prob']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
