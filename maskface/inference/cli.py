"""Command-line plumbing shared by the tools that load a FacePredictor (infer, serve, benchmark):
one set of model-selection flags, one way to turn them into a predictor; likewise the
anonymisation flags and the :class:`~maskface.inference.anonymize.Anonymizer` they build."""

from __future__ import annotations

import argparse


def add_model_arguments(group: argparse._ActionsContainer) -> None:
    """``--model``, the four config/weights paths, ``--detector-backend``, ``--no-attributes``, ``--opts``,
    ``--attr-opts``."""
    group.add_argument("--model", default=None, help="model-zoo name (default maskface-lite); see infer.py --list-models")
    group.add_argument("--detector-config", help="detector YAML (overrides the zoo entry's)")
    group.add_argument("--detector-weights", help="detector checkpoint (overrides the zoo entry's)")
    group.add_argument("--detector-backend", choices=("maskface", "detectron2"), default="maskface",
                       help="detectron2: --detector-config / --detector-weights are a Detectron2 YAML and checkpoint "
                            "(e.g. written by tools/convert_weights.py --to detectron2, or a Detectron2 training run) "
                            "and --opts Detectron2 overrides; the attribute net (of --model, default none) reads its "
                            "masked crops. Needs Detectron2 installed. E.g. --detector-backend detectron2 "
                            "--detector-config d2/config.yaml --detector-weights d2/model_final.pth --model maskface-lite")
    group.add_argument("--attribute-config", help="attribute-net YAML")
    group.add_argument("--attribute-weights", help="attribute-net checkpoint")
    group.add_argument("--no-attributes", action="store_true", help="detection + masks only")
    group.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                       help="detector config overrides, e.g. MODEL.MIN_SIZE 640")
    group.add_argument("--attr-opts", nargs="+", default=[], metavar="KEY VALUE", help="attribute config overrides")


def add_runtime_arguments(group: argparse._ActionsContainer) -> None:
    """``--runtime``, ``--onnx-dir`` and ``--threads`` (the ONNX Runtime path of FacePredictor)."""
    group.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                       help="run the networks with PyTorch (default) or ONNX Runtime (pip install -e \".[onnx]\"); "
                            "onnxruntime without --onnx-dir exports the selected model once into the cache "
                            "($MASKFACE_CACHE/onnx, default ~/.cache/maskface/onnx), e.g. --runtime onnxruntime")
    group.add_argument("--onnx-dir", metavar="DIR",
                       help="with --runtime onnxruntime: a folder written by tools/export.py (its manifest.json "
                            "gives the configs; no PyTorch weights needed), e.g. --onnx-dir deploy/maskface-lite")
    group.add_argument("--threads", type=int, default=0, metavar="N",
                       help="CPU threads of the networks (torch.set_num_threads and ONNX Runtime's intra-op "
                            "threads; default 0: each library's default), e.g. --threads 2")


def apply_threads(args: argparse.Namespace) -> None:
    """``--threads N`` (N > 0) for PyTorch; ONNX Runtime sessions get it from :func:`predictor_from_args`."""
    threads = getattr(args, "threads", 0) or 0
    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


def predictor_kwargs_from_args(args: argparse.Namespace, **kwargs) -> dict:
    """The keyword arguments of :class:`FacePredictor` that :func:`predictor_from_args` uses: from
    :func:`add_model_arguments`' (and :func:`add_runtime_arguments`') flags plus ``kwargs``. A
    plain dict, so a predictor can be built from it elsewhere (a Ray actor on another machine)."""
    runtime = getattr(args, "runtime", "torch")
    common = dict(attributes=not args.no_attributes, detector_opts=list(args.opts or []),
                  attribute_opts=list(getattr(args, "attr_opts", None) or []) or None)
    if getattr(args, "onnx_dir", None):
        if runtime != "onnxruntime":
            raise ValueError("--onnx-dir needs --runtime onnxruntime")
        return dict(runtime=runtime, onnx_dir=args.onnx_dir, threads=getattr(args, "threads", 0) or 0, **common,
                    **kwargs)
    if runtime != "torch":
        kwargs.update(runtime=runtime, threads=getattr(args, "threads", 0) or 0)
    backend = getattr(args, "detector_backend", "maskface")
    if backend != "maskface":
        kwargs["detector_backend"] = backend
    return dict(model=args.model, detector_config=args.detector_config, detector_weights=args.detector_weights,
                attribute_config=args.attribute_config, attribute_weights=args.attribute_weights, **common, **kwargs)


def predictor_from_args(args: argparse.Namespace, **kwargs):
    """A :class:`FacePredictor` from :func:`add_model_arguments`' (and :func:`add_runtime_arguments`')
    flags plus ``kwargs`` (``device``, ``score_thresh``, ``mask_thresh``, ``max_size``, ``pad``)."""
    from maskface.inference.predictor import FacePredictor

    return FacePredictor(**predictor_kwargs_from_args(args, **kwargs))


ANONYMIZE_HELP = ("Privacy: a face the detector misses is not anonymised. When missing a face is worse than "
                  "blurring a non-face, lower --score-thresh (e.g. 0.3): more faces are covered, at the cost of "
                  "some non-faces.")


def check_pad_arguments(args: argparse.Namespace) -> None:
    """Check ``--pad`` and ``--retry-pad``; ``ValueError`` naming the flag on a bad value."""
    from maskface.inference.padding import check_pad

    for prefix, value in (("--", args.pad), ("--retry-", args.retry_pad)):  # check_pad's message starts "pad ..."
        try:
            check_pad(value)
        except ValueError as e:
            raise ValueError(f"{prefix}{e}") from None


