#!/usr/bin/env python
"""Convert a face Mask R-CNN between MaskFace and Detectron2 (checkpoint + config), and check it.

Examples:
    # the shipped maskface-lite detector -> Detectron2 (out/d2_lite/model_final.pth + config.yaml),
    # then Detectron2's DefaultPredictor vs MaskFace on the bundled sample
    python tools/convert_weights.py --to detectron2 --model maskface-lite --output out/d2_lite --check

    # a MaskFace training run -> Detectron2's model-zoo .pkl format, checked on your photos
    python tools/convert_weights.py --to detectron2 --config-file runs/r50/config.yaml \\
        --weights runs/r50/model_final.pth --output out/d2_r50 --format pkl --check photos/*.jpg

    # RetinaFace's public MobileNet-0.25 file as the starting point of a Detectron2 training run
    python tools/convert_weights.py --to detectron2 --config-file configs/maskface_MV1_SSH_lite.yaml \\
        --weights ../shared/weights/retinaface_mobilenet0.25_wider.pth --output out/d2_retinaface

    # a Detectron2 training run (tools/train_detectron2.py) -> MaskFace
    python tools/convert_weights.py --to maskface --config-file runs/d2/config.yaml \\
        --weights runs/d2/model_final.pth --output out/mf --check
    python tools/infer.py --detector-config out/mf/config.yaml --detector-weights out/mf/model_final.pth \\
        --model maskface-lite --input photo.jpg --output out/photo

Converting back reproduces the original MaskFace checkpoint exactly: --to detectron2 stores the
tensors Detectron2 has no place for (background rows of the box and mask predictors) and the source
config in the checkpoint, and verifies the round trip before it writes anything.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

EPILOG = """\
outputs (in --output):
  model_final.pth | .pkl  the converted checkpoint (--to detectron2: Detectron2's {"model": ...} format, .pkl
                          with --format pkl; --to maskface: MaskFace's {"model": state_dict})
  config.yaml             the converted config (Detectron2's config with MODEL.WEIGHTS set to the checkpoint;
                          or MaskFace's)
  check.json              with --check: Detectron2 DefaultPredictor vs MaskFace FacePredictor per image
Detectron2 configs naming MaskFace's modules (mobilenet_v1_ssh backbone, per-level RPN head, anchors,
FaceROIHeads) load with maskface.integrations.detectron2.get_detectron2_cfg (or add_maskface_config +
`import maskface.integrations.detectron2.modeling`). --to maskface and --check need Detectron2 installed:
https://detectron2.readthedocs.io/en/latest/tutorials/install.html
check: faces paired by box IoU; fails (exit status 1) unless every face pairs with boxes within --box-px,
mask IoU >= --mask-iou and scores within --score.
exit status: 0 converted (and checked), 1 check failed, 2 bad arguments or conversion error.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Convert face Mask R-CNN checkpoints + configs between MaskFace and "
                                            "Detectron2.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", required=True, choices=("detectron2", "maskface"),
                   help="target framework, e.g. --to detectron2 (source: a MaskFace model) or --to maskface "
                        "(source: a Detectron2 config + checkpoint)")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="folder for the converted checkpoint and config.yaml, e.g. out/d2_lite (created)")
    s = p.add_argument_group("source")
    s.add_argument("--model", metavar="NAME",
                   help="--to detectron2: a model-zoo name, e.g. --model maskface-lite (default when no "
                        "--config-file is given)")
    s.add_argument("--config-file", metavar="YAML",
                   help="the source config: MaskFace's (--to detectron2, e.g. configs/maskface_R50_FPN.yaml) or "
                        "Detectron2's (--to maskface, e.g. runs/d2/config.yaml)")
    s.add_argument("--weights", metavar="PATH",
                   help="the source checkpoint, e.g. runs/r50/model_final.pth (--to detectron2 with a mobilenet_v1_ssh "
                        "config: also RetinaFace's retinaface_mobilenet0.25_wider.pth, heads initialised; --to "
                        "maskface: default the Detectron2 config's MODEL.WEIGHTS)")
    s.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                   help="overrides of the source config, e.g. --opts MODEL.SCORE_THRESH 0.7")
    o = p.add_argument_group("output")
    o.add_argument("--config-only", action="store_true",
                   help="--to detectron2: write only the Detectron2 config (MODEL.WEIGHTS empty; no checkpoint "
                        "needed), e.g. to train a MaskFace recipe with Detectron2: --config-file "
                        "configs/maskface_R50_FPN.yaml --config-only")
    o.add_argument("--resize", choices=("maskface", "detectron2"), default="maskface",
                   help="--to detectron2: test-time resize of the Detectron2 model: maskface (default; model "
                        "MaskFaceRCNN resizes as MaskFace does, INPUT.MIN_SIZE_TEST 0: Detectron2 finds MaskFace's "
                        "faces up to float rounding) or detectron2 (GeneralizedRCNN with Detectron2's own resize, PIL "
                        "on uint8: faces of 10-20 px may move by a pixel or two), e.g. --resize detectron2")
    o.add_argument("--format", choices=("pth", "pkl"), default="pth",
                   help="--to detectron2: checkpoint format, torch .pth (default) or Detectron2's model-zoo .pkl "
                        "(numpy arrays), e.g. --format pkl")
    c = p.add_argument_group("check (needs Detectron2)")
    c.add_argument("--check", nargs="*", metavar="IMAGE",
                   help="run Detectron2's DefaultPredictor and MaskFace's FacePredictor on these images (default "
                        "samples/faces.jpg) and compare their faces, e.g. --check or --check photos/*.jpg")
    c.add_argument("--box-px", type=float, default=2.0, help="largest box-corner difference allowed, px (default 2)")
    c.add_argument("--mask-iou", type=float, default=0.95, help="smallest mask IoU allowed (default 0.95)")
    c.add_argument("--score", type=float, default=0.02, help="largest score difference allowed (default 0.02)")
    c.add_argument("--device", default="cpu", help="device of the check, e.g. --device cuda (default cpu)")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only")
    return p


