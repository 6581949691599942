#!/usr/bin/env python
"""Combine trained attribute nets into one ensemble weights file.

An ensemble config (``MODEL.ENSEMBLE`` lists member configs, e.g.
configs/attributes/maskface_lite_ensemble.yaml) describes the nets; this tool loads one trained
checkpoint per member, checks that each was trained with its member's crop settings, and writes a
single file that FacePredictor, tools/infer.py (--attribute-config/--attribute-weights) and
tools/evaluate.py read like a single net's checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

try:
    import maskface  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXAMPLES = """examples:
  # the shipped maskface-lite ensemble: a 128 px and a 64 px net, in the config's order
  python tools/make_ensemble.py --config-file configs/attributes/maskface_lite_ensemble.yaml \\
      --weights runs/attr_s9_128/model_final.pth runs/attr_s8_64/model_best.pth \\
      --output runs/ensemble.pth

  # then measure it on the validation crops
  python tools/evaluate.py attributes --weights runs/ensemble.pth --cache attr_cache_s9/val.pt
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Write one weights file for an attribute-net ensemble from its members' checkpoints.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config-file", required=True, metavar="YAML",
                   help="ensemble config: MODEL.ENSEMBLE lists the member configs, "
                   "e.g. configs/attributes/maskface_lite_ensemble.yaml")
    p.add_argument("--weights", required=True, nargs="+", metavar="PTH",
                   help="one trained checkpoint per member, in the order of MODEL.ENSEMBLE, "
                   "e.g. runs/a/model_best.pth runs/b/model_best.pth")
    p.add_argument("--output", required=True, metavar="PTH",
                   help="the ensemble weights file to write, e.g. ensemble.pth")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs, e.g. TEST.FLIP False")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from maskface.config import get_attr_cfg, setup_cfg
    from maskface.engine.attribute_trainer import combine_ensemble_weights
    from maskface.utils.logger import setup_logging

    setup_logging()
    try:
        cfg = setup_cfg(get_attr_cfg(), args.config_file, args.opts)
        model = combine_ensemble_weights(cfg, args.weights, args.output)
    except (FileNotFoundError, KeyError, TypeError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sizes = ", ".join(str(m.crop_kwargs["size"]) for m in model.members)
    params = sum(p.numel() for p in model.parameters())
    print(f"Wrote {args.output}: {len(model.members)} nets (crops {sizes} px), {params:,} parameters, "
          f"mirrored read {'on' if model.flip_test else 'off'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
