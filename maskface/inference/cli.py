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


def predictor_from_args(args: argparse.Namespace, **kwargs):
    """A :class:`FacePredictor` from :func:`add_model_arguments`' flags plus ``kwargs``
    (``device``, ``score_thresh``, ``mask_thresh``, ``max_size``, ``pad``)."""
    from maskface.inference.predictor import FacePredictor

    return FacePredictor(
        model=args.model, detector_config=args.detector_config, detector_weights=args.detector_weights,
        attribute_config=args.attribute_config, attribute_weights=args.attribute_weights,
        detector_opts=args.opts, attribute_opts=args.attr_opts, attributes=not args.no_attributes, **kwargs)