def add_detection_arguments(group: argparse._ActionsContainer) -> None:
    """The per-image detection flags of tools/infer.py and tools/infer_ray.py: --score-thresh,
    --mask-thresh, --max-size, --pad, --retry-pad, --max-megapixels (check them with
    :func:`check_pad_arguments`)."""
    from maskface.inference.image_io import DEFAULT_MAX_PIXELS

    group.add_argument("--score-thresh", type=float,
                       help="minimum detection score (config MODEL.SCORE_THRESH), e.g. --score-thresh 0.5")
    group.add_argument("--mask-thresh", type=float,
                       help="mask probability threshold (config MODEL.MASK_THRESH), e.g. --mask-thresh 0.4")
    group.add_argument("--max-size", type=int,
                       help="longest image side read whole, px (default: the config's MODEL.MAX_SIZE); larger "
                            "images are shrunk, or with a tiling config (configs/maskface_MV1_SSH_native.yaml: "
                            "group photos, 4K frames) read in tiles of this size at their own resolution plus "
                            "once shrunk; results are mapped back to original pixels, e.g. --max-size 1280")
    group.add_argument("--pad", type=float, default=0.0, metavar="FRAC",
                       help="grey border added on each side of every image before detection, as a fraction of "
                            "its size (e.g. 0.25): for face chips that the face fills to the edge, which the "
                            "detector otherwise often misses or boxes partly; results stay in original pixels "
                            "(default: 0)")
    group.add_argument("--retry-pad", type=float, default=0.25, metavar="FRAC",
                       help="when an image gives no face (and --pad is 0), detect once more with a grey border of "
                            "this fraction, so a face that fills the whole picture is still found; 0 = never "
                            "retry (default: 0.25)")
    group.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, metavar="MP",
                       help="refuse images larger than this many megapixels (for videos: frames), checked from the "
                            "file header before decoding, as a per-file error; e.g. --max-megapixels 250 for big "
                            f"scans, 0 = no cap (trusted files only) (default: {DEFAULT_MAX_PIXELS / 1e6:g})")


def add_anonymize_arguments(group: argparse._ActionsContainer) -> None:
    """``--anonymize``, ``--anonymize-region``, ``--anonymize-margin``, ``--anonymize-feather``,
    ``--hold-frames``."""
    from maskface.inference.anonymize import DEFAULT_HOLD_FRAMES, DEFAULT_MARGIN_FRAC, METHODS, MIN_AUTO_MARGIN, REGIONS

    group.add_argument("--anonymize", choices=METHODS, default=None,
                       help="also write every image / video with its faces blurred (Gaussian, strength scaled to "
                            "the face size), pixelated (mosaic) or filled (black), e.g. --anonymize blur")
    group.add_argument("--anonymize-region", choices=REGIONS, default="mask",
                       help="what is covered: the face's pixel mask (default), its box, or the ellipse inscribed "
                            "in the box, e.g. --anonymize-region ellipse")
    group.add_argument("--anonymize-margin", default=None, metavar="PX|N%",
                       help="grow the region by this many pixels, or by this percentage of each face's size "
                            f"(default: auto = {DEFAULT_MARGIN_FRAC * 100:g}%%, at least {MIN_AUTO_MARGIN} px), "
                            "e.g. --anonymize-margin 8 or 6%%")
    group.add_argument("--anonymize-feather", type=float, default=None, metavar="PX",
                       help="soft edge inside the margin, px (default: a quarter of the margin; 0 = hard edge), "
                            "e.g. --anonymize-feather 0")
    group.add_argument("--hold-frames", type=int, default=DEFAULT_HOLD_FRAMES, metavar="N",
                       help="videos: keep a face covered for N processed frames after its detection is lost, so "
                            f"a missed frame does not flash it (default {DEFAULT_HOLD_FRAMES}; 0 = off), "
                            "e.g. --hold-frames 10")


def anonymizer_from_args(args: argparse.Namespace):
    """The :class:`Anonymizer` of :func:`add_anonymize_arguments`' flags, or ``None`` without
    ``--anonymize``. Raises ``ValueError`` naming the flag on a bad value."""
    from maskface.inference.anonymize import Anonymizer, check_feather, check_hold_frames, parse_margin

    if args.anonymize is None:
        given = [f for f, v, d in (("--anonymize-region", args.anonymize_region, "mask"),
                                   ("--anonymize-margin", args.anonymize_margin, None),
                                   ("--anonymize-feather", args.anonymize_feather, None)) if v != d]
        if given:
            raise ValueError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with "
                             "--anonymize blur|pixelate|fill")
        return None
    checked = {}
    for flag, check, value in (("--anonymize-margin", parse_margin, args.anonymize_margin or "auto"),
                               ("--anonymize-feather", check_feather, args.anonymize_feather),
                               ("--hold-frames", check_hold_frames, args.hold_frames)):
        try:
            checked[flag] = check(value)
        except ValueError as e:
            raise ValueError(f"{flag}: {e}") from None
    margin, margin_frac = checked["--anonymize-margin"]
    return Anonymizer(method=args.anonymize, region=args.anonymize_region, margin=margin, margin_frac=margin_frac,
                      feather=args.anonymize_feather, hold_frames=args.hold_frames)