def _maskface_state(cfg, weights):
    """The MaskFace state dict of ``weights``: a MaskFace checkpoint, or the public RetinaFace file for a
    mobilenet_v1_ssh config (backbone and RPN from the file, box and mask heads freshly initialised with
    cfg.SEED: a starting point for training in Detectron2)."""
    import torch

    from maskface.integrations.detectron2.convert import load_maskface_checkpoint
    from maskface.modeling.mobilenet_ssh import is_retinaface_state

    try:
        data = torch.load(weights, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - missing or unreadable: load_maskface_checkpoint says which
        data = None
    if isinstance(data, dict) and is_retinaface_state(data.get("model", data)):
        from maskface.modeling.face_rcnn import build_face_rcnn

        init = cfg.clone()
        init.MODEL.PRETRAINED = weights
        torch.manual_seed(int(cfg.SEED))
        logging.getLogger("convert_weights").info("%s is RetinaFace's file: backbone + RPN from it, heads initialised",
                                                  weights)
        return build_face_rcnn(init).state_dict()
    return load_maskface_checkpoint(weights)


def _to_detectron2(args):
    """Returns (maskface config, maskface weights path, detectron2 config path, checkpoint path)."""
    from maskface.config import get_cfg
    from maskface.integrations.detectron2.convert import (
        ConversionError,
        detectron2_to_maskface_state,
        dump_detectron2_yaml,
        maskface_to_detectron2,
        maskface_to_detectron2_config,
        save_detectron2_checkpoint,
    )
    from maskface.utils.io import atomic_write

    if args.config_file is None:
        from maskface.model_zoo import DEFAULT_MODEL, get_model

        entry = get_model(args.model or DEFAULT_MODEL)
        config = entry.config_path("detector")
        weights = None if args.config_only else args.weights or entry.weights_path("detector")
        label = f"model-zoo entry {entry.name!r} ({config})"
    else:
        if args.model:
            raise ValueError("give --model or --config-file, not both")
        if not args.weights and not args.config_only:
            raise ValueError("--config-file needs --weights (the MaskFace checkpoint), or --config-only")
        config, weights, label = args.config_file, args.weights, args.config_file
    if not os.path.isfile(config):
        raise FileNotFoundError(f"MaskFace config not found: {config}")
    cfg = get_cfg()
    cfg.merge_from_file(config)
    if args.opts:
        cfg.merge_from_list(args.opts)
    d2_yaml = os.path.join(args.output, "config.yaml")
    if args.config_only:
        header = (f"Detectron2 config of the MaskFace recipe {label};\n"
                  "written by tools/convert_weights.py --to detectron2 --config-only. Load it with\n"
                  "maskface.integrations.detectron2.get_detectron2_cfg(path); train with tools/train_detectron2.py.")
        with atomic_write(d2_yaml) as f:
            f.write(dump_detectron2_yaml(maskface_to_detectron2_config(cfg, resize=args.resize), header))
        print(f"{d2_yaml}: Detectron2 config (no weights)")
        return config, None, d2_yaml, None
    state = _maskface_state(cfg, weights)
    ckpt = os.path.abspath(os.path.join(args.output, f"model_final.{args.format}"))
    d2cfg, d2_state, extras = maskface_to_detectron2(cfg, state, weights=ckpt, source=os.path.abspath(weights),
                                                     resize=args.resize)
    # round trip before writing: the tensors must come back bit for bit
    back = detectron2_to_maskface_state(d2_state, state, cfg.MODEL.BACKBONE, extras["background"])
    bad = [k for k in state if k not in back or back[k].dtype != state[k].dtype or not back[k].equal(state[k])]
    if bad or set(back) != set(state):
        raise ConversionError(f"round trip is not exact for {len(bad)} tensors: {bad[:5]}")
    save_detectron2_checkpoint(ckpt, d2_state, extras)
    header = (f"Detectron2 config of the MaskFace detector {label}, weights {weights};\n"
              "written by tools/convert_weights.py --to detectron2. Load it with\n"
              "maskface.integrations.detectron2.get_detectron2_cfg(path) (Detectron2's get_cfg() + MaskFace's keys and\n"
              "modules), e.g. for detectron2.engine.DefaultPredictor; MODEL.DEVICE is Detectron2's default (cuda).")
    with atomic_write(d2_yaml) as f:
        f.write(dump_detectron2_yaml(d2cfg, header))
    print(f"{ckpt}: {len(d2_state)} tensors (+ {len(extras['background'])} background rows MaskFace keeps)")
    print(f"{d2_yaml}: Detectron2 config; round trip to MaskFace checked: exact ({len(state)} tensors)")
    return config, weights, d2_yaml, ckpt


def _to_maskface(args):
    from maskface.integrations.detectron2.config import get_detectron2_cfg
    from maskface.integrations.detectron2.convert import detectron2_to_maskface, load_detectron2_checkpoint
    from maskface.utils.io import atomic_write

    import torch

    if args.model:
        raise ValueError("--model names a MaskFace model; --to maskface converts a Detectron2 --config-file")
    if not args.config_file:
        raise ValueError("--to maskface needs --config-file (the Detectron2 YAML)")
    d2cfg = get_detectron2_cfg(args.config_file, args.opts)
    weights = args.weights or d2cfg.MODEL.WEIGHTS
    if not weights:
        raise ValueError("no Detectron2 checkpoint: pass --weights or set MODEL.WEIGHTS in the config")
    d2_state, extras = load_detectron2_checkpoint(weights)
    cfg, state, info = detectron2_to_maskface(d2cfg, d2_state, extras)
    for note in info["approximations"]:
        logging.getLogger("convert_weights").warning("not exact in MaskFace: %s", note)
    os.makedirs(args.output, exist_ok=True)
    ckpt = os.path.join(args.output, "model_final.pth")
    with atomic_write(ckpt, "wb") as f:
        torch.save({"model": state}, f)
    mf_yaml = os.path.join(args.output, "config.yaml")
    with atomic_write(mf_yaml) as f:
        f.write(f"# MaskFace config of the Detectron2 detector {args.config_file} (weights {weights});\n"
                "# written by tools/convert_weights.py --to maskface.\n" + cfg.dump())
    print(f"{ckpt}: {len(state)} tensors ({'restored exactly from a MaskFace conversion' if extras else 'from Detectron2'})")
    print(f"{mf_yaml}: MaskFace config ({info['backbone']}" + (", BGR input flipped to RGB" if info["flip_input_channels"] else "")
          + (f"; {len(info['approximations'])} approximations, see the warnings)" if info["approximations"] else ")"))
    return mf_yaml, ckpt, args.config_file, weights


def _check(args, mf_config, mf_weights, d2_config, d2_weights, mf_opts=(), d2_opts=()):
    from detectron2.engine import DefaultPredictor

    from maskface.integrations.detectron2.check import compare_predictors
    from maskface.integrations.detectron2.config import get_detectron2_cfg
    from maskface.inference.predictor import FacePredictor
    from maskface.utils.io import save_json

    images = args.check or [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         "samples", "faces.jpg")]
    d2cfg = get_detectron2_cfg(d2_config, [*d2_opts, "MODEL.DEVICE", args.device, "MODEL.WEIGHTS", d2_weights])
    d2 = DefaultPredictor(d2cfg)
    mf = FacePredictor(detector_config=mf_config, detector_weights=mf_weights, attributes=False, device=args.device,
                       retry_pad=0, detector_opts=list(mf_opts) or None)
    report = compare_predictors(mf, d2, images)
    limits = {"box_px": args.box_px, "mask_iou": args.mask_iou, "score": args.score}
    for img in report.per_image:
        print(f"  {img['image']}: faces {img['faces_a']} (MaskFace) / {img['faces_b']} (Detectron2), paired "
              f"{img['paired']}")
    print("check, MaskFace vs Detectron2 DefaultPredictor: " + report.format(("MaskFace", "Detectron2")))
    save_json(report.to_dict(limits), os.path.join(args.output, "check.json"), indent=2)
    if not report.ok(limits):
        print(f"convert_weights.py: check FAILED (limits: {limits})", file=sys.stderr)
        return 1
    print(f"check passed (limits: boxes <= {args.box_px} px, mask IoU >= {args.mask_iou}, scores <= {args.score})")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def fail(msg: str, code: int = 2) -> int:
        print(f"convert_weights.py: error: {msg}", file=sys.stderr)
        return code

    if args.format == "pkl" and args.to == "maskface":
        return fail("--format pkl applies to --to detectron2 (MaskFace checkpoints are .pth)")
    if args.config_only and (args.to != "detectron2" or args.check is not None):
        return fail("--config-only applies to --to detectron2, without --check (there are no weights to check)")
    for flag, value in (("--box-px", args.box_px), ("--score", args.score)):
        if value < 0:
            return fail(f"{flag} must be >= 0, got {value}")
    if not 0 <= args.mask_iou <= 1:
        return fail(f"--mask-iou must be in [0, 1], got {args.mask_iou}")
    try:
        os.makedirs(args.output, exist_ok=True)
        if args.to == "detectron2":
            mf_config, mf_weights, d2_config, d2_weights = _to_detectron2(args)
            mf_opts, d2_opts = args.opts, ()
        else:
            mf_config, mf_weights, d2_config, d2_weights = _to_maskface(args)
            mf_opts, d2_opts = (), args.opts
    except (ImportError, ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
        return fail(str(e))
    if args.check is None:
        return 0
    try:
        return _check(args, mf_config, mf_weights, d2_config, d2_weights, mf_opts, d2_opts)
    except (ImportError, ValueError, FileNotFoundError, RuntimeError) as e:
        return fail(f"check: {e}")


if __name__ == "__main__":
    sys.exit(main())
