"""Command-line plumbing shared by the tools that load a FacePredictor (infer, serve, benchmark):
one set of model-selection flags, one way to turn them into a predictor."""

from __future__ import annotations

import argparse


def add_model_arguments(group: argparse._ActionsContainer) -> None:
    """``--model``, the four config/weights paths, ``--no-attributes``, ``--opts``, ``--attr-opts``."""
    group.add_argument("--model", default=None, help="model-zoo name (default maskface-lite); see infer.py --list-models")
    group.add_argument("--detector-config", help="detector YAML (overrides the zoo entry's)")
    group.add_argument("--detector-weights", help="detector checkpoint (overrides the zoo entry's)")
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


def predictor_from_args(args: argparse.Namespace, **kwargs):
    """A :class:`FacePredictor` from :func:`add_model_arguments`' (and :func:`add_runtime_arguments`')
    flags plus ``kwargs`` (``device``, ``score_thresh``, ``mask_thresh``, ``max_size``, ``pad``)."""
    from maskface.inference.predictor import FacePredictor

    runtime = getattr(args, "runtime", "torch")
    if getattr(args, "onnx_dir", None):
        if runtime != "onnxruntime":
            raise ValueError("--onnx-dir needs --runtime onnxruntime")
        return FacePredictor(runtime=runtime, onnx_dir=args.onnx_dir, threads=getattr(args, "threads", 0) or 0,
                             attributes=not args.no_attributes, detector_opts=args.opts,
                             attribute_opts=getattr(args, "attr_opts", None), **kwargs)
    if runtime != "torch":
        kwargs.update(runtime=runtime, threads=getattr(args, "threads", 0) or 0)
    return FacePredictor(
        model=args.model, detector_config=args.detector_config, detector_weights=args.detector_weights,
        attribute_config=args.attribute_config, attribute_weights=args.attribute_weights,
        detector_opts=args.opts, attribute_opts=getattr(args, "attr_opts", None), attributes=not args.no_attributes,
        **kwargs)
